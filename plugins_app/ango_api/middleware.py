"""The SDK builds REST URLs as HOST + path. A HOST that carries a query string
(`http://hub:8000/?concurrency=4`, how a script declares its capacity on the
socket) makes them `/?concurrency=4/v2/annotate/7?nextStage=true`: a request
for `/` whose query holds the real path. Put it back before anything routes."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

HIDDEN_PATH = re.compile(r"^[^/]*(?P<path>/v2/[^?]*)(?:\?(?P<query>.*))?$", re.S)


class SdkHostQueryMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info == "/":
            match = HIDDEN_PATH.match(request.META.get("QUERY_STRING", ""))
            if match:
                request.path = request.path_info = match["path"]
                request.META["PATH_INFO"] = match["path"]
                request.META["QUERY_STRING"] = match["query"] or ""
                request.__dict__.pop("GET", None)  # parsed again from META
        return self.get_response(request)
