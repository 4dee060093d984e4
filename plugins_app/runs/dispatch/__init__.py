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

# Deliveries other than the socket: how to hand a plugin's pending items over.
# The hosted app adds Delivery.HOSTED in HostedConfig.ready() (it runs items
# through the ledger, so runs must not import it).
DELIVERIES: dict[str, Callable[[int], int]] = {Delivery.REST: dispatch_rest}


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
