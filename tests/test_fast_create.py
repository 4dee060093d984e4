"""POST /api/runs through its own door (web/api/fast_create.py) answers as
Django's handler and ninja do: each request of a matrix goes once through the
fast door and once through Django's http app alone, over the real ASGI apps,
and status, JSON body (ids and timestamps aside), headers (in order) and the
django.request log lines must be the same; the door must have answered the
calls it is meant for itself, and handed every other one to Django."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.core.handlers.asgi import ASGIHandler
from django.db.backends.utils import CursorWrapper
from django.http import Http404
from django.test import override_settings

from plugins_app import protocol
from plugins_app.asgi import django_asgi_app, http_app
from plugins_app.plugins.models import Plugin, PluginType
from plugins_app.plugins.secrets import token_hash
from plugins_app.runs.models import Run
from plugins_app.web import access
from plugins_app.web.api import auth, fast_create, runs
from plugins_app.web.api.fast_create import FastCreate
from plugins_app.workspace.models import ApiToken, Membership, Project
from tests.builders import connect_instance
from tests.test_api import api_token

pytestmark = pytest.mark.django_db(transaction=True)

JSON = (b"content-type", b"application/json")
VOLATILE = {"id", "created_at", "started_at", "finished_at"}
# CSRF secrets and masked tokens (an HTML error page, its Set-Cookie) are new
# on every request.
CSRF_TOKEN = re.compile(rb"\b[A-Za-z0-9]{32}(?:[A-Za-z0-9]{32})?\b")


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    logs: list[tuple[str, str]] = field(default_factory=list)

    def comparable(self) -> tuple[Any, ...]:
        """Everything but what differs by nature: the new run's id and times
        (and so the body's length)."""
        headers = [(k.lower(), v) for k, v in self.headers]
        lengths = [v for k, v in headers if k == b"content-length"]
        assert lengths in ([], [str(len(self.body)).encode()])
        try:
            body: Any = json.loads(self.body)
        except ValueError:
            body = CSRF_TOKEN.sub(b"~", self.body)
        if isinstance(body, dict):
            body = {k: ("~" if k in VOLATILE else v) for k, v in body.items()}
        rest = [
            (k, CSRF_TOKEN.sub(b"~", v)) for k, v in headers if k != b"content-length"
        ]
        return self.status, body, rest, bool(lengths), self.logs


class RecordingDjango:
    """Django's http app, counting the calls that reach it."""

    def __init__(self, app: Any) -> None:
        self.app, self.calls = app, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        await self.app(scope, receive, send)


def call(
    app: Any,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    method: str = "POST",
    path: str = "/api/runs",
    scheme: str = "http",
    chunk: int = 0,
) -> Answer:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }

    async def exchange() -> Answer:
        communicator = ApplicationCommunicator(app, scope)
        size = chunk or len(body) or 1
        parts = [body[i : i + size] for i in range(0, len(body), size)]
        for part in parts[:-1]:
            await communicator.send_input(
                {"type": "http.request", "body": part, "more_body": True}
            )
        last = parts[-1] if parts else body
        await communicator.send_input({"type": "http.request", "body": last})
        start = await communicator.receive_output(timeout=20)
        content = b""
        while True:
            message = await communicator.receive_output(timeout=20)
            content += message.get("body", b"")
            if not message.get("more_body"):
                break
        await communicator.wait(timeout=5)
        return Answer(start["status"], start["headers"], content)

    return async_to_sync(exchange)()


@dataclass
class Setup:
    plugin: Plugin
    export: Plugin
    project_id: int
    tokens: dict[str, str]


@pytest.fixture
def setup(workspace: Any, make_plugin: Any) -> Setup:
    plugin = make_plugin().plugin
    export = make_plugin(type=PluginType.EXPORT, class_names=[]).plugin
    # Both doors create the same run: room for both to be leased at once.
    Plugin.objects.filter(pk__in=[plugin.pk, export.pk]).update(concurrency=100)
    connect_instance(plugin, "test!fast")
    connect_instance(export, "test!fast-export")
    dave = User.objects.create_user("dave", "dave@x.test", "pw")
    Membership.objects.create(
        user=dave, organization=workspace.org, role=Membership.Role.ADMIN
    )
    tokens = {name: api_token(name) for name in ("alice", "bob", "charlie", "dave")}
    User.objects.filter(pk=dave.pk).update(is_active=False)
    tokens["revoked"] = api_token("alice")
    ApiToken.objects.latest("pk").delete()
    return Setup(plugin, export, workspace.project.pk, tokens)


