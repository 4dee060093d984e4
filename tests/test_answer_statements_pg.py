"""A Model answer on PostgreSQL in four statements (each a round trip): the
claim that returns what applying reads, the pre-label (ledger, task, history:
one statement of data-modifying CTEs), the run's lock, and the settle (close,
keys, log lines: one statement). Before: nine, then five (a read before the
claim). What each folded statement writes is checked here against what the
separate statements wrote.

A child process on a fresh PostgreSQL database (bench/hub_setup.py's hub)
answers and prints what it counted and what the database holds.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
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
BOX = {"x": 1, "y": 2, "width": 3, "height": 4}
ANSWER = {"objects": [{"schemaId": "face-box", "bounding-box": BOX}]}
PRE = {"tools": [], "note": "an earlier pre-label \u2603"}


@pytest.fixture(scope="module")
def answered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return child_on_fresh_database(
        "tests.test_answer_statements_pg", tmp_path_factory.mktemp("var"), timeout=300
    )


def test_an_answer_is_four_statements(answered: dict[str, Any]) -> None:
    one = answered["one"]
    assert one["outcome"] == "done"
    assert len(one["statements"]) <= 4, one["statements"]
    assert one["statements"][0].startswith("UPDATE"), one["statements"]


def test_the_folded_statements_write_what_the_separate_ones_did(
    answered: dict[str, Any],
) -> None:
    one = answered["one"]
    assert one["run"] == ["succeeded", True]
    assert one["keys_open"] == 0
    assert one["lines"][-2][0].startswith(f"{one['external_id']}: stored 1 object(s)")
    assert one["lines"][-2][1] is not None  # the item's line names its item
    assert one["lines"][-1] == ["Run succeeded.", None]
    assert one["ledger"] == [["written", "TODO", PRE]]
    assert one["history_previous"] == PRE
    assert one["task"] == ["TODO", ["face-box"]]


def test_a_run_of_two_ends_once_failed_with_its_error(answered: dict[str, Any]) -> None:
    two = answered["two"]
    assert two["outcomes"] == ["done", "invalid"]
    assert two["run"][0] == "failed"
    assert two["run"][1].startswith("The plugin's answer was rejected:")
    assert two["closes"] == ["Run failed."]


# --- the child process ---------------------------------------------------------------
def _child() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection

    from plugins_app import protocol
    from plugins_app.plugins.models import PluginInstance
    from plugins_app.runs.creation import RunRequest, run_create
    from plugins_app.runs.dispatch import dispatch_pending
    from plugins_app.runs.models import Run, WorkItem
    from plugins_app.runs.responses import item_respond
    from plugins_app.workspace import events
    from plugins_app.workspace.models import AnswerWrite, Task, TaskEvent

    plugin, project, user = seeded_model_plugin()
    channel = "statements!one"
    PluginInstance.objects.create(plugin=plugin, channel_name=channel, address="s:1")
    astronaut, coins = project.assets.order_by("id")[:2]
    Task.objects.filter(asset=astronaut).update(answer=PRE)

    def leased(*external_ids: str) -> list[WorkItem]:
        run = run_create(
            RunRequest(
                plugin=plugin,
                project=project,
                user=user,
                class_mapping={"face": "face-box"},
                config_json="{}",
                external_ids=list(external_ids),
                batch_ids=[],
            ),
            dispatch=False,
        )
        dispatch_pending(plugin.pk)
        return list(run.items.order_by("id"))

    def answer(item: WorkItem, response: Any = ANSWER) -> str:
        return item_respond(
            session=item.session,
            payload={"session": item.session, "response": response},
            channel_name=channel,
        )

    # As in the ASGI process (bench/answer_cost.py): the freed-slot dispatch
    # after the commit goes to run_later's pool thread, not counted here.
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    protocol.mark_asgi_process(loop)
    statements: list[str] = []

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        statements.append(sql[:60])
        return execute(sql, params, many, context)

    (item,) = leased(astronaut.external_id)
    with connection.execute_wrapper(count):
        outcome = answer(item)
    run = Run.objects.get(pk=item.run_id)
    task = Task.objects.get(asset=astronaut)
    event = TaskEvent.objects.get(task=task, name=events.ANSWER_WRITTEN)
    one = {
        "outcome": outcome,
        "external_id": astronaut.external_id,
        "statements": statements,
        "run": [run.status, run.finished_at is not None],
        "keys_open": run.api_keys.filter(revoked_at__isnull=True).count(),
        "lines": [
            list(line)
            for line in run.log_lines.order_by("id").values_list("message", "item")
        ],
        "ledger": [
            list(w)
            for w in AnswerWrite.objects.filter(run=run).values_list(
                "outcome", "previous_status", "previous_answer"
            )
        ],
        "history_previous": event.data["previousAnswer"],
        "task": [task.status, [t["schemaId"] for t in task.answer["tools"]]],
    }

    first, second = leased(coins.external_id, astronaut.external_id)
    outcomes = [answer(first), answer(second, {"objects": [{"schemaId": "nope"}]})]
    run = Run.objects.get(pk=first.run_id)
    closes = run.log_lines.filter(message__regex=r"^Run [a-z ]+\.$")
    two = {
        "outcomes": outcomes,
        "run": [run.status, run.error],
        "closes": list(closes.values_list("message", flat=True)),
    }
    loop.call_soon_threadsafe(loop.stop)
    print(json.dumps({"one": one, "two": two}))


if __name__ == "__main__":
    _child()
