"""The SDK builds REST URLs as HOST + path. A HOST that carries a query string
(`http://hub:8000/?concurrency=4`, how a script declares its capacity on the
socket) makes them `/?concurrency=4/v2/annotate/7?nextStage=true`: a request
for `/` whose query holds the real path. Put it back before anything routes.

Sync and async: an async view (POST /api/runs) then runs with no thread hop
for this middleware (a sync-only one costs a thread per request)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

HIDDEN_PATH = re.compile(r"^[^/]*(?P<path>/v2/[^?]*)(?:\?(?P<query>.*))?$", re.S)


class SdkHostQueryMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        _unhide_path(request)
        if self.is_async:
            return self._acall(request)
        return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        response: Awaitable[HttpResponse] = self.get_response(request)
        return await response


def _unhide_path(request: HttpRequest) -> None:
    if request.path_info == "/":
        match = HIDDEN_PATH.match(request.META.get("QUERY_STRING", ""))
        if match:
            request.path = request.path_info = match["path"]
            request.META["PATH_INFO"] = match["path"]
            request.META["QUERY_STRING"] = match["query"] or ""
            request.__dict__.pop("GET", None)  # parsed again from META
