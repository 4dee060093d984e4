"""WhiteNoise, async-capable. WhiteNoise 6 is a sync-only middleware: in the
ASGI handler every request, static or not, then hops to a thread made for it
(and back to the loop for the rest of the chain): ~1 ms of CPU per API call
before the view starts. This subclass answers in the mode it is called in;
only the static file itself (a lookup on disk with autorefresh, opening the
file) goes to a thread, as WhiteNoise's own sync path would have."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware  # type: ignore[import-untyped]


class AsyncWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any], **kw: Any):
        super().__init__(get_response, **kw)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if self.autorefresh:
            # DEBUG: find_file looks on disk; only paths under a static
            # prefix can match, the rest stay on the loop.
            static_file = None
            if any(path.startswith(prefix) for _, prefix in self.directories):
                static_file = await sync_to_async(self.find_file)(path)
        else:
            static_file = self.files.get(path)
        if static_file is not None:
            response: HttpResponse = await sync_to_async(self.serve)(
                static_file, request
            )
            return response
        response = await self.get_response(request)
        return response
