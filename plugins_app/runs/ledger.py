"""The ledger: every state change of work items and runs after the lease (finish,
settle, close, requeue, time out, cancel, retry). Each is a conditional UPDATE,
so two processes racing for one item change it once."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from plugins_app.plugins.models import (
    PluginInstance,
)
from plugins_app.plugins.versions import served_version
from plugins_app.runs.ledger_sql import LogLine, settle_sql, sql
from plugins_app.runs.models import (
    Run,
    RunApiKey,
    RunLogLine,
    WorkItem,
)
from plugins_app.runs.notify import HUB, dashboard_wake, hub_log, notify_after_commit
from plugins_app.runs.wakeup import dispatch_after_commit, dispatch_pending
from plugins_app.workspace import events
from plugins_app.workspace.bulk import insert_many
from plugins_app.workspace.models import Task


class RunActionError(Exception):
    """A cancel or retry that the run's state does not allow."""


TIMEOUT_CAUSES = (
    "Known causes: a Model callback under imerit-ango 1.4.x that returns a plain "
    "dict instead of an AnnotationPayload (the SDK drops the answer without a "
    "word); a callback that is still working or hung; a plugin process that was "
    "killed or lost its connection."
)


def item_done(item: WorkItem, note: str) -> None:
    with transaction.atomic():
        if finish_item(item, WorkItem.State.DONE):
            item_finished(item, note or "Job done.")


def item_skip(item: WorkItem, reason: str) -> None:
    """Answered, but the task holds a person's work: kept, and the run goes on."""
    with transaction.atomic():
        if finish_item(item, WorkItem.State.SKIPPED, error=reason):
            item_finished(item, f"Skipped: {reason}.")


def item_fail(item: WorkItem, failure: str, error: str) -> None:
    with transaction.atomic():
        if finish_item(item, WorkItem.State.FAILED, failure=failure, error=error):
            item_finished(item, error, level="ERROR")


def finish_item(item: WorkItem, state: str, **fields: Any) -> bool:
    """Leased → final, exactly once even if two processes race; the item keeps
    the plugin version that served it."""
    fields.setdefault("plugin_version", served_version(item.run.plugin, item.instance))
    return WorkItem.objects.transition(
        item.pk, WorkItem.State.LEASED, state, finished_at=timezone.now(), **fields
    )


def item_finished(item: WorkItem, line: str, *, level: str = HUB) -> None:
    """`item` has just reached a final state in the caller's transaction: say
    so in its run's log, and settle the run (the line is written with the
    settle's own, in one INSERT)."""
    run_settle(item.run_id, run=item.run, lines=[(item.pk, level, line)])


def run_settle(
    run_id: int,
    *,
    dispatch: bool = True,
    run: Run | None = None,
    lines: list[LogLine] | None = None,
    plugin_id: int | None = None,
) -> None:
    """Finish the run once no item is pending or leased. The finished item freed
    a slot on its instance: hand out the next waiting job at once (unless the
    caller schedules that itself). `run` or `plugin_id`, when the caller has
    them, save reading the run again (what a close reads of it never
    changes). `lines` are written to the run's log with the close's own.

    One conditional UPDATE decides and closes (`sql("close")`), after the run's
    row is locked on PostgreSQL: two items of one run finishing at once take
    turns there, and the second one's UPDATE, a statement begun after the
    first one committed, sees its item done: one of them closes the run.
    SQLite's write transaction already holds the whole database, so there is
    no lock to take (the run's plugin is then read only if not given)."""
    lines = list(lines or [])
    if plugin_id is None and run is not None:
        plugin_id = run.plugin_id
    if plugin_id is None or connection.features.has_select_for_update:
        plugin_id = _locked_run(run_id)
    if dispatch:
        dispatch_after_commit(plugin_id)
    now = timezone.now()
    if connection.vendor == "postgresql":
        # The close, the keys and every log line in one round trip.
        closed = _settle_in_one(run_id, now, lines)
        lines = []
    else:
        closed = _close_if_settled(run_id, now)
    if closed is not None:
        status, task_id = closed
        error = ""
        if status != Run.Status.SUCCEEDED:
            if run is None:
                run = Run.objects.select_related("plugin").get(pk=run_id)
            error = _first_item_error(run)
            if error:
                Run.objects.filter(pk=run_id).update(error=error)
        if connection.vendor != "postgresql":
            _revoke_keys(run_id, now)
            lines.append(_close_line(status))
        _closed(run_id, status, error, now, run=run, task_id=task_id)
    _log_lines(run_id, lines)
    notify_after_commit(run_id)


def _settle_in_one(
    run_id: int, now: Any, lines: list[LogLine]
) -> tuple[str, int | None] | None:
    """PostgreSQL: `_close_if_settled`, then, if it closed, `_revoke_keys`, and
    the log lines (the close's own last) as one statement of data-modifying
    CTEs reading the close's RETURNING: one round trip instead of three."""
    at = Run._meta.get_field("finished_at").get_db_prep_save(now, connection)
    params: list[Any] = [*_close_params(run_id, at), at, run_id, at]
    for item_id, level, text in lines:
        params += [run_id, item_id, level, text]
    params += [run_id, HUB]
    for status in (Run.Status.SUCCEEDED, Run.Status.FAILED, Run.Status.TIMED_OUT):
        params += [status.value, _close_line(status)[2]]
    with connection.cursor() as cursor:
        cursor.execute(settle_sql(len(lines)), params)
        row = cursor.fetchone()
    return None if row is None else (str(row[0]), row[1])


