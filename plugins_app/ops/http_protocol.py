"""uvicorn's httptools protocol with a deadline for the request head.

uvicorn bounds an idle keep-alive connection (`--timeout-keep-alive`) but not a
request whose head never completes: a client that opens connections and sends a
header line now and then (slowloris) holds each one for as long as it likes,
and 500 of them were still open after 60 s. This protocol closes a connection
whose request head (request line and headers) has not fully arrived within
`HUB_HTTP_HEAD_TIMEOUT_SECONDS` of the connection opening or of the previous
response ending, or whose head grows past `HUB_HTTP_MAX_HEAD_BYTES` (431;
uvicorn bounds heads only with h11, `--h11-max-incomplete-event-size`, and the
httptools parser it prefers has no bound at all). A websocket upgrade completes
its head at once, so plugin and browser sockets are never touched once open.

Used with `uvicorn --http plugins_app.ops.http_protocol:HttpToolsProtocol`
(Procfile, runhub; docs/deployment.md).
"""

from __future__ import annotations

import asyncio

from django.conf import settings
from uvicorn.protocols.http import httptools_impl

HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 33\r\n\r\n"
    b"request headers too large (431)\r\n"
)


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    head_timer: asyncio.TimerHandle | None = None
    head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        reading_head = self.head_timer is not None
        super().data_received(data)
        if not reading_head or self.head_timer is None:
            return  # no head pending, or this data completed it (a body may follow)
        self.head_bytes += len(data)
        if self.head_bytes > settings.HUB_HTTP_MAX_HEAD_BYTES:
            self._cancel_head_timer()
            if not self.transport.is_closing():
                self.transport.write(HEAD_TOO_LARGE)
                self.transport.close()

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Keep-alive: the next request's head gets the same deadline (uvicorn's
        # own keep-alive timer stops at its first byte).
        if not self.transport.is_closing() and not self.pipeline:
            self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self.head_bytes = 0
        self.head_timer = self.loop.call_later(
            settings.HUB_HTTP_HEAD_TIMEOUT_SECONDS, self._head_timed_out
        )

    def _cancel_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if not self.transport.is_closing():
            self.logger.info("request head not complete in time; connection closed")
            self.transport.close()
