"""A run watcher's push on PostgreSQL reads in one round trip
(web/watch_reads.py): the run with its plugin, project and creator, the log
lines after the watcher's cursor and the items, sent together in psycopg's
pipeline mode. Before: three round trips (a fourth for a succeeded run, and
the health check's SELECT 1), each one between a plugin's answer and the
browser seeing it.
And the fragment it renders is the one the ORM's reads rendered.

A child process on a fresh PostgreSQL database (bench/hub_setup.py's hub)
traces what its connection sends (libpq's protocol trace) and prints it.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.production import (
    child_on_fresh_database,
    needs_services,
    seeded_model_plugin,
)

pytestmark = needs_services

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return child_on_fresh_database(
        "tests.test_watch_reads_pg", tmp_path_factory.mktemp("var"), timeout=120
    )


def test_a_push_while_the_run_goes_on_reads_in_one_round_trip(
    pushed: dict[str, Any],
) -> None:
    # One Sync for the three statements, none sent on its own (a Query).
    running = pushed["running"]
    assert running["round_trips"] == 1, running["messages"]
    assert running["statements"] == 3, running["messages"]
    assert pushed["lines_pushed"]


def test_the_push_of_a_finished_run_reads_in_two_round_trips(
    pushed: dict[str, Any],
) -> None:
    # The pipeline, then the "nothing written?" check of a succeeded Model run
    # (runs/selectors.py progress_of reads the run's tasks itself).
    finished = pushed["finished"]
    assert finished["round_trips"] == 2, finished["messages"]
    assert finished["statements"] == 4, finished["messages"]


def test_the_push_shows_what_the_orm_reads_showed(pushed: dict[str, Any]) -> None:
    """guard: the status and the new log lines, as before."""
    assert pushed["same_status"]
    assert pushed["lines"] == ["first line", "second line"]
    assert "Succeeded" in pushed["html"]
    assert pushed["missing"] == "DoesNotExist"


# --- the child process ---------------------------------------------------------------
def _round_trips(call: Any) -> tuple[dict[str, Any], Any]:
    """What `call` sent on this process's connection (libpq's trace): the
    messages, the round trips (a Sync ends a pipeline or an extended-protocol
    statement, a Query is a simple statement) and the statements."""
    from django.db import connection
    from psycopg import pq

    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            returned = call()
        finally:
            pgconn.untrace()
        trace.seek(0)
        sent = [
            line.split("\t")[2:4]
            for line in trace.read().splitlines()
            if line.startswith("F\t")
        ]
    kinds = [message[0] for message in sent]
    return {
        "messages": [" ".join(message)[:300] for message in sent],
        "round_trips": kinds.count("Sync") + kinds.count("Query"),
        "statements": kinds.count("Parse") + kinds.count("Query"),
    }, returned


def _child() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()

    from plugins_app.plugins.models import PluginInstance
    from plugins_app.runs.creation import RunRequest, run_create
    from plugins_app.runs.dispatch import dispatch_pending
    from plugins_app.runs.models import Run
    from plugins_app.runs.notify import hub_log
    from plugins_app.runs.responses import item_respond
    from plugins_app.web import fragments

    plugin, project, user = seeded_model_plugin()
    channel = "watch!one"
    PluginInstance.objects.create(plugin=plugin, channel_name=channel, address="w:1")
    asset = project.assets.order_by("id").first()
    assert asset is not None
    run = run_create(
        RunRequest(
            plugin=plugin,
            project=project,
            user=user,
            class_mapping={"face": "face-box"},
            config_json="{}",
            external_ids=[asset.external_id],
            batch_ids=[],
        ),
        dispatch=False,
    )
    dispatch_pending(plugin.pk)
    first = fragments.run_update(run.pk, after=0, status_shown=None)
    hub_log(run, "first line")
    hub_log(run, "second line")
    running, lines_push = _round_trips(
        lambda: fragments.run_update(
            run.pk, after=first.cursor, status_shown=first.status_shown
        )
    )
    session = run.items.get().session
    answer = {"objects": [{"schemaId": "face-box", "bounding-box": BOX}]}
    item_respond(
        session=session,
        payload={"session": session, "response": answer},
        channel_name=channel,
    )
    finished, update = _round_trips(
        lambda: fragments.run_update(run.pk, after=first.cursor, status_shown=None)
    )
    # What the page renders, from the ORM's reads.
    shown = Run.objects.select_related("plugin", "project", "created_by").get(pk=run.pk)
    orm_status = fragments._render_live(fragments._live_context(shown))
    try:
        fragments.run_update(10**9, after=0, status_shown=None)
        missing = "found"
    except Run.DoesNotExist:
        missing = "DoesNotExist"
    lines = [
        message
        for message in ("first line", "second line", "Run succeeded")
        if message in update.html
    ]
    print(
        json.dumps(
            {
                "running": running,
                "finished": finished,
                "lines_pushed": "first line" in lines_push.html,
                "same_status": update.html.startswith(orm_status),
                "lines": lines[:2],
                "html": update.html,
                "missing": missing,
            }
        )
    )


BOX = {"x": 1, "y": 2, "width": 3, "height": 4}

if __name__ == "__main__":
    _child()