def _locked_run(run_id: int) -> int:
    """The run's plugin, its row locked until the transaction ends (PostgreSQL;
    SQLite's write transaction holds the whole database). A prepared statement:
    this is on every answer's path."""
    with connection.cursor() as cursor:
        cursor.execute(sql("locked_run", connection.vendor), [run_id])
        row = cursor.fetchone()
    if row is None:
        raise Run.DoesNotExist(f"run {run_id}")
    return int(row[0])


def _close_if_settled(run_id: int, now: Any) -> tuple[str, int | None] | None:
    """The open run ends if none of its items is pending or leased: succeeded
    when none failed, timed out when every failure is a timeout, else failed.
    Returns the status it ended with and the task it is about (RETURNING: no
    read of the run), None when it goes on (or had ended)."""
    at = Run._meta.get_field("finished_at").get_db_prep_save(now, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql("close", connection.vendor), _close_params(run_id, at))
        row = cursor.fetchone()
    return None if row is None else (str(row[0]), row[1])


def _close_params(run_id: int, finished_at: Any) -> list[Any]:
    item = WorkItem.State
    return [
        # failed when an item failed otherwise than by a timeout,
        item.FAILED.value,
        WorkItem.Failure.TIMEOUT.value,
        Run.Status.FAILED.value,
        # else timed out when an item failed, else succeeded;
        item.FAILED.value,
        Run.Status.TIMED_OUT.value,
        Run.Status.SUCCEEDED.value,
        finished_at,
        run_id,
        *Run.OPEN,
        item.PENDING.value,
        item.LEASED.value,
    ]


def _revoke_keys(run_id: int, now: Any) -> None:
    revoked_at = RunApiKey._meta.get_field("revoked_at")
    with connection.cursor() as cursor:
        cursor.execute(
            sql("revoke_keys", connection.vendor),
            [revoked_at.get_db_prep_save(now, connection), run_id],
        )


def _close_line(status: str) -> LogLine:
    return (None, HUB, f"Run {Run.Status(status).label.lower()}.")


def _log_lines(run_id: int, lines: list[LogLine]) -> None:
    # The hub's lines of one answer in one INSERT (notify.hub_log writes one).
    now = timezone.now()
    insert_many(
        RunLogLine,
        ("run", "item", "level", "message", "extra", "created_at"),
        [(run_id, item_id, level, text, {}, now) for item_id, level, text in lines],
    )


def _first_item_error(run: Run) -> str:
    failed = run.items.filter(state=WorkItem.State.FAILED).exclude(error="")
    first = failed.order_by("id").first()
    count = failed.count()
    if first is None:
        return ""
    more = f"\n(and {count - 1} more failed item(s))" if count > 1 else ""
    return first.error + more


def run_close(run: Run, status: str, error: str) -> None:
    """An open run ends with `status`: its API keys are revoked, its watchers
    told, and a task it was about records it. Once: a run already closed by
    another process is left as it is."""
    now = timezone.now()
    if not Run.objects.transition(
        run.pk, Run.OPEN, status, error=error, finished_at=now
    ):
        return
    _revoke_keys(run.pk, now)
    _closed(run.pk, status, error, now, run=run, task_id=run.task_id)
    _log_lines(run.pk, [_close_line(status)])
    notify_after_commit(run.pk)


def _closed(
    run_id: int,
    status: str,
    error: str,
    now: Any,
    *,
    run: Run | None,
    task_id: int | None,
) -> None:
    """What follows a close (its keys revoked and its log line written by the
    caller), in the closing transaction: the copy in memory (if any) updated,
    the task told."""
    if run is not None:
        run.status, run.error, run.finished_at = status, error, now
    if task_id is not None:
        if run is None:
            run = Run.objects.select_related("plugin").get(pk=run_id)
        _record_on_task(run, task_id, status, error)


def _record_on_task(run: Run, task_id: int, status: str, error: str) -> None:
    """A run about a task ended: say so in the task's history."""
    task = Task.objects.filter(pk=task_id).first()
    if task is None:
        return
    name = events.RUN_SUCCEEDED if status == Run.Status.SUCCEEDED else events.RUN_FAILED
    events.emit(
        task,
        name,
        actor_label=f"plugin {run.plugin.name}",
        data={
            "run": run.pk,
            "plugin": run.plugin.name,
            "trigger": run.trigger,
            "status": status,
            "error": error[:500],
        },
    )


