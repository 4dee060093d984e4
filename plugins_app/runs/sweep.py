"""The periodic sweep: deadlines, lost leases, unclaimed jobs, and what waits."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from plugins_app.ops.isolation import each_plugin
from plugins_app.plugins.models import (
    Delivery,
    PluginInstance,
)
from plugins_app.runs.ledger import item_lease_lost, item_time_out, run_settle
from plugins_app.runs.models import (
    WorkItem,
)
from plugins_app.runs.notify import hub_log
from plugins_app.runs.wakeup import dispatch_pending


def runs_sweep() -> dict[str, int]:
    """Time out attempts past their deadline (retrying while attempts remain),
    give back the jobs of holders that stopped answering pings, fail queued items
    that no instance took within the plugin's timeout; re-dispatch what waits."""
    now = timezone.now()
    timed_out = requeued = dispatched = 0
    # Every step is per item or per plugin under `each_plugin`: one plugin's bad
    # data is logged, naming it, and the others are still swept.
    past_deadline = WorkItem.objects.filter(
        state=WorkItem.State.LEASED, deadline_at__lt=now
    ).select_related("run__plugin", "instance")
    for item in past_deadline:
        with each_plugin("sweep: time-out", item.run.plugin.public_id):
            if item_time_out(item, now):
                timed_out += 1
            else:
                requeued += 1
    lost = WorkItem.objects.filter(
        state=WorkItem.State.LEASED, lease_expires_at__lt=now
    ).select_related("run__plugin", "instance")
    for item in lost:
        with each_plugin("sweep: lost lease", item.run.plugin.public_id):
            requeued += item_lease_lost(item, now)
    with each_plugin("sweep: unclaimed jobs", "(any)"):
        timed_out += _time_out_unclaimed(now)
    waiting = (
        WorkItem.objects.filter(state=WorkItem.State.PENDING)
        .order_by()
        .values_list("plugin_id", "plugin__public_id")
        .distinct()
    )
    for plugin_id, public_id in waiting:
        with each_plugin("sweep: dispatch", public_id):
            dispatched += dispatch_pending(plugin_id)
    return {"timed_out": timed_out, "requeued": requeued, "dispatched": dispatched}


def _time_out_unclaimed(now: Any) -> int:
    """Fail jobs that waited past the plugin's timeout with no live instance at
    all; a job queued behind busy live instances keeps waiting for a slot."""
    count = 0
    live_plugins = PluginInstance.objects.live().values("plugin_id")
    waiting = (
        WorkItem.objects.filter(state=WorkItem.State.PENDING)
        .exclude(run__plugin_id__in=live_plugins)
        .exclude(plugin__delivery=Delivery.HOSTED)
        .select_related("run__plugin")
    )
    for item in waiting:
        timeout = item.run.plugin.timeout_seconds
        if (now - item.queued_at).total_seconds() <= timeout:
            continue
        with (
            each_plugin("sweep: unclaimed job", item.run.plugin.public_id),
            transaction.atomic(),
        ):
            claimed = WorkItem.objects.transition(
                item.pk,
                WorkItem.State.PENDING,
                WorkItem.State.FAILED,
                failure=WorkItem.Failure.TIMEOUT,
                finished_at=now,
                error=f"No instance of the plugin was connected to take this job "
                f"for {timeout} s.",
            )
            if claimed:
                hub_log(item.run, "No instance took the job in time.", item=item)
                run_settle(item.run_id)
                count += 1
    return count
