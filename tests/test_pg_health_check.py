"""The PostgreSQL connection as settings.py sets it up. The backend's health
check (plugins_app/ops/postgres/base.py): a kept connection is checked
before its first query after every `close_if_unusable_or_obsolete()` (each
request, each protocol.in_pool call, each run-watcher push) by looking at
its socket, not with a `SELECT 1` round trip; and a connection the server
ended is still noticed and replaced. Parameters are bound by the server,
not quoted into the SQL text by the hub.

A child process on a fresh PostgreSQL database traces what its connection
sends (libpq's protocol trace) and prints it; the test checks it here.
"""

from __future__ import annotations

import json
import os
import select
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.production import child_on_fresh_database, needs_services

pytestmark = needs_services

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return child_on_fresh_database(
        "tests.test_pg_health_check", tmp_path_factory.mktemp("var"), timeout=120
    )


def test_the_hub_uses_the_backend_with_the_socket_check(
    traced: dict[str, Any],
) -> None:
    assert traced["engine"] == "plugins_app.ops.postgres.base"


def test_a_checked_connection_sends_no_select_1(traced: dict[str, Any]) -> None:
    # Three "requests", each ending with Django's check of its connection:
    # only their own statements reach the server (Django's check sent a
    # SELECT 1 before each).
    assert traced["sent"] == ["SELECT 2"] * 3


def test_parameters_are_bound_by_the_server(traced: dict[str, Any]) -> None:
    bound = traced["bound"]
    assert bound["sent"] == ["SELECT $1::text || $2"], bound
    assert bound["binds"] == 1
    assert bound["row"] == "it's bound"


def test_a_connection_the_server_ended_is_replaced_before_it_is_used(
    traced: dict[str, Any],
) -> None:
    """guard: Django's own check does the same, a round trip each time."""
    ended = traced["ended"]
    assert ended["socket_said_so"]
    assert ended["error"] is None
    assert ended["pid_after"] != ended["pid_before"]


# --- the child process ---------------------------------------------------------------
def _sent_queries(trace: str) -> list[str]:
    """The statements a libpq trace shows the client sending (simple Query or
    extended Parse messages), in order."""
    sent = []
    for line in trace.splitlines():
        fields = line.split("\t")
        if len(fields) >= 4 and fields[0] == "F" and fields[2] in ("Query", "Parse"):
            text = fields[3].strip()
            if fields[2] == "Parse":  # `"" "SELECT ..." 0`: the name, then the text
                text = text.split('"')[3]
            sent.append(text.strip('"'))
    return sent


def _child() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import psycopg
    from django.db import connections
    from psycopg import pq

    connection = connections["default"]
    result: dict[str, Any] = {"engine": type(connection).__module__}

    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        for _ in range(3):
            connection.close_if_unusable_or_obsolete()  # what ends each request
            with connection.cursor() as cursor:
                cursor.execute("SELECT 2")
                cursor.fetchone()
        pgconn.untrace()
        trace.seek(0)
        result["sent"] = _sent_queries(trace.read())

    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s::text || %s", ["it's", " bound"])
            row = cursor.fetchone()[0]
        pgconn.untrace()
        trace.seek(0)
        text = trace.read()
        result["bound"] = {
            "sent": _sent_queries(text),
            "binds": sum(1 for line in text.splitlines() if "\tBind\t" in line),
            "row": row,
        }

    # The server ends the connection (as a restart or an idle timeout would).
    pid_before = connection.connection.info.backend_pid
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid_before])
    poller = select.poll()
    poller.register(connection.connection.pgconn.socket, select.POLLIN)
    deadline = time.monotonic() + 10
    while not poller.poll(50) and time.monotonic() < deadline:
        pass
    socket_said_so = bool(poller.poll(0))
    connection.close_if_unusable_or_obsolete()
    error = None
    pid_after = None
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid_after = cursor.fetchone()[0]
    except Exception as exc:  # reported, not raised: the test says what failed
        error = repr(exc)
    result["ended"] = {
        "socket_said_so": socket_said_so,
        "error": error,
        "pid_before": pid_before,
        "pid_after": pid_after,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    _child()


def test_server_side_binding_keeps_the_options_database_url_set(
    tmp_path: Path,
) -> None:
    # A deployment's ?sslmode=require must survive: binding is added to it.
    import subprocess

    env = {
        **os.environ,
        "DATABASE_URL": "postgres://hub@db.invalid:5432/hub?sslmode=require",
        "HUB_METRICS_TOKEN": "options-test-token",
        "HUB_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "plugins_app.settings",
    }
    env.pop("HUB_TEST_DB", None)
    script = (
        "import json, django; django.setup(); from django.conf import settings;"
        "print(json.dumps(settings.DATABASES['default']['OPTIONS']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    options = json.loads(result.stdout.strip().splitlines()[-1])
    assert options == {"sslmode": "require", "server_side_binding": True}
