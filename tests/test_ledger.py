"""The ledger's recovery services: cancel, retry, attempts per plugin, leases
renewed while their holder answers pings, priorities and instance capacity; then
a state machine that drives all of them in any order and checks that no job is
ever applied twice or left behind."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db.models import Count
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from plugins_app.plugins.models import Plugin, PluginInstance, lease_ttl
from plugins_app.runs.creation import RunRequestError
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.instances import (
    instance_disconnect,
    instance_heartbeat,
    instances_seen,
)
from plugins_app.runs.ledger import (
    TIMEOUT_CAUSES,
    RunActionError,
    run_cancel,
    run_retry,
)
from plugins_app.runs.models import Run, RunApiKey, RunLogLine, WorkItem
from plugins_app.runs.responses import item_respond
from plugins_app.runs.sweep import runs_sweep
from plugins_app.wire.consumer import _declared_capacity
from plugins_app.wire.models import OutboxMessage
from tests.builders import (
    connect_instance,
    leased_per_instance,
    new_run,
    pass_deadline,
)

CHANNEL = "ledger!one"
ANSWER = {
    "objects": [
        {
            "schemaId": "face-box",
            "bounding-box": {"x": 1, "y": 2, "width": 3, "height": 4},
        }
    ]
}
ASSETS = ("astronaut", "coins", "camera")


def respond(item: WorkItem, channel: str = "", **payload: Any) -> str:
    item.refresh_from_db()
    return item_respond(
        session=item.session,
        payload=payload or {"response": ANSWER},
        channel_name=channel or item.instance.channel_name,
    )


def past(seconds: float = 1) -> Any:
    return timezone.now() - timedelta(seconds=seconds)


def sent_to(channel: str) -> list[str]:
    return [
        m.message["job"]["session"]
        for m in OutboxMessage.objects.filter(method="send", target=channel)
    ]


@pytest.fixture
def plugin(make_plugin: Any) -> Plugin:
    return make_plugin(timeout=5).plugin


# --- cancel -----------------------------------------------------------------------
def test_it_cancels_pending_and_leased_items_and_revokes_the_keys(
    workspace: Any, plugin: Plugin
) -> None:
    Plugin.objects.filter(pk=plugin.pk).update(concurrency=1)
    connect_instance(plugin, CHANNEL)
    run = new_run(workspace, plugin, *ASSETS)
    assert dispatch_pending(plugin.pk) == 1
    held = run.items.get(state=WorkItem.State.LEASED)

    run = run_cancel(run, by=workspace.annotator)

    assert run.status == Run.Status.CANCELLED and run.finished_at
    assert "Cancelled by bob" in run.error
    assert set(run.items.values_list("state", flat=True)) == {"cancelled"}
    assert not RunApiKey.objects.filter(run=run, revoked_at__isnull=True).exists()
    messages = list(run.log_lines.filter(level="HUB").values_list("message", flat=True))
    assert "bob cancelled the run." in messages
    assert any("its answer will be ignored" in m for m in messages)
    # The held job's late answer is stale: logged, and nothing is written.
    assert respond(held, CHANNEL) == "stale"
    assert run.items.filter(state=WorkItem.State.DONE).count() == 0
    assert RunLogLine.objects.filter(item=held, message__contains="Ignored").exists()


def test_it_leaves_a_finished_run_alone_when_cancelled(
    workspace: Any, plugin: Plugin
) -> None:
    connect_instance(plugin, CHANNEL)
    run = new_run(workspace, plugin, "astronaut")
    dispatch_pending(plugin.pk)
    assert respond(run.items.get()) == "done"
    run.refresh_from_db()
    lines = run.log_lines.count()

    again = run_cancel(run, by=workspace.annotator)

    assert again.status == Run.Status.SUCCEEDED
    assert again.finished_at == run.finished_at
    assert run.items.get().state == WorkItem.State.DONE
    assert run.log_lines.count() == lines


def test_it_frees_the_cancelled_slots_for_other_runs(
    workspace: Any, plugin: Plugin, django_capture_on_commit_callbacks: Any
) -> None:
    Plugin.objects.filter(pk=plugin.pk).update(concurrency=1)
    connect_instance(plugin, CHANNEL)
    first = new_run(workspace, plugin, "astronaut")
    second = new_run(workspace, plugin, "coins")
    dispatch_pending(plugin.pk)

    with django_capture_on_commit_callbacks(execute=True):
        run_cancel(first, by=None)

    assert second.items.get().state == WorkItem.State.LEASED


# --- retry ------------------------------------------------------------------------
def test_it_retries_only_the_failed_items_keeping_their_attempts(
    workspace: Any, plugin: Plugin, django_capture_on_commit_callbacks: Any
) -> None:
    connect_instance(plugin, CHANNEL)
    run = new_run(workspace, plugin, "astronaut", "coins")
    dispatch_pending(plugin.pk)
    failing, fine = run.items.all()
    assert respond(failing, error="boom") == "error"
    assert respond(fine) == "done"
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    before = timezone.now()

    with django_capture_on_commit_callbacks(execute=True):
        run = run_retry(run, by=workspace.annotator)

    assert run.error == "" and run.finished_at is None
    failing.refresh_from_db()
    fine.refresh_from_db()
    # Queued again and dispatched at once by the on-commit hook.
    assert failing.state == WorkItem.State.LEASED
    assert failing.attempts == 2
    assert failing.error == "" and failing.failure == ""
    assert failing.queued_at >= before
    assert fine.state == WorkItem.State.DONE and fine.attempts == 1
    assert run.log_lines.filter(message="bob retried 1 failed item(s).").exists()
    assert respond(failing) == "done"
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED


def test_it_refuses_to_retry_a_running_run_or_one_without_failures(
    workspace: Any, plugin: Plugin
) -> None:
    connect_instance(plugin, CHANNEL)
    run = new_run(workspace, plugin, "astronaut")
    dispatch_pending(plugin.pk)

    with pytest.raises(RunActionError, match="Only a finished run"):
        run_retry(run, by=None)
    assert respond(run.items.get()) == "done"
    with pytest.raises(RunActionError, match="no failed item"):
        run_retry(run, by=None)

    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert run.items.get().state == WorkItem.State.DONE


# --- attempts per plugin ----------------------------------------------------------
def test_it_retries_a_job_past_its_deadline_until_the_plugins_max_attempts(
    workspace: Any, plugin: Plugin
) -> None:
    Plugin.objects.filter(pk=plugin.pk).update(max_attempts=2)
    connect_instance(plugin, CHANNEL)
    run = new_run(workspace, plugin, "astronaut")
    # Timeouts are retried only when the run asked (tests/test_run_page.py).
    Run.objects.filter(pk=run.pk).update(inputs={"retry_timeouts": True})
    dispatch_pending(plugin.pk)

    pass_deadline(run)
    assert runs_sweep() == {"timed_out": 0, "requeued": 1, "dispatched": 1}
    item = run.items.get()
    assert (item.state, item.attempts) == (WorkItem.State.LEASED, 2)
    assert item.deadline_at > timezone.now()
    assert run.log_lines.filter(message__contains="attempt 1 of 2").exists()

    pass_deadline(run)
    assert runs_sweep() == {"timed_out": 1, "requeued": 0, "dispatched": 0}
    item.refresh_from_db()
    assert item.state == WorkItem.State.FAILED
    assert item.failure == WorkItem.Failure.TIMEOUT
    assert item.error.startswith("No answer from the plugin within 5 s.")
    assert "Timed out after 2 attempt(s)." in item.error
    assert TIMEOUT_CAUSES in item.error
    run.refresh_from_db()
    # Its only failure was a timeout: the run timed out rather than failed.
    assert run.status == Run.Status.TIMED_OUT
    assert "Known causes" in run.error


def test_it_gives_up_on_a_job_whose_connection_dropped_max_attempts_times(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(timeout=5, max_attempts=1).plugin
    connect_instance(plugin, CHANNEL)
    run = new_run(workspace, plugin, "astronaut")
    dispatch_pending(plugin.pk)

    instance_disconnect(channel_name=CHANNEL)

    item = run.items.get()
    assert item.state == WorkItem.State.FAILED
    assert "dropped while holding this job 1 times" in item.error


def test_it_requeues_the_jobs_of_a_disconnected_instance(
    workspace: Any, make_plugin: Any, django_capture_on_commit_callbacks: Any
) -> None:
    plugin = make_plugin().plugin
    connect_instance(plugin, "first")
    run = new_run(workspace, plugin, "astronaut")
    dispatch_pending(plugin.pk)
    connect_instance(plugin, "second")

    with django_capture_on_commit_callbacks(execute=True):
        instance_disconnect(channel_name="first")

    item = run.items.get()
    assert item.state == WorkItem.State.LEASED
    assert item.instance.channel_name == "second"
    assert item.attempts == 2
    # The first instance's late answer is stale.
    stale = item_respond(
        session=item.session, payload={"response": ANSWER}, channel_name="first"
    )
    assert stale == "stale"


# --- leases renewed while the holder is alive -------------------------------------
def test_it_renews_the_leases_and_liveness_of_an_instance_seen(
    workspace: Any, plugin: Plugin
) -> None:
    instance = connect_instance(plugin, CHANNEL)
    run = new_run(workspace, plugin, "astronaut")
    dispatch_pending(plugin.pk)
    item = run.items.get()
    assert item.deadline_at - item.leased_at == timedelta(seconds=5)
    assert item.lease_expires_at - item.leased_at == lease_ttl()
    PluginInstance.objects.filter(pk=instance.pk).update(last_seen_at=past(3600))
    WorkItem.objects.filter(pk=item.pk).update(lease_expires_at=past())
    assert not PluginInstance.objects.live().filter(pk=instance.pk).exists()

    assert instances_seen([CHANNEL, "another"]) == 1

    item.refresh_from_db()
    assert item.lease_expires_at > timezone.now() + lease_ttl() - timedelta(seconds=5)
    assert PluginInstance.objects.live().filter(pk=instance.pk).exists()
    assert runs_sweep()["requeued"] == 0


def test_it_gives_the_jobs_of_a_silent_holder_to_another_instance(
    workspace: Any, plugin: Plugin
) -> None:
    silent = connect_instance(plugin, "silent")
    run = new_run(workspace, plugin, "astronaut")
    dispatch_pending(plugin.pk)
    connect_instance(plugin, "alive")
    # Its process was killed without closing the socket: no pong since.
    PluginInstance.objects.filter(pk=silent.pk).update(last_seen_at=past(3600))
    WorkItem.objects.filter(run=run).update(lease_expires_at=past())

    assert runs_sweep() == {"timed_out": 0, "requeued": 1, "dispatched": 1}

    item = run.items.get()
    assert item.instance.channel_name == "alive" and item.attempts == 2
    assert sent_to("alive") == [item.session]
    assert run.log_lines.filter(message__contains="stopped answering pings").exists()
    # The old holder's answer, should it come after all, is refused.
    assert respond(item, "silent") == "stale"
    assert respond(item) == "done"


def test_a_job_that_timed_out_goes_to_another_instance_than_the_hung_one(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(max_attempts=3).plugin
    Plugin.objects.filter(pk=plugin.pk).update(concurrency=1)
    hung = connect_instance(plugin, "hung")
    run = new_run(workspace, plugin, "astronaut")
    # Timeouts are retried only when the run asked (tests/test_run_page.py).
    Run.objects.filter(pk=run.pk).update(inputs={"retry_timeouts": True})
    assert dispatch_pending(plugin.pk) == 1
    item = run.items.get()
    assert item.instance == hung
    # A second instance connects, and has been waiting longer for work than
    # the hung one will have once its slot frees up at the timeout.
    healthy = connect_instance(plugin, "healthy")
    PluginInstance.objects.filter(pk=healthy.pk).update(last_dispatch_at=None)
    pass_deadline(item)

    runs_sweep()  # the timeout frees the hung one's slot and requeues the job
    item.refresh_from_db()
    if item.state == WorkItem.State.PENDING:
        dispatch_pending(plugin.pk)
        item.refresh_from_db()

    assert item.attempts == 2 and item.instance == healthy
    hung.refresh_from_db()
    assert hung.timeouts == 1
    # Both idle now; the one whose job timed out is last in line.
    other = new_run(workspace, plugin, "coins")
    assert respond(item) == "done"
    dispatch_pending(plugin.pk)
    assert other.items.get().instance == healthy


def test_it_fails_a_job_whose_holders_went_silent_max_attempts_times(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(timeout=5, max_attempts=1).plugin
    connect_instance(plugin, CHANNEL)
    run = new_run(workspace, plugin, "astronaut")
    dispatch_pending(plugin.pk)
    WorkItem.objects.filter(run=run).update(lease_expires_at=past())

    assert runs_sweep()["requeued"] == 0

    item = run.items.get()
    assert item.state == WorkItem.State.FAILED
    assert "went silent" in item.error
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED


# --- priority and capacity ----------------------------------------------------------
def test_it_sends_a_one_asset_model_run_before_waiting_batch_work(
    workspace: Any, plugin: Plugin
) -> None:
    Plugin.objects.filter(pk=plugin.pk).update(concurrency=1)
    connect_instance(plugin, CHANNEL)
    batch = new_run(workspace, plugin, *ASSETS)
    single = new_run(workspace, plugin, "coffee")

    assert dispatch_pending(plugin.pk) == 1

    assert single.items.get().state == WorkItem.State.LEASED
    assert single.items.get().priority == 0
    assert set(batch.items.values_list("priority", flat=True)) == {10}
    assert batch.items.filter(state=WorkItem.State.LEASED).count() == 0


def test_it_never_sends_an_instance_more_than_its_declared_capacity(
    workspace: Any, make_plugin: Any
) -> None:
    registered = make_plugin()
    plugin = registered.plugin
    Plugin.objects.filter(pk=plugin.pk).update(concurrency=2)
    for channel, capacity in (("small", 1), ("big", 50)):
        instance_heartbeat(
            channel_name=channel,
            plugin_public_id=plugin.public_id,
            secret=registered.secret,
            address=f"{channel}:1",
            capacity=capacity,
        )
    new_run(workspace, plugin, *ASSETS, "coffee", "chelsea")

    assert dispatch_pending(plugin.pk) == 3

    assert len(sent_to("small")) == 1
    assert len(sent_to("big")) == 2  # the plugin's concurrency caps a big claim


def test_it_never_leases_more_than_the_concurrency_to_an_instance(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    Plugin.objects.filter(pk=plugin.pk).update(concurrency=2)
    connect_instance(plugin, CHANNEL)
    run = new_run(workspace, plugin, "astronaut", "coins", "camera", "coffee", "moon")

    assert dispatch_pending(plugin.pk) == 2
    assert dispatch_pending(plugin.pk) == 0

    assert leased_per_instance() == {CHANNEL: 2}
    assert run.items.filter(state=WorkItem.State.PENDING).count() == 3
    sent = OutboxMessage.objects.filter(method="send", target=CHANNEL)
    assert sent.count() == 2
    leased_sessions = set(
        run.items.filter(state=WorkItem.State.LEASED).values_list("session", flat=True)
    )
    assert {m.message["job"]["session"] for m in sent} == leased_sessions
    assert all(m.message["type"] == "job.dispatch" for m in sent)

    # An answer frees a slot, and exactly one more job goes out.
    respond(run.items.filter(state=WorkItem.State.LEASED).first())
    assert dispatch_pending(plugin.pk) == 1
    assert leased_per_instance() == {CHANNEL: 2}


@pytest.mark.parametrize(
    ("query", "capacity"),
    [
        ({"concurrency": ["4"]}, 4),
        ({"concurrency": ["0"]}, None),
        ({"concurrency": ["-1"]}, None),
        ({"concurrency": ["many"]}, None),
        ({"concurrency": ["100000"]}, None),
        ({}, None),
    ],
)
def test_it_reads_the_capacity_an_instance_declares(
    query: dict[str, list[str]], capacity: int | None
) -> None:
    assert _declared_capacity(query) == capacity


# --- the ledger as a state machine ----------------------------------------------------
EXTERNAL_IDS = ("astronaut", "coins", "camera", "coffee", "chelsea")


def test_it_keeps_the_ledger_consistent_whatever_happens(
    workspace: Any, make_plugin: Any, django_capture_on_commit_callbacks: Any
) -> None:
    counter = iter(range(10**6))

    def committed(step: Callable[..., None]) -> Callable[..., None]:
        # The test's transaction never commits: run the on-commit hooks (the
        # dispatches after a run, a connect, an answer) as a commit would.
        @functools.wraps(step)
        def run_step(machine: Any, *args: Any, **kwargs: Any) -> None:
            with django_capture_on_commit_callbacks(execute=True):
                step(machine, *args, **kwargs)
            machine._remember_leases()

        return run_step

    class Ledger(RuleBasedStateMachine):
        @initialize(
            concurrency=st.integers(1, 3),
            max_attempts=st.integers(1, 3),
            capacity=st.sampled_from([None, 1, 2]),
            k=st.integers(1, len(EXTERNAL_IDS)),
        )
        def setup(
            self, concurrency: int, max_attempts: int, capacity: int | None, k: int
        ) -> None:
            registered = make_plugin(name=f"machine {next(counter)}")
            self.plugin, self.secret = registered.plugin, registered.secret
            Plugin.objects.filter(pk=self.plugin.pk).update(
                concurrency=concurrency, max_attempts=max_attempts
            )
            self.plugin.refresh_from_db()
            # (session, channel) of every lease handed out, for late answers.
            self.leases: list[tuple[str, str]] = []
            # Start with a connected instance and a run: most rules need both.
            self.connect(capacity)
            self.create_run(k)

        def teardown(self) -> None:
            if hasattr(self, "plugin"):
                Plugin.objects.filter(pk=self.plugin.pk).delete()

        # --- rules ---------------------------------------------------------------
        @rule(capacity=st.sampled_from([None, 1, 2]))
        @committed
        def connect(self, capacity: int | None) -> None:
            channel = f"m!{self.plugin.pk}-{next(counter)}"
            assert instance_heartbeat(
                channel_name=channel,
                plugin_public_id=self.plugin.public_id,
                secret=self.secret,
                address=f"{channel}:1",
                capacity=capacity,
            )

        @rule(data=st.data())
        @committed
        def disconnect(self, data: st.DataObject) -> None:
            live = self._live_channels()
            if live:
                instance_disconnect(channel_name=data.draw(st.sampled_from(live)))

        @rule(k=st.integers(1, len(EXTERNAL_IDS)))
        @committed
        def create_run(self, k: int) -> None:
            try:
                new_run(workspace, self.plugin, *EXTERNAL_IDS[:k], dispatch=True)
            except RunRequestError:
                assert not self._live_channels()

        @rule()
        @committed
        def dispatch(self) -> None:
            dispatch_pending(self.plugin.pk)
            self._remember_leases()

        @rule(data=st.data(), kind=st.sampled_from(["ok", "error", "duplicate"]))
        @committed
        def respond(self, data: st.DataObject, kind: str) -> None:
            leased = list(self._items().filter(state=WorkItem.State.LEASED))
            if not leased:
                return
            item = data.draw(st.sampled_from(leased))
            payload = {"error": True} if kind == "error" else {"response": ANSWER}
            outcome = respond(item, **payload)
            assert outcome in ("done", "error")
            if kind == "duplicate":
                assert respond(item, item.instance.channel_name, **payload) == "stale"

        @rule(data=st.data())
        @committed
        def respond_late(self, data: st.DataObject) -> None:
            if not self.leases:
                return
            session, channel = data.draw(st.sampled_from(self.leases))
            item = WorkItem.objects.select_related("instance").get(session=session)
            holds = (
                item.state == WorkItem.State.LEASED
                and item.instance.channel_name == channel
            )
            outcome = item_respond(
                session=session, payload={"response": ANSWER}, channel_name=channel
            )
            assert (outcome == "stale") is not holds

        @rule(data=st.data())
        @committed
        def expire_lease(self, data: st.DataObject) -> None:
            live = self._live_channels()
            if not live:
                return
            # The holder's process died without closing its socket: silence.
            channel = data.draw(st.sampled_from(live))
            PluginInstance.objects.filter(channel_name=channel).update(
                last_seen_at=past(3600)
            )
            self._items().filter(instance__channel_name=channel).update(
                lease_expires_at=past()
            )
            runs_sweep()
            self._remember_leases()

        @rule(data=st.data())
        @committed
        def pass_deadline(self, data: st.DataObject) -> None:
            leased = list(self._items().filter(state=WorkItem.State.LEASED))
            if leased:
                item = data.draw(st.sampled_from(leased))
                pass_deadline(item)
            runs_sweep()
            self._remember_leases()

        @rule(data=st.data())
        @committed
        def cancel(self, data: st.DataObject) -> None:
            runs = list(Run.objects.filter(plugin=self.plugin))
            if not runs:
                return
            run = data.draw(st.sampled_from(runs))
            after = run_cancel(run, by=None)
            # A finished run stays as it was; any other is cancelled.
            expected = run.status if run.is_finished else Run.Status.CANCELLED
            assert after.status == expected

        @rule(data=st.data())
        @committed
        def retry(self, data: st.DataObject) -> None:
            runs = list(Run.objects.filter(plugin=self.plugin))
            if not runs:
                return
            run = data.draw(st.sampled_from(runs))
            allowed = (
                run.is_finished
                and run.items.filter(state=WorkItem.State.FAILED).exists()
            )
            try:
                run_retry(run, by=None)
            except RunActionError:
                assert not allowed
            else:
                assert allowed

        # --- invariants ------------------------------------------------------------
        @invariant()
        def no_item_is_done_twice(self) -> None:
            if not hasattr(self, "plugin"):
                return
            stored = (
                RunLogLine.objects.filter(
                    run__plugin=self.plugin, level="HUB", message__contains="stored"
                )
                .values("item")
                .annotate(n=Count("id"))
            )
            assert all(row["n"] <= 1 for row in stored)
            done = set(
                self._items()
                .filter(state=WorkItem.State.DONE)
                .values_list("id", flat=True)
            )
            assert {row["item"] for row in stored} == done

        @invariant()
        def leased_items_have_a_connected_holder(self) -> None:
            if not hasattr(self, "plugin"):
                return
            leased = self._items().filter(state=WorkItem.State.LEASED)
            assert not leased.filter(instance__isnull=True).exists()
            assert not leased.filter(instance__disconnected_at__isnull=False).exists()

        @invariant()
        def no_instance_holds_more_than_it_can_take(self) -> None:
            if not hasattr(self, "plugin"):
                return
            for instance in PluginInstance.objects.filter(plugin=self.plugin):
                limit = min(
                    instance.capacity or self.plugin.concurrency,
                    self.plugin.concurrency,
                )
                held = instance.items.filter(state=WorkItem.State.LEASED).count()
                assert held <= limit

        @invariant()
        def finished_runs_have_nothing_open(self) -> None:
            if not hasattr(self, "plugin"):
                return
            open_in_finished = self._items().filter(
                run__status__in=Run.FINISHED,
                state__in=[WorkItem.State.PENDING, WorkItem.State.LEASED],
            )
            assert not open_in_finished.exists()

        # --- helpers -------------------------------------------------------------
        def _items(self) -> Any:
            return WorkItem.objects.filter(plugin=self.plugin)

        def _live_channels(self) -> list[str]:
            return list(
                PluginInstance.objects.live()
                .filter(plugin=self.plugin)
                .values_list("channel_name", flat=True)
            )

        def _remember_leases(self) -> None:
            for session, channel in (
                self._items()
                .filter(state=WorkItem.State.LEASED)
                .values_list("session", "instance__channel_name")
            ):
                if (session, channel) not in self.leases:
                    self.leases.append((session, channel))

    run_state_machine_as_test(
        Ledger,
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
