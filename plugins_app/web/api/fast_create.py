"""POST /api/runs with a token, through a shorter door than Django's handler.

Scripts start runs with `Authorization: Bearer <token>`; for them Django's ASGI
handler and ninja's request/response machinery cost about a third of the hub's
CPU per run (a thread made and joined per request, the middleware chain, the
body re-validated against RunOut), more than the create itself. This ASGI layer
sits in front of Django's http app and answers that one call itself, with the
same pieces the route uses: its token lookup and plugin and project checks
(read in one statement: auth.token_access) and runs.create_run_as, in one hop
to protocol.in_pool's thread, ninja's renderer, and the response phase of the
middleware that sets headers on such an answer (Django's own classes).

It answers only what it can answer the same way. Anything else goes to Django
untouched: other paths and methods, no Bearer header, a cookie (the session
door), an odd Host, a body that is not one JSON object of the right shape (its
422/400), a token that is not accepted (its 401); the body read so far is
handed on as if never read. Every check before the create only reads, so
Django doing it again answers as it always did. From the create on, the
answer is this module's: ninja's exception handlers, then Django's 500.

HUB_FAST_CREATE=0 turns it off (read once, at start-up); it also stays off
when settings.MIDDLEWARE is not the chain it was checked against
(tests/test_fast_create.py compares both doors over real requests).
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.core.handlers.exception import response_for_exception
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.log import log_response
from ninja.constants import NOT_SET
from ninja.responses import Status

from plugins_app import protocol
from plugins_app.web.api import api, runs
from plugins_app.web.api.auth import (
    AsyncTokenAuth,
    BearerHash,
    SessionUnlessToken,
    token_access,
)
from plugins_app.web.api.fields import ErrorOut
from plugins_app.web.api.runs import RunIn, create_run_as

log = logging.getLogger(__name__)

Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]

# The route is "api/runs" (ninja strips the router's leading slash, and
# APPEND_SLASH only redirects GETs to a path that exists): only this path
# reaches the view; "/api/runs/" and the like are Django's 404s.
PATH = "/api/runs"

# The chain this door was compared against (the route: _route_is_vetted).
# Each one either does nothing for a Bearer call without a cookie (sessions,
# CSRF, auth, messages, htmx, static files, the SDK's hidden path) or sets
# headers, which the response phase below repeats. Another chain may do
# more: then every call goes to Django.
VETTED_MIDDLEWARE = [
    "plugins_app.ango_api.middleware.SdkHostQueryMiddleware",
    "plugins_app.ops.loop_middleware.SecurityMiddleware",
    "plugins_app.ops.static_files.AsyncWhiteNoiseMiddleware",
    "plugins_app.ops.loop_middleware.SessionMiddleware",
    "plugins_app.ops.loop_middleware.CommonMiddleware",
    "plugins_app.ops.loop_middleware.CsrfViewMiddleware",
    "plugins_app.ops.loop_middleware.AuthenticationMiddleware",
    "plugins_app.ops.loop_middleware.MessageMiddleware",
    "plugins_app.ops.loop_middleware.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]


def enabled_by_environment() -> bool:
    return os.environ.get("HUB_FAST_CREATE", "1") != "0"


def _no_view(request: HttpRequest) -> HttpResponseBase:
    raise AssertionError("only the response phase of these middleware is used")


class FastCreate:
    """The ASGI http app: POST /api/runs by token here, the rest to `django`."""

    def __init__(self, django: App) -> None:
        self.django = django
        self.enabled = _chain_is_vetted()
        self.bearer = BearerHash()
        # Innermost first, as the chain's response phase runs. Built once, as
        # Django builds its chain (they read their settings here).
        self.response_phase: list[
            XFrameOptionsMiddleware | CommonMiddleware | SecurityMiddleware
        ] = [
            XFrameOptionsMiddleware(_no_view),
            CommonMiddleware(_no_view),
            SecurityMiddleware(_no_view),
        ]

    async def __call__(
        self, scope: dict[str, Any], receive: Receive, send: Send
    ) -> None:
        if not (self.enabled and _is_token_create(scope)):
            return await self.django(scope, receive, send)
        # The body, as Django's handler reads it; past the size limit Django
        # answers (its 400), from what was read plus the rest.
        chunks: list[bytes] = []
        size, limit = 0, settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # Django's handler too answers nothing (RequestAborted)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if not message.get("more_body", False):
                break
            if limit is not None and size > limit:
                return await self.django(scope, _replay(chunks, True, receive), send)
        accepted = self._accepted(scope, b"".join(chunks))
        if accepted is None:
            return await self.django(scope, _replay(chunks, False, receive), send)
        # The token's lookup, the access checks and the create in one hop to
        # the pool thread (the lookup was a hop of its own).
        outcome: Status[Any] | None | Exception
        try:
            outcome = await protocol.in_pool(_create_by_token, *accepted)
        except Exception as exc:
            outcome = exc
        if outcome is None:
            # Refused (or the lookup failed): Django looks the token up again
            # and answers as it does (the session door and its 401/403).
            return await self.django(scope, _replay(chunks, False, receive), send)
        await self._answer(accepted[0], outcome, send)

    def _accepted(
        self, scope: dict[str, Any], raw: bytes
    ) -> tuple[ASGIRequest, RunIn, str] | None:
        """The request, its body and its token's hash if the route would
        reach its token lookup with them; None for anything Django should
        answer. Only reads."""
        try:
            request = ASGIRequest(scope, io.BytesIO(raw))
            if len(raw) != int(request.META["CONTENT_LENGTH"]):
                return None  # Django reads Content-Length bytes: its call
            request.get_host()  # DisallowedHost: Django's 400
            # request.body checks DATA_UPLOAD_MAX_MEMORY_SIZE (RequestDataTooBig)
            body = RunIn.model_validate(json.loads(request.body))
            key_hash = self.bearer(request)  # None without a Bearer token
            if not key_hash:
                return None
        except Exception:
            # Malformed, too deep, too big or invalid: Django does the same
            # again and answers as it does today.
            return None
        return request, body, key_hash

    async def _answer(
        self, request: ASGIRequest, outcome: Status[Any] | Exception, send: Send
    ) -> None:
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            response: HttpResponse
            try:
                if isinstance(outcome, Exception):
                    # Raised here, as the route's exception handling sees it.
                    raise outcome
                response = self._render(request, outcome)
            except Exception as exc:
                response = await self._exception_response(request, exc)
            for middleware in self.response_phase:
                # Each sets headers on the response it is given and returns it.
                response = cast(
                    HttpResponse, middleware.process_response(request, response)
                )
            if response.status_code >= 400:
                # As BaseHandler.get_response_async logs every 4xx/5xx (a 500 was
                # logged with its traceback by response_for_exception already).
                log_response(
                    "%s: %s",
                    response.reason_phrase,
                    request.path,
                    response=response,
                    request=request,
                )
            await _send_response(response, send_tracked)
        except Exception:
            # Never leave the client waiting: a bare 500 if nothing went out.
            log.exception("POST %s: the answer could not be sent", PATH)
            if not started:
                await _send_bare_500(send)

    def _render(self, request: HttpRequest, result: Status[Any]) -> HttpResponse:
        value = result.value
        if result.status_code != 201:
            # 400/403: validated against ErrorOut as ninja does. The 201 body is
            # created_run_out's dict as is: tests/test_create_route.py checks it
            # against RunOut, the parity test against ninja's answer.
            value = ErrorOut.model_validate(value).model_dump()
        return api.create_response(request, value, status=result.status_code)

    async def _exception_response(
        self, request: HttpRequest, exc: Exception
    ) -> HttpResponse:
        """What AsyncOperation.run does with an exception (ninja's handlers:
        Http404 is its 404), then Django's handler (its log and 500 page)."""
        try:
            return api.on_exception(request, exc)
        except Exception as unhandled:
            # As convert_exception_to_response in the async chain.
            return await sync_to_async(  # handler500's page
                response_for_exception, thread_sensitive=False
            )(request, unhandled)


