"""Asking for a dispatch without depending on how work is delivered.

The ledger frees slots (a job finished, an instance went away) and must hand
out the next job; delivery (runs/dispatch/, hosted/dispatch.py) changes items
through the ledger. So the ledger asks here, and RunsConfig.ready() connects
the dispatcher (`runs.dispatch.dispatch_pending`) once the apps are loaded:
no import runs from the ledger back up to delivery."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import transaction

from plugins_app import protocol
from plugins_app.plugins.models import Plugin
from plugins_app.runs.models import WorkItem
from plugins_app.runs.notify import dashboard_wake

_dispatcher: Callable[[int], int] | None = None
_created: Callable[[Plugin, list[WorkItem]], None] | None = None


def connect(
    dispatcher: Callable[[int], int],
    created: Callable[[Plugin, list[WorkItem]], None],
) -> None:
    global _dispatcher, _created
    _dispatcher, _created = dispatcher, created


def dispatch_created(plugin: Plugin, items: list[WorkItem]) -> None:
    """`runs.dispatch.dispatch_created`: inside the transaction that wrote
    `items`, lease them to free instances (creation's one transaction)."""
    if _created is None:
        raise RuntimeError("runs.wakeup: no dispatcher connected (RunsConfig.ready)")
    _created(plugin, items)


def dispatch_pending(plugin_id: int) -> int:
    """`runs.dispatch.dispatch_pending`, for the modules it depends on."""
    if _dispatcher is None:
        raise RuntimeError("runs.wakeup: no dispatcher connected (RunsConfig.ready)")
    return _dispatcher(plugin_id)


class _FreedSlotDispatches:
    """Dispatches asked for by the plugin socket's events (a job finished, an
    instance came or went), coalesced per plugin in this process: one drains on a
    worker thread while the requests made meanwhile add up to one more pass.

    Every finished job frees a slot. Run inline on the web process's database
    thread, one per answer, dispatches once queued all its sockets' work behind
    the plugin's dispatch lock (with two queue processes a web process fell 9 s
    behind and leases expired); a dispatch may still wait on an instance another
    transaction holds (runs/dispatch/fleet.py). When nothing is pending, one
    is a single indexed statement (`dispatch._probe`). Elsewhere (Celery, the
    CLI) there is no loop to hand them to, and they run inline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._draining: set[int] = set()
        self._again: set[int] = set()

    def request(self, plugin_id: int) -> None:
        with self._lock:
            if plugin_id in self._draining:
                self._again.add(plugin_id)
                return
            self._draining.add(plugin_id)
        if not protocol.run_later(0, self._drain, plugin_id):
            self._drain(plugin_id)

    def _drain(self, plugin_id: int) -> None:
        more = True
        while more:
            try:
                dispatch_pending(plugin_id)
            finally:
                # Decided under the lock: a request made after this sees the
                # drain over and starts its own.
                with self._lock:
                    more = plugin_id in self._again
                    self._again.discard(plugin_id)
                    if not more:
                        self._draining.discard(plugin_id)


freed_slots = _FreedSlotDispatches()


def dispatch_after_commit(plugin_id: int) -> None:
    def after_commit() -> None:
        freed_slots.request(plugin_id)
        # A slot freed (an item ended, an instance came or went) is what the
        # plugin's dashboard shows changing.
        dashboard_wake(plugin_id)

    transaction.on_commit(after_commit)
