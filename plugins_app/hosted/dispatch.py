"""Hosted delivery: waiting items leased to Celery workers that run the uploaded
handler in a sandbox (runner.py). Registered as the HOSTED delivery of
runs.dispatch in HostedConfig.ready()."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from plugins_app.plugins.models import (
    Plugin,
)
from plugins_app.runs.dispatch.leases import lease, next_pending_item
from plugins_app.runs.ledger import item_done, item_fail, run_settle
from plugins_app.runs.models import (
    WorkItem,
)
from plugins_app.runs.notify import hub_log

# The handler starts when a Celery worker picks the job up, which may be a while
# after the lease: the worker restamps the deadline then (hosted_item_started).
HOSTED_QUEUE_GRACE_SECONDS = 60


# The worker kills the sandbox at the plugin's timeout; the sweep's deadline
# comes a little later, so the worker's precise reason wins.
HOSTED_KILL_GRACE_SECONDS = 10


def dispatch_hosted(plugin_id: int) -> int:
    """Hosted plugins: lease waiting items, up to the plugin's concurrency across
    all workers, and hand each to a Celery worker that runs the uploaded handler
    in a sandbox (plugins_app/hosted/). Items wait while the code builds and
    fail, saying why, when there is no working build."""
    from plugins_app.hosted.models import HostedCode
    from plugins_app.hosted.tasks import hand_off

    plugin = Plugin.objects.get(pk=plugin_id)
    code = HostedCode.objects.filter(plugin_id=plugin_id).first()
    if code is None or code.status == HostedCode.Status.FAILED:
        why = "has no uploaded code" if code is None else "failed to build"
        _fail_pending(plugin_id, f"The hosted plugin {why}; see its page.")
        return 0
    if code.status != HostedCode.Status.ACTIVE:
        return 0  # building: dispatched again when the build ends
    leased: list[int] = []
    in_flight = WorkItem.objects.filter(
        plugin_id=plugin_id, state=WorkItem.State.LEASED
    ).count()
    while in_flight + len(leased) < plugin.concurrency:
        item = next_pending_item(plugin_id)
        if item is None:
            break
        wait = plugin.timeout_seconds + HOSTED_QUEUE_GRACE_SECONDS
        item.instance = None
        with transaction.atomic():
            won = lease([item], hold=timedelta(seconds=wait), seconds=wait)
        if won:
            leased.append(item.pk)
    hand_off(leased)
    return len(leased)


def _fail_pending(plugin_id: int, error: str) -> int:
    failed = 0
    for item in WorkItem.objects.filter(
        plugin_id=plugin_id, state=WorkItem.State.PENDING
    ).select_related("run"):
        with transaction.atomic():
            if WorkItem.objects.transition(
                item.pk,
                WorkItem.State.PENDING,
                WorkItem.State.FAILED,
                failure=WorkItem.Failure.ERROR,
                error=error,
                finished_at=timezone.now(),
            ):
                hub_log(item.run, error, item=item, level="ERROR")
                run_settle(item.run_id)
                failed += 1
    return failed


def hosted_item_started(item_id: int, *, worker: str) -> WorkItem | None:
    """A worker starts the handler: the attempt's deadline counts from now.
    None when the item is no longer leased (cancelled, or timed out waiting)."""
    item = (
        WorkItem.objects.select_related(
            "run__plugin",
            "run__project",
            "run__task",
            "run__event__actor",
            "asset__task",
        )
        .filter(pk=item_id, state=WorkItem.State.LEASED, instance__isnull=True)
        .first()
    )
    if item is None:
        return None
    until = timezone.now() + timedelta(
        seconds=item.run.plugin.timeout_seconds + HOSTED_KILL_GRACE_SECONDS
    )
    WorkItem.objects.filter(pk=item.pk, state=WorkItem.State.LEASED).update(
        deadline_at=until, lease_expires_at=until
    )
    hub_log(item.run, f"Handler started on worker {worker}.", item=item)
    return item


def hosted_item_finish(
    item: WorkItem,
    *,
    note: str = "",
    error: str = "",
    failure: str = WorkItem.Failure.ERROR,
) -> None:
    """The sandboxed handler returned (note) or failed, was killed at a limit,
    or crashed (error, with its failure kind). A no-op if the item was
    cancelled meanwhile."""
    if error:
        item_fail(item, failure, error)
    else:
        item_done(item, note)


def item_is_open(item_id: int) -> bool:
    return WorkItem.objects.filter(pk=item_id, state=WorkItem.State.LEASED).exists()