def create_body(setup: Setup, **extra: Any) -> dict[str, Any]:
    return {
        "plugin_id": setup.plugin.pk,
        "project_id": setup.project_id,
        "class_mapping": {"face": "face-box"},
        "external_ids": ["astronaut"],
    } | extra


def headers_for(
    body: bytes, token: str | None, *more: tuple[bytes, bytes]
) -> list[tuple[bytes, bytes]]:
    headers = [(b"host", b"127.0.0.1"), JSON, *more]
    headers.append((b"content-length", str(len(body)).encode()))
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return headers


def both_doors(
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    make_django: Callable[[], Any] = lambda: django_asgi_app,
    **kw: Any,
) -> tuple[Answer, Answer, int]:
    """(Django's answer, the fast door's answer, calls the door handed on)."""
    answers = []
    django = RecordingDjango(make_django())
    for app in (django, FastCreate(django)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, "django.request"):
            answer = call(app, body, headers, **kw)
        answer.logs = [
            (r.levelname, r.getMessage())
            for r in caplog.records
            if r.name == "django.request"
        ]
        answers.append(answer)
    return answers[0], answers[1], django.calls - 1


# (name, request body, token name or None, extra headers, expected status).
# A refused token is a 401 (web/api/auth.py SessionUnlessToken): the session
# door is only for calls without an Authorization header.
def matrix(setup: Setup) -> list[tuple[str, Any, str | None, list[Any], int]]:
    good = create_body(setup)
    replacing = create_body(setup, replace_submitted=True)
    deep: Any = {}
    for _ in range(settings.HUB_MAX_JSON_DEPTH + 5):
        deep = {"x": deep}
    return [
        ("create", good, "alice", [], 201),
        ("dry run", create_body(setup, dry_run=True), "alice", [], 201),
        (
            "export",
            {"plugin_id": setup.export.pk, "project_id": setup.project_id},
            "alice",
            [],
            201,
        ),
        ("unknown plugin", create_body(setup, plugin_id=987654), "alice", [], 404),
        ("unknown project", create_body(setup, project_id=987654), "alice", [], 404),
        ("another org's plugin", good, "charlie", [], 404),
        ("replace by a non-admin", replacing, "bob", [], 403),
        ("unknown asset", create_body(setup, external_ids=["nope"]), "alice", [], 400),
        ("bad mapping", create_body(setup, class_mapping={"x": "y"}), "alice", [], 400),
        ("id not a number", create_body(setup, plugin_id="x"), "alice", [], 422),
        ("id out of range", create_body(setup, plugin_id=10**30), "alice", [], 422),
        ("preview limit", create_body(setup, preview_limit=99), "alice", [], 422),
        ("missing fields", {"plugin_id": setup.plugin.pk}, "alice", [], 422),
        ("inputs too deep", create_body(setup, inputs=deep), "alice", [], 422),
        ("a list", [good], "alice", [], 422),
        ("empty body", b"", "alice", [], 422),
        ("not JSON", b"plugin_id=1", "alice", [], 400),
        ("nested past recursion", b"[" * 100_000, "alice", [], 400),
        ("huge number", b'{"plugin_id": ' + b"9" * 5000 + b"}", "alice", [], 400),
        ("wrong secret", good, "not-a-token", [], 401),
        ("revoked token", good, "revoked", [], 401),
        ("inactive user", good, "dave", [], 401),
        ("no token", good, None, [], 403),
        ("basic auth", good, None, [(b"authorization", b"Basic YTpi")], 401),
        ("with a cookie", good, "alice", [(b"cookie", b"sessionid=nope")], 201),
        ("text/plain", good, "alice", [(b"content-type", b"text/plain")], 201),
    ]


