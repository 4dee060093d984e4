"""Who is calling the JSON API: a personal token (`Authorization: Bearer`),
checked on every request, or the browser session (in __init__.py)."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from django.contrib.auth import get_user_model
from django.db import connections, router
from django.http import HttpRequest
from ninja.security import HttpBearer, SessionAuth

from plugins_app import protocol
from plugins_app.plugins.models import Plugin
from plugins_app.plugins.secrets import token_hash
from plugins_app.web.access import member_of_sql, member_rows
from plugins_app.workspace.bulk import quoted
from plugins_app.workspace.models import ApiToken, Project
from plugins_app.workspace.rows import ModelRows


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
    joined, where = _token_user_parts()
    return f"SELECT {_access_rows()[0].select('u')} {joined} {where}"


def _token_user_parts() -> tuple[str, str]:
    """FROM the token `t` JOIN its user `u`, and the WHERE of an active user
    of the key hash (the last parameter): both lookups' common part."""
    q, user, token = quoted, get_user_model(), ApiToken
    return (
        f"FROM {q(token)} t JOIN {q(user)} u "
        f"ON u.{q(user, 'id')} = t.{q(token, 'user')}",
        f"WHERE t.{q(token, 'key_hash')} = %s AND u.{q(user, 'is_active')}",
    )


class TokenAccess(NamedTuple):
    """A token's active user, and the plugin and project a call names if the
    user may see them (None: a 404, as web/access.py answers)."""

    user: Any
    plugin: Plugin | None
    project: Project | None


class BearerHash(HttpBearer):
    """The hash of the Bearer token of a request (None: no Bearer header), as
    TokenAuth reads the header: ninja's parsing, no lookup."""

    def authenticate(self, request: HttpRequest, token: str) -> str:
        return token_hash(token)


def token_access(key_hash: str, plugin_id: int, project_id: int) -> TokenAccess | None:
    """TokenAuth's lookup and web/access.py's plugin and project checks of
    the create (POST /api/runs by token: web/api/fast_create.py) in one
    statement: the token's active user (None: refused), each of the two rows
    LEFT JOINed on the user's membership of its organization."""
    users, plugins, projects = _access_rows()
    db = router.db_for_read(Plugin)
    with connections[db].cursor() as cursor:
        cursor.execute(_token_access_sql(), [plugin_id, project_id, key_hash])
        rows = cursor.fetchall()
    if not rows:
        return None
    at = users.width
    (user,) = users.instances(rows, db)
    (plugin,) = plugins.instances(rows, db, at)
    (project,) = projects.instances(rows, db, at + plugins.width)
    return TokenAccess(user, plugin, project)


@functools.cache
def _access_rows() -> tuple[ModelRows[Any], ModelRows[Plugin], ModelRows[Project]]:
    return ModelRows(get_user_model()), member_rows(Plugin), member_rows(Project)


@functools.cache
def _token_access_sql() -> str:
    users, plugins, projects = _access_rows()
    joined, where = _token_user_parts()
    q, user_id = quoted, f"u.{quoted(get_user_model(), 'id')}"
    return (
        f"SELECT {users.select('u')}, {plugins.select('p')}, "  # noqa: S608
        f"{projects.select('r')} {joined} "
        f"LEFT JOIN {q(Plugin)} p ON p.{q(Plugin, 'id')} = %s "
        f"AND {member_of_sql(Plugin, 'p', user_id)} "
        f"LEFT JOIN {q(Project)} r ON r.{q(Project, 'id')} = %s "
        f"AND {member_of_sql(Project, 'r', user_id)} {where}"
    )


def _token_user(key_hash: str) -> Any:
    """The active user of a token (None: no such token, or its user is not
    active). Its rows made into a User as `objects.raw` makes them, without
    RawQuerySet's column mapping on every call."""
    found = _access_rows()[0].fetch(_token_user_sql(), [key_hash])
    return found[0] if found else None


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
