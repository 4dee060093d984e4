"""Handing pending work to plugins, per delivery: sockets (socket.py), REST
connectors (rest.py), hosted workers (plugins_app/hosted/dispatch.py, which
registers itself in DELIVERIES). Every delivery leases through leases.py."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction

from plugins_app import protocol
from plugins_app.plugins.models import Delivery, Plugin
from plugins_app.runs.dispatch.rest import dispatch_rest
from plugins_app.runs.dispatch.socket import DISPATCH_BATCH, lease_pending
from plugins_app.runs.models import WorkItem

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
    delivery = Plugin.objects.filter(pk=plugin_id).values_list("delivery", flat=True)
    how = delivery.first()
    deliver = DELIVERIES.get(how) if how is not None else None
    if deliver is not None:
        return deliver(plugin_id)
    sent = 0
    while True:
        with transaction.atomic():
            jobs = lease_pending(plugin_id)
        protocol.deliver_many(jobs)
        sent += len(jobs)
        if len(jobs) < DISPATCH_BATCH:
            return sent