def _create_by_token(
    request: ASGIRequest, body: RunIn, key_hash: str
) -> Status[dict[str, Any]] | None:
    """On the pool thread that keeps its connection, as the route's view
    works: the token's user with the plugin and project it may see (one
    statement, auth.token_access), then create_run_as; None when the token
    is refused or its lookup failed (Django answers). Then what
    close_old_connections does at the end of a Django request, on this
    thread: in_pool's pool thread does it too, but without the ASGI lifespan
    (tests) in_pool runs it on asgiref's thread-sensitive thread, which
    nothing else would look after. Django's request_started/finished signals
    are not sent: no connection is opened on the loop or on a thread of the
    request."""
    try:
        try:
            seen = token_access(key_hash, body.plugin_id, body.project_id)
        except Exception:
            return None
        if seen is None:
            return None
        request.user = seen.user  # as TokenAuth.authenticate sets it
        return create_run_as(seen.user, body, seen)
    finally:
        connection.close_if_unusable_or_obsolete()


def _route_is_vetted() -> bool:
    """The route is still the one this door stands for: its view, token first
    then the session, and no throttle on it, its router or the API."""
    view = runs.router.path_operations.get("/runs")
    posts = [op for op in view.operations if "POST" in op.methods] if view else []
    return (
        len(posts) == 1
        and posts[0].view_func is runs.create_run
        and len(auth := posts[0].auth_callbacks) == 2
        and type(auth[0]) is AsyncTokenAuth
        and type(auth[1]) is SessionUnlessToken
        and posts[0].throttle_param is NOT_SET
        and runs.router.throttle is NOT_SET
        and api.throttle is NOT_SET
    )


