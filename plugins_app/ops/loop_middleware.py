"""Django's own middleware, without a thread hop when it has no database work.

Django's middleware is "async-capable" through MiddlewareMixin.__acall__, which
runs process_request and process_response each in sync_to_async: in the ASGI
handler that is two hops to the request's thread per middleware, 14 per API
call for the seven below (~1 ms of CPU of POST /api/runs). Most of them only
read headers and cookies and set headers. These subclasses call them inline on
the loop, and hop as Django does only where the database may be reached: the
session's save (it was changed, or accessed at all), the messages' store (via
the session), the CSRF secret when it lives in the session, and the CSRF check
of a view that is not exempt (it may parse an uploaded body)."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponseBase
from django.middleware import clickjacking, common, csrf, security


class _OnLoop:
    """Mixed in before a MiddlewareMixin subclass: its async path, inline."""

    get_response: Any
    process_request: Any
    process_response: Any

    def _request_needs_thread(self, request: HttpRequest) -> bool:
        return False

    def _response_needs_thread(self, request: HttpRequest) -> bool:
        return False

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = None
        if hasattr(self, "process_request"):
            if self._request_needs_thread(request):
                response = await sync_to_async(self.process_request)(request)
            else:
                response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self._response_needs_thread(request):
                response = await sync_to_async(self.process_response)(request, response)
            else:
                response = self.process_response(request, response)
        return response


class SecurityMiddleware(_OnLoop, security.SecurityMiddleware):
    pass


class SessionMiddleware(_OnLoop, sessions.SessionMiddleware):
    # process_request makes a lazy SessionStore: no read until it is used.
    def _response_needs_thread(self, request: HttpRequest) -> bool:
        session = getattr(request, "session", None)
        return session is None or bool(
            session.accessed or session.modified or settings.SESSION_SAVE_EVERY_REQUEST
        )


class CommonMiddleware(_OnLoop, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(_OnLoop, csrf.CsrfViewMiddleware):
    def _request_needs_thread(self, request: HttpRequest) -> bool:
        return bool(settings.CSRF_USE_SESSIONS)

    def _response_needs_thread(self, request: HttpRequest) -> bool:
        return bool(settings.CSRF_USE_SESSIONS)

    async def process_view(  # type: ignore[override]
        self,
        request: HttpRequest,
        callback: Any,
        callback_args: Any,
        callback_kwargs: Any,
    ) -> HttpResponseBase | None:
        """Async, so that Django does not wrap it in a hop: an exempt view (the
        JSON API's, ninja checks CSRF itself) needs nothing; any other is
        checked on the request's thread, as before."""
        if getattr(callback, "csrf_exempt", False):
            return None
        check = super().process_view
        result: HttpResponseBase | None = await sync_to_async(check)(
            request, callback, callback_args, callback_kwargs
        )
        return result


class AuthenticationMiddleware(_OnLoop, auth.AuthenticationMiddleware):
    # process_request sets a lazy request.user: read on first use, in the view.
    pass


class MessageMiddleware(_OnLoop, messages.MessageMiddleware):
    def _response_needs_thread(self, request: HttpRequest) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is None or bool(storage.used or storage.added_new)


class XFrameOptionsMiddleware(_OnLoop, clickjacking.XFrameOptionsMiddleware):
    pass
