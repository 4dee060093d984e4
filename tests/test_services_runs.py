"""The run services: log parsing and ingestion, settling runs, the sweep,
dispatching with concurrency limits, and stale responses."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from plugins_app.plugins.models import Plugin, PluginInstance
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.logs import PluginLogRecord, logs_ingest, parse_log_event
from plugins_app.runs.models import Run, RunLogLine, WorkItem
from plugins_app.runs.responses import item_respond
from plugins_app.runs.sweep import runs_sweep
from plugins_app.wire.models import OutboxMessage
from plugins_app.workspace.models import Task
from tests.builders import (
    connect_instance,
    leased_per_instance,
    new_run,
    pass_deadline,
)

CHANNEL = "test!abc"
ANSWER = {
    "objects": [
        {
            "schemaId": "face-box",
            "bounding-box": {"x": 1, "y": 2, "width": 3, "height": 4},
        }
    ]
}


def connect(plugin: Plugin, channel: str = CHANNEL) -> PluginInstance:
    return connect_instance(plugin, channel)


def respond_ok(item: WorkItem) -> str:
    item.refresh_from_db()
    return item_respond(
        session=item.session,
        payload={"response": ANSWER},
        channel_name=item.instance.channel_name,
    )


def respond_error(item: WorkItem) -> str:
    item.refresh_from_db()
    return item_respond(
        session=item.session,
        payload={"error": "callback raised"},
        channel_name=item.instance.channel_name,
    )


# --- parse_log_event ------------------------------------------------------------
def test_it_reads_the_flat_extra_of_sdk_1_4() -> None:
    record = parse_log_event(
        {
            "progress": 3,
            "total": 10,
            "note": "warming up",
            "level": "WARNING",
            "organization": "7",
            "pluginId": "abc",
            "runBy": "bob",
            "session": "s-1",
            "msg": "loaded",
        }
    )

    assert record == PluginLogRecord(
        session="s-1",
        level="WARNING",
        message="loaded",
        extra={"progress": 3, "total": 10, "note": "warming up"},
    )


def test_it_reads_the_nested_extra_of_sdk_1_3() -> None:
    record = parse_log_event(
        {
            "extra": {"progress": 1, "total": 2},
            "level": "INFO",
            "organization": "7",
            "pluginId": "abc",
            "runBy": "bob",
            "session": "s-2",
            "msg": "echo got the job",
        }
    )

    assert record is not None
    assert record.session == "s-2"
    assert record.level == "INFO"
    assert record.message == "echo got the job"
    assert record.extra == {"progress": 1, "total": 2}


@pytest.mark.parametrize(
    "data",
    [None, "text", ["session"], {"msg": "no session"}, {"session": 5, "msg": "x"}],
)
def test_it_ignores_log_events_without_a_session(data: Any) -> None:
    assert parse_log_event(data) is None


def test_it_defaults_and_bounds_the_level() -> None:
    plain = parse_log_event({"session": "s"})
    long = parse_log_event({"session": "s", "level": "X" * 50, "msg": 42})

    assert plain is not None and plain.level == "INFO" and plain.message == ""
    assert long is not None and long.level == "X" * 20 and long.message == "42"


# --- logs_ingest ------------------------------------------------------------------
@pytest.fixture
def leased(workspace: Any, make_plugin: Any) -> tuple[Run, WorkItem]:
    plugin = make_plugin().plugin
    connect(plugin)
    run = new_run(workspace, plugin, "astronaut")
    assert dispatch_pending(plugin.pk) == 1
    return run, run.items.get()


def test_it_stores_log_lines_and_the_reported_progress(
    leased: tuple[Run, WorkItem],
) -> None:
    run, item = leased
    events = [
        {"session": item.session, "msg": "start", "progress": 1, "total": 4},
        {"session": item.session, "msg": "more", "extra": {"progress": 3, "total": 4}},
    ]

    dropped = logs_ingest([parse_log_event(e) for e in events], channel_name=CHANNEL)

    assert dropped == 0
    run.refresh_from_db()
    assert (run.reported_progress, run.reported_total) == (3, 4)
    lines = RunLogLine.objects.filter(run=run, item=item).exclude(level="HUB")
    assert [(ln.message, ln.extra) for ln in lines] == [
        ("start", {"progress": 1, "total": 4}),
        ("more", {"progress": 3, "total": 4}),
    ]


def test_it_ignores_progress_that_is_not_a_count(
    leased: tuple[Run, WorkItem],
) -> None:
    run, item = leased
    not_counts = [
        {"progress": True, "total": 4},
        {"progress": -1, "total": 4},
        {"progress": "2", "total": 4},
        {"progress": 2},
        {"progress": 2, "total": 2**40},
        {"progress": 2, "total": None},
    ]

    logs_ingest(
        [PluginLogRecord(item.session, "INFO", "x", e) for e in not_counts],
        channel_name=CHANNEL,
    )

    run.refresh_from_db()
    assert run.reported_progress is None and run.reported_total is None
    assert RunLogLine.objects.filter(run=run, message="x").count() == len(not_counts)


def test_it_drops_log_lines_of_sessions_the_instance_does_not_hold(
    leased: tuple[Run, WorkItem],
) -> None:
    run, item = leased
    records = [
        PluginLogRecord(item.session, "INFO", "mine", {"progress": 1, "total": 2}),
        PluginLogRecord("unknown-session", "INFO", "nobody's", {}),
    ]
    before = RunLogLine.objects.count()

    assert logs_ingest(records, channel_name=CHANNEL) == 1
    assert logs_ingest(records, channel_name="someone-else") == 2

    assert RunLogLine.objects.count() == before + 1
    assert RunLogLine.objects.filter(message="nobody's").count() == 0
    run.refresh_from_db()
    assert (run.reported_progress, run.reported_total) == (1, 2)


# --- settling runs ----------------------------------------------------------------
ASSETS = ("astronaut", "coins", "camera")


def test_it_succeeds_a_run_only_when_every_item_is_done(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect(plugin)
    run = new_run(workspace, plugin, *ASSETS)
    assert dispatch_pending(plugin.pk) == 3
    first, second, third = run.items.all()

    assert respond_ok(first) == "done"
    assert respond_ok(second) == "done"
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING and run.finished_at is None

    assert respond_ok(third) == "done"
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert run.finished_at is not None and run.error == ""
    assert set(run.items.values_list("state", flat=True)) == {WorkItem.State.DONE}
    for external_id in ASSETS:
        task = Task.objects.get(asset=workspace.asset(external_id))
        assert task.prelabel_run_id == run.pk
        assert task.answer["tools"][0]["schemaId"] == "face-box"


def test_it_fails_a_run_if_any_item_failed_once_all_are_finished(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect(plugin)
    run = new_run(workspace, plugin, *ASSETS)
    assert dispatch_pending(plugin.pk) == 3
    first, second, third = run.items.all()
    logs_ingest(
        [PluginLogRecord(first.session, "ERROR", "weights missing", {})],
        channel_name=CHANNEL,
    )

    assert respond_error(first) == "error"
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING  # the others are still out

    assert respond_ok(second) == "done"
    assert respond_ok(third) == "done"
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert "weights missing" in run.error
    first.refresh_from_db()
    assert first.state == WorkItem.State.FAILED
    assert first.failure == WorkItem.Failure.ERROR


def test_it_fails_a_run_whose_answer_is_invalid(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect(plugin)
    run = new_run(workspace, plugin, "coins")
    dispatch_pending(plugin.pk)
    item = run.items.get()

    outcome = item_respond(
        session=item.session,
        payload={"response": {"objects": [{"schemaId": "nope"}]}},
        channel_name=CHANNEL,
    )

    assert outcome == "invalid"
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert "rejected" in run.error and "nope" in run.error
    assert Task.objects.get(asset=workspace.asset("coins")).answer == {}


# --- the sweep --------------------------------------------------------------------
def test_it_fails_a_run_with_a_timeout_and_an_error(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(timeout=5, max_attempts=1).plugin
    connect(plugin)
    run = new_run(workspace, plugin, "astronaut", "coins")
    dispatch_pending(plugin.pk)
    expired, erring = run.items.all()
    pass_deadline(expired)

    runs_sweep()
    assert respond_error(erring) == "error"

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert "(and 1 more failed item(s))" in run.error


def test_it_times_out_a_run_whose_only_items_timed_out(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(timeout=5, max_attempts=1).plugin
    connect(plugin)
    run = new_run(workspace, plugin, "astronaut")
    dispatch_pending(plugin.pk)
    pass_deadline(run)

    runs_sweep()

    run.refresh_from_db()
    assert run.status == Run.Status.TIMED_OUT
    assert "plain dict" in run.error and "AnnotationPayload" in run.error
    # A late answer is stale now and changes nothing.
    assert respond_ok(run.items.get()) == "stale"
    assert Task.objects.get(asset=workspace.asset("astronaut")).answer == {}


def test_it_times_out_pending_items_that_waited_past_the_timeout(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(timeout=5).plugin
    instance = connect(plugin)
    waited = new_run(workspace, plugin, "astronaut")
    recent = new_run(workspace, plugin, "coins")
    PluginInstance.objects.filter(pk=instance.pk).update(disconnected_at=timezone.now())
    WorkItem.objects.filter(run=waited).update(
        queued_at=timezone.now() - timedelta(seconds=6)
    )

    assert runs_sweep() == {"timed_out": 1, "requeued": 0, "dispatched": 0}

    item = waited.items.get()
    assert item.state == WorkItem.State.FAILED
    assert item.failure == WorkItem.Failure.TIMEOUT
    assert "No instance of the plugin was connected to take this job for 5 s." in (
        item.error
    )
    waited.refresh_from_db()
    assert waited.status == Run.Status.TIMED_OUT and waited.finished_at
    assert recent.items.get().state == WorkItem.State.PENDING
    recent.refresh_from_db()
    assert recent.status == Run.Status.QUEUED


def test_it_dispatches_pending_items_from_the_sweep(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect(plugin)
    run = new_run(workspace, plugin, "astronaut")

    assert runs_sweep() == {"timed_out": 0, "requeued": 0, "dispatched": 1}

    assert run.items.get().state == WorkItem.State.LEASED
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING and run.started_at


def test_it_does_not_time_out_items_queued_behind_a_busy_live_instance(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(timeout=5).plugin
    Plugin.objects.filter(pk=plugin.pk).update(concurrency=1)
    connect(plugin)
    run = new_run(workspace, plugin, "astronaut", "coins", "camera")
    assert dispatch_pending(plugin.pk) == 1
    # 6 s later: the first job was answered after 4 s and the second went out
    # then; the third waits for the instance's only slot.
    Run.objects.filter(pk=run.pk).update(
        created_at=timezone.now() - timedelta(seconds=6)
    )
    first, second, third = run.items.all()
    assert respond_ok(first) == "done"
    assert dispatch_pending(plugin.pk) == 1

    runs_sweep()

    third.refresh_from_db()
    assert third.state == WorkItem.State.PENDING, third.error
    run.refresh_from_db()
    assert not run.is_finished


# --- dispatching ------------------------------------------------------------------
def test_it_sends_the_oldest_pending_item_first(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    Plugin.objects.filter(pk=plugin.pk).update(concurrency=1)
    connect(plugin)
    older = new_run(workspace, plugin, "coins")
    newer = new_run(workspace, plugin, "astronaut")
    Run.objects.filter(pk=newer.pk).update(
        created_at=older.created_at + timedelta(seconds=1)
    )

    assert dispatch_pending(plugin.pk) == 1

    assert older.items.get().state == WorkItem.State.LEASED
    assert newer.items.get().state == WorkItem.State.PENDING


def test_it_prefers_the_less_loaded_of_two_instances(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    Plugin.objects.filter(pk=plugin.pk).update(concurrency=4)
    connect(plugin, "busy")
    new_run(workspace, plugin, "astronaut", "coins")
    assert dispatch_pending(plugin.pk) == 2
    assert leased_per_instance() == {"busy": 2}
    connect(plugin, "idle")

    new_run(workspace, plugin, "camera", "coffee")
    assert dispatch_pending(plugin.pk) == 2

    assert leased_per_instance() == {"busy": 2, "idle": 2}
    idle_jobs = OutboxMessage.objects.filter(method="send", target="idle")
    assert {m.message["job"]["externalId"] for m in idle_jobs} == {"camera", "coffee"}


def test_an_instance_that_answers_again_is_back_in_line(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    slow = connect(plugin, "slow")
    PluginInstance.objects.filter(pk=slow.pk).update(timeouts=2)
    run = new_run(workspace, plugin, "astronaut")
    assert dispatch_pending(plugin.pk) == 1  # the only instance still gets work

    assert respond_ok(run.items.get()) == "done"

    slow.refresh_from_db()
    assert slow.timeouts == 0


def test_it_spreads_jobs_over_two_idle_instances(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect(plugin, "one")
    connect(plugin, "two")

    new_run(workspace, plugin, "astronaut", "coins", "camera", "coffee")
    assert dispatch_pending(plugin.pk) == 4

    assert leased_per_instance() == {"one": 2, "two": 2}


def test_it_skips_instances_that_are_not_live(workspace: Any, make_plugin: Any) -> None:
    plugin = make_plugin().plugin
    connect(plugin)
    run = new_run(workspace, plugin, "astronaut")
    PluginInstance.objects.filter(plugin=plugin).update(
        last_heartbeat=timezone.now() - timedelta(hours=1)
    )

    assert dispatch_pending(plugin.pk) == 0
    assert run.items.get().state == WorkItem.State.PENDING
    assert not OutboxMessage.objects.filter(method="send").exists()


# --- stale responses --------------------------------------------------------------
def test_it_ignores_a_response_for_a_finished_item(
    workspace: Any, leased: tuple[Run, WorkItem]
) -> None:
    run, item = leased
    assert respond_ok(item) == "done"
    task = Task.objects.get(asset=workspace.asset("astronaut"))
    item.refresh_from_db()
    run.refresh_from_db()

    other = {
        "objects": [
            {
                "schemaId": "face-box",
                "bounding-box": {"x": 50, "y": 50, "width": 5, "height": 5},
            }
        ]
    }
    outcome = item_respond(
        session=item.session, payload={"response": other}, channel_name=CHANNEL
    )

    assert outcome == "stale"
    after = Task.objects.get(pk=task.pk)
    assert after.answer == task.answer and after.updated_at == task.updated_at
    fresh_item = WorkItem.objects.get(pk=item.pk)
    assert (fresh_item.state, fresh_item.finished_at) == (item.state, item.finished_at)
    fresh_run = Run.objects.get(pk=run.pk)
    assert (fresh_run.status, fresh_run.finished_at) == (run.status, run.finished_at)


def test_it_ignores_a_response_from_an_instance_that_does_not_hold_the_job(
    workspace: Any, leased: tuple[Run, WorkItem]
) -> None:
    run, item = leased
    connect(run.plugin, "intruder")

    outcome = item_respond(
        session=item.session, payload={"response": ANSWER}, channel_name="intruder"
    )

    assert outcome == "stale"
    assert Task.objects.get(asset=workspace.asset("astronaut")).answer == {}
    item.refresh_from_db()
    assert item.state == WorkItem.State.LEASED and item.finished_at is None
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING
    # The rightful holder can still answer.
    assert respond_ok(item) == "done"


def test_it_ignores_a_response_for_an_unknown_session(
    leased: tuple[Run, WorkItem],
) -> None:
    lines = RunLogLine.objects.count()

    for session in ("no-such-session", None, 42):
        assert (
            item_respond(
                session=session, payload={"response": ANSWER}, channel_name=CHANNEL
            )
            == "unknown-session"
        )

    assert RunLogLine.objects.count() == lines