def _chain_is_vetted() -> bool:
    if not enabled_by_environment():
        return False
    if not _route_is_vetted():
        log.warning("POST %s: not taking the fast door, the route changed", PATH)
        return False
    if list(settings.MIDDLEWARE) != VETTED_MIDDLEWARE:
        log.warning("POST %s: not taking the fast door, MIDDLEWARE changed", PATH)
        return False
    # Settings under which the chain answers before the view (redirects, user
    # agents) or the path is not the scope's own (a script prefix).
    return not (
        settings.SECURE_SSL_REDIRECT
        or settings.PREPEND_WWW
        or settings.DISALLOWED_USER_AGENTS
        or settings.FORCE_SCRIPT_NAME
    )


def _is_token_create(scope: dict[str, Any]) -> bool:
    """POST /api/runs with one Bearer Authorization header, one Content-Length,
    a JSON content type and no cookie; anything else is Django's."""
    if (
        scope["type"] != "http"
        or scope["method"] != "POST"
        or scope["path"] != PATH
        or scope.get("root_path")
    ):
        return False
    seen: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        name = name.lower()
        if name in (b"authorization", b"content-length", b"content-type"):
            if name in seen:
                return False  # Django would join them with ","
            seen[name] = value
        elif name == b"cookie":
            return False
    scheme = seen.get(b"authorization", b"").split(b" ", 1)[0]
    media = seen.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    return (
        scheme.lower() == b"bearer"
        and media == b"application/json"
        and seen.get(b"content-length", b"").isdigit()
    )


def _replay(chunks: list[bytes], more: bool, receive: Receive) -> Receive:
    """`receive` with what was already read put back in front."""
    pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": more}]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed


async def _send_response(response: HttpResponse, send: Send) -> None:
    """ASGIHandler.send_response for a response with content (every answer of
    this route): the same headers, cookies and body chunks."""
    headers = [
        (name.encode("ascii"), value.encode("latin1"))
        for name, value in response.items()
    ]
    for cookie in response.cookies.values():
        headers.append(
            (b"Set-Cookie", cookie.output(header="").encode("ascii").strip())
        )
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": headers,
        }
    )
    content = response.content
    size = ASGIHandler.chunk_size
    for start in range(0, max(len(content), 1), size):
        await send(
            {
                "type": "http.response.body",
                "body": content[start : start + size],
                "more_body": start + size < len(content),
            }
        )


async def _send_bare_500(send: Send) -> None:
    body = b"<h1>Server Error (500)</h1>"
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"Content-Type", b"text/html; charset=utf-8"),
                (b"Content-Length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
