"""The run log's own lines and the ping that tells a run's watchers to look."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from plugins_app import protocol
from plugins_app.runs.models import (
    Run,
    RunLogLine,
    WorkItem,
)
from plugins_app.workspace.writes import insert_many

HUB = "HUB"  # level of the log lines the hub writes itself


def hub_log(
    run: Run, message: str, *, item: WorkItem | None = None, level: str = HUB
) -> None:
    # A prepared INSERT (writes.insert_many): two of these are on every
    # answer's path, where the ORM's create cost five times the statement.
    insert_many(
        RunLogLine,
        _HUB_LINE,
        [(run.pk, item.pk if item else None, level, message, {}, timezone.now())],
    )
    notify_after_commit(run.pk)


_HUB_LINE = ("run", "item", "level", "message", "extra", "created_at")


def notify_after_commit(run_id: int) -> None:
    """Tell the run's watchers; they read what is new themselves and coalesce
    bursts, so a notification is a tiny message, whatever changed: one per run
    is enough for the changes made in one (sub)transaction."""
    connection = transaction.get_connection()
    scope = set(connection.savepoint_ids)
    if connection.in_atomic_block and any(
        sids == scope and getattr(func, "notifies_run", None) == run_id
        for sids, func, *_robust in connection.run_on_commit
    ):
        return

    def notify() -> None:
        message = dict(protocol.run_changed(run_id))
        protocol.group_send(protocol.run_group(run_id), message)

    notify.notifies_run = run_id  # type: ignore[attr-defined]
    transaction.on_commit(notify)
