"""Who is calling the JSON API: a personal token (`Authorization: Bearer`),
checked on every request, or the browser session (in __init__.py)."""

from __future__ import annotations

import functools
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.http import HttpRequest
from ninja.security import HttpBearer, SessionAuth

from plugins_app import protocol
from plugins_app.plugins.secrets import token_hash
from plugins_app.workspace.models import ApiToken


class TokenAuth(HttpBearer):
    """A personal token, looked up on every request: deleting the token or
    deactivating its user refuses it at once, in every process (a cache of
    accepted tokens could not be told, across processes, of a revocation).
    What is kept is the SQL: one prepared SELECT of the token's user, built
    into a User without the ORM's query compiler (~5× the CPU of the query)."""

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        user = _token_user(token_hash(token))
        if user is None:
            return None
        request.user = user
        return user


class AsyncTokenAuth(TokenAuth):
    """TokenAuth for async views: the same lookup, on protocol.in_pool's
    thread (a sync authenticator would get a thread of its own per request)."""

    async def authenticate(self, request: HttpRequest, token: str) -> Any:
        user = await protocol.in_pool(_token_user, token_hash(token))
        if user is None:
            return None
        request.user = user
        return user


@functools.cache
def _token_user_sql() -> str:
    """The SELECT of a token's active user; only quoted names from the models
    are formatted in, the key hash goes as a parameter."""
    quote = connection.ops.quote_name
    user, token = get_user_model()._meta, ApiToken._meta

    def col(meta: Any, name: str) -> str:
        return quote(meta.get_field(name).column)

    return (
        f"SELECT u.* FROM {quote(token.db_table)} t "  # noqa: S608
        f"JOIN {quote(user.db_table)} u "
        f"ON u.{col(user, 'id')} = t.{col(token, 'user')} "
        f"WHERE t.{col(token, 'key_hash')} = %s AND u.{col(user, 'is_active')}"
    )


def _token_user(key_hash: str) -> Any:
    """The active user of a token (None: no such token, or its user is not
    active). A raw query: the backend's converters apply, the compiler does not."""
    found = get_user_model().objects.raw(_token_user_sql(), [key_hash])
    return next(iter(found), None)


class SessionUnlessToken(SessionAuth):
    """The browser session, for calls that bring no `Authorization` header.

    A call with one is a script's: when its token is refused it gets the 401
    of a refused token. Before, it fell through to the session, whose CSRF
    check (a script has no cookie) answered 403 "CSRF check Failed" to a POST:
    true, but about the wrong thing. A call with both a session cookie and a
    refused token is refused too, not let in by the cookie without a token."""

    def __call__(self, request: HttpRequest) -> Any:
        if "HTTP_AUTHORIZATION" in request.META:
            return None
        return super().__call__(request)


session_auth = SessionUnlessToken()
