"""The short pre-label write (workspace/prelabel.py `write_prelabel`) racing a
person and another answer on PostgreSQL, where two connections really run at
once (SQLite's write transaction serializes them: test_answer_apply.py).

A child process on a fresh PostgreSQL database (bench/hub_setup.py's hub)
runs each race with two threads, each on its own connection, one of them
holding its transaction open for a moment at the point that matters, and
prints what the database holds afterwards; the test checks it here.
"""

from __future__ import annotations

import json
import sys
import threading
import time
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
HOLD = 1.0  # seconds the first transaction stays open
BOX = {"x": 1, "y": 2, "width": 3, "height": 4}
ANSWER = {"objects": [{"schemaId": "face-box", "bounding-box": BOX}]}
MINE = {"tools": [{"schemaId": "face-box", "objectId": "mine", "bounding-box": BOX}]}


@pytest.fixture(scope="module")
def races(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return child_on_fresh_database(
        "tests.test_answer_apply_pg", tmp_path_factory.mktemp("var"), timeout=300
    )


def test_a_submit_that_comes_first_keeps_its_answer_and_the_plugins_is_kept_off(
    races: dict[str, Any],
) -> None:
    race = races["submit_first"]
    assert race["outcome"] == "skipped"
    assert race["status"] == "SUBMITTED"
    assert [t["objectId"] for t in race["answer"]["tools"]] == ["mine"]
    assert race["ledger"] == [["skipped", "SUBMITTED"]]
    assert "answer.kept" in race["history"]
    # The answer waited for the submit's transaction, then saw it.
    assert race["waited"] >= HOLD * 0.8


def test_an_answer_that_comes_first_is_what_the_submit_replaces(
    races: dict[str, Any],
) -> None:
    race = races["answer_first"]
    assert race["outcome"] == "done"
    assert race["status"] == "SUBMITTED"
    assert [t["objectId"] for t in race["answer"]["tools"]] == ["mine"]
    assert race["ledger"] == [["written", "TODO"]]
    # The person's submit waited for the answer and records it as replaced.
    assert race["submit_replaced"]["tools"][0]["schemaId"] == "face-box"
    assert race["waited"] >= HOLD * 0.8


def test_two_answers_to_one_task_each_keep_what_the_other_wrote(
    races: dict[str, Any],
) -> None:
    """The second answer's ledger row holds the first one's answer (not the
    one it read before the first committed): undoing them in turn is exact."""
    race = races["two_answers"]
    assert race["outcomes"] == ["done", "done"]
    first_written, second_previous = race["first_written"], race["second_previous"]
    assert second_previous == first_written
    assert race["waited"] >= HOLD * 0.8


# --- the child process ---------------------------------------------------------------
def _child() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection, transaction

    from plugins_app.plugins.models import Plugin, PluginInstance
    from plugins_app.runs.creation import RunRequest, run_create
    from plugins_app.runs.dispatch import dispatch_pending
    from plugins_app.runs.models import WorkItem
    from plugins_app.runs.responses import item_respond
    from plugins_app.workspace.lifecycle import task_submit
    from plugins_app.workspace.models import AnswerWrite, Task, TaskEvent

    plugin, project, user = seeded_model_plugin()
    Plugin.objects.filter(pk=plugin.pk).update(concurrency=50)
    channel = "race!one"
    PluginInstance.objects.create(plugin=plugin, channel_name=channel, address="r:1")
    tasks = iter(project.tasks.select_related("asset").order_by("id"))

    def leased_on(task: Task, runs: int = 1) -> list[str]:
        for _ in range(runs):
            run_create(
                RunRequest(
                    plugin=plugin,
                    project=project,
                    user=user,
                    class_mapping={"face": "face-box"},
                    config_json="{}",
                    external_ids=[task.asset.external_id],
                    batch_ids=[],
                ),
                dispatch=False,
            )
        dispatch_pending(plugin.pk)
        items = WorkItem.objects.filter(asset=task.asset, state="leased")
        return list(items.order_by("id").values_list("session", flat=True))

    def answer(session: str) -> str:
        return item_respond(
            session=session,
            payload={"session": session, "response": ANSWER},
            channel_name=channel,
        )

    def race(first: Any, second: Any) -> float:
        """`first` runs in a transaction held open HOLD s after it; `second`
        starts once `first` is done but not committed. Returns how long
        `second` took."""
        ready, took = threading.Event(), [0.0]

        def hold() -> None:
            try:
                with transaction.atomic():
                    first()
                    ready.set()
                    time.sleep(HOLD)
            finally:
                ready.set()
                connection.close()

        def follow() -> None:
            ready.wait()
            t0 = time.monotonic()
            try:
                second()
            finally:
                took[0] = time.monotonic() - t0
                connection.close()

        threads = [threading.Thread(target=hold), threading.Thread(target=follow)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return took[0]

    def state(task: Task) -> dict[str, Any]:
        task.refresh_from_db()
        ledger = AnswerWrite.objects.filter(task=task).order_by("id")
        return {
            "status": task.status,
            "answer": task.answer,
            "ledger": [
                list(r) for r in ledger.values_list("outcome", "previous_status")
            ],
            "history": list(
                TaskEvent.objects.filter(task=task)
                .order_by("id")
                .values_list("name", flat=True)
            ),
        }

    results: dict[str, Any] = {}

    # A person submits; the plugin's answer arrives while that is uncommitted.
    task = next(tasks)
    (session,) = leased_on(task)
    outcome: list[str] = []
    waited = race(
        lambda: task_submit(task, user=user, answer=MINE),
        lambda: outcome.append(answer(session)),
    )
    results["submit_first"] = {"outcome": outcome[0], "waited": waited} | state(task)

    # The plugin's answer is written; a person submits before it commits.
    task = next(tasks)
    (session,) = leased_on(task)
    outcome = []
    waited = race(
        lambda: outcome.append(answer(session)),
        lambda: task_submit(task, user=user, answer=MINE),
    )
    submitted = TaskEvent.objects.get(task=task, name="label.submitted")
    results["answer_first"] = {
        "outcome": outcome[0],
        "waited": waited,
        "submit_replaced": submitted.data.get("previousAnswer"),
    } | state(task)

    # Two runs answer the same task at once.
    task = next(tasks)
    first, second = leased_on(task, runs=2)
    outcomes: list[str] = []
    wrote: list[Any] = []

    def answer_first() -> None:
        outcomes.append(answer(first))
        wrote.append(Task.objects.get(pk=task.pk).answer)  # before the commit

    waited = race(answer_first, lambda: outcomes.append(answer(second)))
    rows = list(AnswerWrite.objects.filter(task=task).order_by("id"))
    results["two_answers"] = {
        "outcomes": outcomes,
        "waited": waited,
        "first_written": wrote[0],
        "second_previous": rows[1].previous_answer if len(rows) > 1 else None,
    }
    print(json.dumps(results))


if __name__ == "__main__":
    _child()