def run_cancel(run: Run, *, by: AbstractBaseUser | None) -> Run:
    """Stop a run: its waiting and in-flight items are cancelled (a late answer
    for one is stale and ignored), its API keys revoked. A finished run is left
    as it is."""
    who = by.get_username() if by else "the command line"
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.is_finished:
            return run
        now = timezone.now()
        held = list(
            run.items.filter(state=WorkItem.State.LEASED).select_related("instance")
        )
        run.items.transition_all(
            (WorkItem.State.PENDING, WorkItem.State.LEASED),
            WorkItem.State.CANCELLED,
            failure=WorkItem.Failure.CANCELLED,
            error=f"Cancelled by {who}.",
            lease_expires_at=None,
            deadline_at=None,
            finished_at=now,
        )
        for item in held:
            where = item.instance.address if item.instance else "an instance"
            hub_log(
                run,
                f"Cancelled while the instance at {where} held it; its answer "
                "will be ignored.",
                item=item,
            )
        hub_log(run, f"{who} cancelled the run.")
        run_close(run, Run.Status.CANCELLED, f"Cancelled by {who}.")
        # The cancelled jobs freed slots on their instances, and the plugin's
        # dashboard counts a cancelled run.
        plugin_id = run.plugin_id
        transaction.on_commit(lambda: dispatch_pending(plugin_id))
        transaction.on_commit(lambda: dashboard_wake(plugin_id))
    run.refresh_from_db()
    return run


def run_retry(run: Run, *, by: AbstractBaseUser | None) -> Run:
    """Send the failed items of a finished run again (their attempts kept)."""
    who = by.get_username() if by else "the command line"
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if not run.is_finished:
            raise RunActionError(
                f"Only a finished run can be retried; this one is "
                f"{run.get_status_display().lower()}."
            )
        now = timezone.now()
        count = run.items.transition_all(
            WorkItem.State.FAILED,
            WorkItem.State.PENDING,
            failure="",
            error="",
            lease_expires_at=None,
            deadline_at=None,
            finished_at=None,
            queued_at=now,
        )
        if not count:
            raise RunActionError("This run has no failed item to retry.")
        Run.objects.transition(
            run.pk, Run.FINISHED, Run.Status.QUEUED, error="", finished_at=None
        )
        hub_log(run, f"{who} retried {count} failed item(s).")
        plugin_id = run.plugin_id
        transaction.on_commit(lambda: dispatch_pending(plugin_id))
    run.refresh_from_db()
    return run


def item_time_out(item: WorkItem, now: Any) -> bool:
    """An attempt ran past the plugin's timeout: queue it again while attempts
    remain, else fail it. Returns True when it failed."""
    plugin = item.run.plugin
    if item.instance_id is not None:
        PluginInstance.objects.filter(pk=item.instance_id).update(
            timeouts=F("timeouts") + 1
        )
    if not (item.run.inputs or {}).get("retry_timeouts"):
        # The instance still answers pings, so it got the job and said nothing:
        # another instance of the same plugin would most likely do the same.
        # Say so now, at the first timeout, not after every attempt.
        item_fail(
            item,
            WorkItem.Failure.TIMEOUT,
            f"No answer from the plugin within {plugin.timeout_seconds} s. Its "
            "instance still answers pings: not retried (the run did not ask to "
            "retry timeouts). " + TIMEOUT_CAUSES,
        )
        return True
    outcome = retry_or_fail(
        item,
        WorkItem.Failure.TIMEOUT,
        final=f"No answer from the plugin within {plugin.timeout_seconds} s. "
        f"Timed out after {item.attempts} attempt(s). " + TIMEOUT_CAUSES,
        retry=f"No answer within {plugin.timeout_seconds} s (attempt "
        f"{item.attempts} of {plugin.max_attempts}); the job goes back to "
        "the queue.",
        now=now,
    )
    return outcome == "failed"


def item_lease_lost(item: WorkItem, now: Any) -> int:
    """The holder stopped answering pings (its process died without closing its
    socket): the job goes back to the queue, the attempt counted."""
    where = item.instance.address if item.instance else "an instance"
    outcome = retry_or_fail(
        item,
        WorkItem.Failure.ERROR,
        final=f"The instance at {where} went silent while holding this job; "
        f"{item.attempts} attempt(s) made, giving up.",
        retry=f"Instance at {where} stopped answering pings; the job goes back to "
        "the queue.",
        now=now,
    )
    return int(outcome == "retry")


def retry_or_fail(
    item: WorkItem,
    failure: str,
    *,
    final: str,
    retry: str,
    now: Any = None,
    level: str = HUB,
) -> str:
    """One more attempt while the plugin allows it (back to the queue, `retry`
    logged), else fail the item with `final`. Returns "failed", "retry", or
    "settled" when another process already moved the item on."""
    if item.attempts >= item.run.plugin.max_attempts:
        item_fail(item, failure, final)
        return "failed"
    with transaction.atomic():
        if not requeue(item, now or timezone.now()):
            return "settled"
        hub_log(item.run, retry, item=item, level=level)
    return "retry"


def requeue(item: WorkItem, now: Any) -> bool:
    """Leased → pending, only if still leased to the same instance."""
    return WorkItem.objects.transition(
        item.pk,
        WorkItem.State.LEASED,
        WorkItem.State.PENDING,
        where={"instance_id": item.instance_id},
        lease_expires_at=None,
        deadline_at=None,
        queued_at=now,
    )