FAST = {
    "create",
    "dry run",
    "export",
    "unknown plugin",
    "unknown project",
    "another org's plugin",
    "replace by a non-admin",
    "unknown asset",
    "bad mapping",
}


def test_it_answers_each_request_as_django_does(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    for name, payload, token_name, extra, status in matrix(setup):
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        token = setup.tokens.get(token_name, token_name) if token_name else None
        headers = headers_for(raw, token, *extra)
        if name == "text/plain":
            headers = [h for h in headers if h != JSON]
        before = Run.objects.count()
        django, fast, handed_on = both_doors(caplog, raw, headers)

        assert django.status == status, (name, django.body[:300])
        assert fast.comparable() == django.comparable(), name
        # Only the calls it is meant for stay at the door; the rest pass once.
        assert handed_on == (0 if name in FAST else 1), name
        # One run per successful answer: none twice, none for a refusal.
        assert Run.objects.count() - before == (2 if status == 201 else 0), name


@pytest.mark.parametrize(
    "name, method, path, extra",
    [
        ("trailing slash", "POST", "/api/runs/", []),
        ("double slash", "POST", "//api/runs", []),
        ("GET", "GET", "/api/runs", []),
        ("another host", "POST", "/api/runs", [(b"host", b"evil.test")]),
        ("two tokens", "POST", "/api/runs", "twice"),
        ("short content-length", "POST", "/api/runs", "short"),
        ("no content-length", "POST", "/api/runs", "none"),
    ],
)
def test_it_hands_every_other_request_to_django_unchanged(
    setup: Setup,
    caplog: pytest.LogCaptureFixture,
    name: str,
    method: str,
    path: str,
    extra: Any,
) -> None:
    raw = json.dumps(create_body(setup)).encode()
    headers = headers_for(raw, setup.tokens["alice"])
    if extra == "twice":
        headers.append((b"authorization", b"Bearer other"))
    elif extra == "short":
        headers = [h for h in headers if h[0] != b"content-length"]
        headers.append((b"content-length", b"5"))
    elif extra == "none":
        headers = [h for h in headers if h[0] != b"content-length"]
    elif extra:
        headers = [h for h in headers if h[0] != b"host"] + extra
    with override_settings(ALLOWED_HOSTS=["127.0.0.1"]):
        django, fast, handed_on = both_doors(
            caplog, raw, headers, method=method, path=path
        )

    assert fast.comparable() == django.comparable()
    assert handed_on == 1
    if name == "another host":
        assert django.status == 400


def test_an_oversized_body_goes_to_django_with_every_byte(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    padding = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)
    raw = json.dumps(create_body(setup, config_json=padding)).encode()
    headers = headers_for(raw, setup.tokens["alice"])
    django, fast, handed_on = both_doors(caplog, raw, headers, chunk=65536)

    assert django.status == 400
    assert fast.comparable() == django.comparable() and handed_on == 1


def test_an_unexpected_error_is_djangos_500_and_logged_as_django_logs_it(
    setup: Setup, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(runs, "create_run_as", broken)
    monkeypatch.setattr(fast_create, "create_run_as", broken)
    raw = json.dumps(create_body(setup)).encode()
    django, fast, handed_on = both_doors(
        caplog, raw, headers_for(raw, setup.tokens["alice"])
    )

    assert django.status == 500 and handed_on == 0
    assert django.logs == [("ERROR", "Internal Server Error: /api/runs")]
    assert fast.comparable() == django.comparable()


@override_settings(
    SECURE_HSTS_SECONDS=3600, X_FRAME_OPTIONS="SAMEORIGIN", SECURE_REFERRER_POLICY=None
)
def test_the_security_headers_follow_the_settings_as_djangos_do(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    raw = json.dumps(create_body(setup)).encode()
    django, fast, handed_on = both_doors(
        caplog,
        raw,
        headers_for(raw, setup.tokens["alice"]),
        make_django=ASGIHandler,  # its chain reads the settings when built
        scheme="https",
    )

    assert django.status == 201 and handed_on == 0
    assert (b"Strict-Transport-Security", b"max-age=3600") in django.headers
    assert fast.comparable() == django.comparable()


def test_the_asgi_app_takes_the_door_unless_turned_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert isinstance(http_app, FastCreate) and http_app.enabled
    monkeypatch.setenv("HUB_FAST_CREATE", "0")
    assert not FastCreate(django_asgi_app).enabled
    monkeypatch.delenv("HUB_FAST_CREATE")
    with override_settings(MIDDLEWARE=[*settings.MIDDLEWARE, "x.Middleware"]):
        assert not FastCreate(django_asgi_app).enabled


def test_a_throttle_on_the_route_closes_the_door(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The door would skip a throttle (or another auth) added to the route."""
    from ninja.throttling import AnonRateThrottle

    view = runs.router.path_operations["/runs"]
    (create,) = [op for op in view.operations if "POST" in op.methods]
    assert FastCreate(django_asgi_app).enabled
    monkeypatch.setattr(create, "throttle_param", [AnonRateThrottle("1/s")])
    assert not FastCreate(django_asgi_app).enabled
    monkeypatch.undo()
    monkeypatch.setattr(create, "auth_callbacks", create.auth_callbacks[:1])
    assert not FastCreate(django_asgi_app).enabled


def test_the_openapi_schema_still_has_the_route() -> None:
    from plugins_app.web.api import api

    operation = api.get_openapi_schema()["paths"]["/api/runs"]["post"]
    assert operation["operationId"] == "plugins_app_web_api_create_run"
    assert {str(s) for s in operation["responses"]} == {"201", "400", "403"}


def test_the_token_and_the_access_checks_are_one_read_in_one_hop(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token create reads the token's user, the plugin and the project in
    one statement (auth.token_access), on one hop to the pool thread with the
    create (the lookup was a hop and three statements before it)."""
    statements: list[str] = []
    original = CursorWrapper._execute_with_wrappers

    def counted(self: Any, sql: str, *args: Any, **kwargs: Any) -> Any:
        statements.append(sql)
        return original(self, sql, *args, **kwargs)

    hops: list[str] = []
    in_pool = protocol.in_pool

    async def counted_hop(fn: Any, *args: Any) -> Any:
        hops.append(fn.__name__)
        return await in_pool(fn, *args)

    monkeypatch.setattr(CursorWrapper, "_execute_with_wrappers", counted)
    monkeypatch.setattr(protocol, "in_pool", counted_hop)
    raw = json.dumps(create_body(setup)).encode()
    django = RecordingDjango(django_asgi_app)
    answer = call(FastCreate(django), raw, headers_for(raw, setup.tokens["alice"]))

    assert answer.status == 201 and django.calls == 0
    assert len(hops) == 1
    activation = next(n for n, sql in enumerate(statements) if "UNION ALL" in sql)
    (read,) = statements[:activation]
    assert ApiToken._meta.db_table in read and Plugin._meta.db_table in read


def test_the_one_read_finds_what_the_orm_checks_find(setup: Setup) -> None:
    """auth.token_access: the token's active user as TokenAuth finds it, and
    the plugin and project each as web/access.py finds them (or None)."""
    for name in ("alice", "charlie"):
        token = setup.tokens[name]
        found = auth.token_access(token_hash(token), setup.plugin.pk, setup.project_id)
        assert found is not None
        user = User.objects.get(pk=found.user.pk)
        assert vars(found.user) | {"_state": 0} == vars(user) | {"_state": 0}
        for model, row, pk in [
            (Plugin, found.plugin, setup.plugin.pk),
            (Project, found.project, setup.project_id),
        ]:
            getter = (
                access.get_plugin_for_user
                if model is Plugin
                else access.get_project_for_user
            )
            try:
                expected = getter(user, pk)
            except Http404:
                assert row is None, (name, model)
                continue
            assert row is not None and type(row) is model
            assert vars(row) | {"_state": 0} == vars(expected) | {"_state": 0}
    gone = auth.token_access(token_hash(setup.tokens["alice"]), 987654, 987654)
    assert gone is not None and gone.plugin is None and gone.project is None
    for refused in ("revoked", "dave"):
        assert auth.token_access(token_hash(setup.tokens[refused]), 1, 1) is None, (
            refused
        )
    assert auth.token_access(token_hash("not-a-token"), 1, 1) is None
