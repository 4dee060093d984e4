"""A plugin's answer applied in a handful of statements (runs/responses.py,
workspace/prelabel.py `write_prelabel`, runs/ledger.py `run_settle`) keeps every
guarantee of the general path: a task holding a person's work is never
written by it (the whole rule then keeps it and says why), the ledger and the
history hold what was replaced so undo gives it back, and the run ends once
with the status its items call for. The same race on PostgreSQL, with two
connections: test_answer_apply_pg.py."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from plugins_app.plugins.models import Plugin
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.models import Run, WorkItem
from plugins_app.runs.responses import item_respond
from plugins_app.runs.undo import run_undo
from plugins_app.workspace import events, human_work, prelabel, writes
from plugins_app.workspace.models import AnswerWrite, Submission, Task, TaskEvent
from tests.builders import connect_instance, new_run

CHANNEL = "apply!one"
BOX = {"x": 1, "y": 2, "width": 3, "height": 4}
ANSWER = {"objects": [{"schemaId": "face-box", "bounding-box": BOX}]}
PRE = {"tools": [], "note": "an earlier pre-label"}
MINE = {"tools": [{"schemaId": "coin-box", "objectId": "mine", "bounding-box": BOX}]}


@pytest.fixture
def plugin(make_plugin: Any) -> Plugin:
    plugin: Plugin = make_plugin(timeout=30).plugin
    connect_instance(plugin, CHANNEL)
    return plugin


def leased(workspace: Any, plugin: Plugin, *external_ids: str) -> list[WorkItem]:
    run = new_run(workspace, plugin, *external_ids)
    dispatch_pending(plugin.pk)
    items = list(run.items.order_by("id"))
    assert all(i.state == WorkItem.State.LEASED for i in items)
    return items


def respond(item: WorkItem, **payload: Any) -> str:
    return item_respond(
        session=item.session,
        payload={"session": item.session, **(payload or {"response": ANSWER})},
        channel_name=CHANNEL,
    )


def test_an_answer_on_an_untouched_task_is_written_with_its_ledger_history_and_undo(
    workspace: Any, plugin: Plugin
) -> None:
    task = workspace.asset("astronaut").task
    Task.objects.filter(pk=task.pk).update(answer=PRE)
    (item,) = leased(workspace, plugin, "astronaut")

    assert respond(item) == "done"

    task.refresh_from_db()
    run = Run.objects.get(pk=item.run_id)
    assert [t["schemaId"] for t in task.answer["tools"]] == ["face-box"]
    assert (task.status, task.prelabel_run_id) == (Task.Status.TODO, run.pk)
    write = AnswerWrite.objects.get(run=run)
    assert (write.outcome, write.task_id, write.reason) == ("written", task.pk, "")
    assert (write.previous_answer, write.previous_status) == (PRE, Task.Status.TODO)
    assert write.previous_prelabel_run_id is None
    assert write.written_status == Task.Status.TODO
    event = TaskEvent.objects.get(task=task, name=events.ANSWER_WRITTEN)
    assert event.actor_label == f"plugin {plugin.name}"
    assert event.data["previousAnswer"] == PRE
    assert (event.data["run"], event.data["via"]) == (run.pk, writes.VIA_MODEL)
    # The item's line, then the close's, in that order (one INSERT).
    lines = list(run.log_lines.order_by("id").values_list("message", flat=True))
    assert lines[-2].startswith("astronaut: stored 1 object(s)")
    assert lines[-1] == "Run succeeded."
    assert run.status == Run.Status.SUCCEEDED and run.finished_at is not None
    assert not run.api_keys.filter(revoked_at__isnull=True).exists()

    run_undo(run, by=workspace.admin)
    task.refresh_from_db()
    assert (task.answer, task.prelabel_run_id) == (PRE, None)


def _submitted(workspace: Any, task: Task) -> None:
    Task.objects.filter(pk=task.pk).update(answer=MINE, status=Task.Status.SUBMITTED)
    Submission.objects.create(task=task, user=workspace.annotator, answer=MINE)


def _sent_back_with_its_answer(workspace: Any, task: Task) -> None:
    Task.objects.filter(pk=task.pk).update(answer=MINE)
    Submission.objects.create(task=task, user=workspace.annotator, answer=MINE)


def _one_of_two_labels_in(workspace: Any, task: Task) -> None:
    # Consensus: a labeler's submission while the task stays To-Do, empty.
    Submission.objects.create(task=task, user=workspace.annotator, answer=MINE)


def _reviewed(workspace: Any, task: Task) -> None:
    Task.objects.filter(pk=task.pk).update(answer=MINE, status=Task.Status.REVIEWED)


def _in_review_stage_to_do(workspace: Any, task: Task) -> None:
    # A status that no longer matches its stage: written, it would leave To-Do.
    Task.objects.filter(pk=task.pk).update(stage="Review")


@pytest.mark.parametrize(
    "touch",
    [
        _submitted,
        _sent_back_with_its_answer,
        _one_of_two_labels_in,
        _reviewed,
        _in_review_stage_to_do,
    ],
)
def test_the_short_write_refuses_every_task_a_person_may_hold(
    workspace: Any, plugin: Plugin, touch: Any
) -> None:
    """The guard of `write_prelabel` refuses at least what held_by_people
    holds; whatever it refuses goes the whole way, which writes or keeps by
    the rule, with the same rows as before."""
    task = workspace.asset("astronaut").task
    touch(workspace, task)
    task.refresh_from_db()
    before = (task.answer, task.status, task.prelabel_run_id)
    held = human_work.held_by_people([task])
    (item,) = leased(workspace, plugin, "astronaut")
    run = Run.objects.select_related("plugin", "project").get(pk=item.run_id)

    with transaction.atomic():
        report = prelabel.write_prelabel(
            run, run.project, task.asset_id, {"tools": []}, via="test", version=""
        )
        assert report is None
        assert not AnswerWrite.objects.filter(run=run).exists()
        task.refresh_from_db()
        assert (task.answer, task.status, task.prelabel_run_id) == before

    outcome = respond(item)
    task.refresh_from_db()
    if held:
        assert outcome == "skipped"  # the answer was kept off the task
        assert (task.answer, task.status) == before[:2]
        write = AnswerWrite.objects.get(run=run)
        assert write.outcome == AnswerWrite.Outcome.SKIPPED
        assert write.reason == held[task.pk]
        assert TaskEvent.objects.filter(task=task, name=events.ANSWER_KEPT).exists()
        assert WorkItem.objects.get(pk=item.pk).state == WorkItem.State.SKIPPED
    else:
        assert outcome == "done"
        assert task.prelabel_run_id == run.pk
        assert AnswerWrite.objects.get(run=run).outcome == "written"


def test_a_run_of_several_items_ends_once_with_the_status_they_call_for(
    workspace: Any, plugin: Plugin
) -> None:
    first, second = leased(workspace, plugin, "astronaut", "coins")
    run = Run.objects.get(pk=first.run_id)

    assert respond(first) == "done"
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING and run.finished_at is None
    assert respond(second, error=True) == "error"

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert run.error.startswith("The plugin reported an error")
    closes = run.log_lines.filter(message__regex=r"^Run [a-z ]+\.$")
    assert list(closes.values_list("message", flat=True)) == ["Run failed."]
    # A late answer for an item already done changes nothing.
    assert respond(first) == "stale"
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED


def test_an_answer_is_applied_in_eight_statements(
    workspace: Any, plugin: Plugin
) -> None:
    """The read of the item, then in one transaction the claim, the ledger
    row, the task, its history, the close, the keys and the log lines.
    Before the short path: 14, and a savepoint pair."""
    (item,) = leased(workspace, plugin, "astronaut")
    with CaptureQueriesContext(connection) as queries:
        assert respond(item) == "done"
    statements = [
        q["sql"]
        for q in queries.captured_queries
        if not q["sql"].startswith(("BEGIN", "SAVEPOINT", "RELEASE"))
    ]
    assert len(statements) <= 8, [sql[:80] for sql in statements]
