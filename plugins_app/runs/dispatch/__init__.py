"""Handing pending work to plugins, per delivery: sockets (socket.py), REST
connectors (rest.py), hosted workers (plugins_app/hosted/dispatch.py, which
registers itself in DELIVERIES). Every delivery leases through leases.py."""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.db import connection, transaction

from plugins_app import protocol
from plugins_app.plugins.models import Delivery, Plugin
from plugins_app.runs.dispatch.rest import dispatch_rest
from plugins_app.runs.dispatch.socket import DISPATCH_BATCH, lease_pending
from plugins_app.runs.models import WorkItem
from plugins_app.workspace.bulk import quoted

# Deliveries other than the socket: how to hand a plugin's pending items over.
# The hosted app adds Delivery.HOSTED in HostedConfig.ready() (it runs items
# through the ledger, so runs must not import it).
DELIVERIES: dict[str, Callable[[int], int]] = {Delivery.REST: dispatch_rest}


def dispatch_created(plugin: Plugin, items: list[WorkItem]) -> None:
    """Inside the transaction that has just written `items` (runs.creation): a
    socket plugin's free instances lease them in that same transaction, and the
    jobs go out once it commits. Everything a restart must survive is then
    committed before a plugin sees its job; if the process dies in between, the
    instances' sockets die with it, their leases run out and the sweep requeues
    the items. Other deliveries are asked after the commit."""
    plugin_id = plugin.pk
    if plugin.delivery in DELIVERIES:
        transaction.on_commit(lambda: dispatch_pending(plugin_id))
        return
    jobs = lease_pending(plugin_id, fresh=items)
    transaction.on_commit(lambda: protocol.deliver_many(jobs))
    if len(jobs) == DISPATCH_BATCH:
        # A full batch: there may be more to lease once this one has gone.
        transaction.on_commit(lambda: dispatch_pending(plugin_id))


def dispatch_pending(plugin_id: int) -> int:
    """Lease pending items of a plugin and hand them over: to its live
    instances with free capacity, least loaded first, over the channel layer
    once leased (or to its REST connector, or to hosted workers). Safe to call
    from any process at any time (see `lease_pending`)."""
    how, waiting = _probe(plugin_id)
    deliver = DELIVERIES.get(how) if how is not None else None
    if deliver is not None:
        return deliver(plugin_id)
    if not waiting:
        # Every answer asks for a dispatch, and most find nothing waiting:
        # this one statement is then all it costs (no transaction).
        return 0
    sent = 0
    while True:
        with transaction.atomic():
            jobs = lease_pending(plugin_id)
        protocol.deliver_many(jobs)
        sent += len(jobs)
        if len(jobs) < DISPATCH_BATCH:
            return sent


def _probe(plugin_id: int) -> tuple[str | None, bool]:
    """The plugin's delivery (None: no such plugin) and whether any item of it
    is pending, in one statement: an index range of `next_job`, the same
    probe `lease_pending` starts with. An item made pending after it (by
    another process, a requeue, a new run) is dispatched by whoever made it."""
    with connection.cursor() as cursor:
        cursor.execute(_probe_sql(), [WorkItem.State.PENDING.value, plugin_id])
        row = cursor.fetchone()
    return (row[0], bool(row[1])) if row else (None, False)


@functools.cache
def _probe_sql() -> str:
    # Built once: every answer asks for this probe.
    p, w = Plugin, WorkItem
    return (
        f"SELECT p.{quoted(p, 'delivery')}, EXISTS (SELECT 1 FROM {quoted(w)} w "  # noqa: S608
        f"WHERE w.{quoted(w, 'plugin')} = p.{quoted(p, 'id')} "
        f"AND w.{quoted(w, 'state')} = %s) "
        f"FROM {quoted(p)} p WHERE p.{quoted(p, 'id')} = %s"
    )
