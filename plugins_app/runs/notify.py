"""The run log's own lines and the ping that tells a run's watchers to look."""

from __future__ import annotations

import logging
import threading
import time

from django.db import transaction
from django.utils import timezone

from plugins_app import protocol
from plugins_app.runs.models import (
    Run,
    RunLogLine,
    WorkItem,
)
from plugins_app.workspace.bulk import insert_many

log = logging.getLogger(__name__)
HUB = "HUB"  # level of the log lines the hub writes itself


def hub_log(
    run: Run, message: str, *, item: WorkItem | None = None, level: str = HUB
) -> None:
    # A prepared INSERT (workspace/bulk.py insert_many): two of these are on every
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


class _DashboardWakes:
    """Wake-ups of a plugin's dashboard watchers, at most one per
    DASHBOARD_WAKE_SECONDS per plugin from this process; those asked for
    within the interval are dropped. Nothing is lost: a watcher woken renders
    again one interval later (dashboard/consumers.py), after what they
    announced had committed. A 1,000-item run is then a wake-up a second, not
    1,000 group sends (each a Redis round trip, or an outbox row outside the
    ASGI process), and asking costs a lock and a clock read on the answer's
    path: no timer, no thread, no query."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: dict[int, float] = {}

    def request(self, plugin_id: int) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._sent.get(plugin_id, -1e9) < protocol.DASHBOARD_WAKE_SECONDS:
                return
            self._sent[plugin_id] = now
        try:
            message = dict(protocol.dashboard_changed(plugin_id))
            protocol.group_send(protocol.dashboard_group(plugin_id), message)
        except Exception:
            # A dashboard left to its slow poll must not fail the answer's path.
            log.exception("dashboard wake-up of plugin %s not sent", plugin_id)


dashboard_wakes = _DashboardWakes()


def dashboard_wake(plugin_id: int) -> None:
    """What the plugin's dashboard shows has changed and is committed (an item
    ended, an instance came or went): its watchers re-read the figures."""
    dashboard_wakes.request(plugin_id)
