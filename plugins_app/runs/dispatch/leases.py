"""The lease: pending → leased to an instance (or a hosted worker), one attempt
more, the run running, a log line, and the job with its API key. Two forms:
`write_leases` for a batch of items already locked (sockets), and `lease_item`
+ `job_with_key` for one item won by a conditional UPDATE (REST connectors,
hosted workers)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from plugins_app import protocol
from plugins_app.plugins.models import (
    PluginInstance,
    lease_ttl,
)
from plugins_app.plugins.secrets import new_token, token_hash
from plugins_app.plugins.types import (
    WORKFLOW_TRIGGER,
    kind_of,
)
from plugins_app.runs.models import (
    Run,
    RunApiKey,
    RunLogLine,
    WorkItem,
)
from plugins_app.runs.notify import HUB, hub_log, notify_after_commit

# What a job is built from (kind_of(run).build_job), read with the item.
JOB_RELATIONS = (
    "run__plugin",
    "run__project",
    "run__created_by",
    "run__task",
    "run__event",
    "asset__task",
)


def next_pending_item(
    plugin_id: int, *, skip_workflow: bool = False
) -> WorkItem | None:
    # A cheap indexed probe first: most calls find nothing waiting.
    pending = WorkItem.objects.filter(plugin_id=plugin_id, state=WorkItem.State.PENDING)
    if skip_workflow:
        pending = pending.exclude(run__trigger=WORKFLOW_TRIGGER)
    first_id = pending.order_by("priority", "id").values_list("id", flat=True).first()
    if first_id is None:
        return None
    return WorkItem.objects.select_related(*JOB_RELATIONS).filter(pk=first_id).first()


def write_leases(items: list[WorkItem], now: Any) -> list[protocol.Delivery]:
    plugin = items[0].run.plugin
    deadline = now + timedelta(seconds=plugin.timeout_seconds)
    for item in items:
        item.state = WorkItem.State.LEASED
        item.leased_at = now
        item.lease_expires_at = now + lease_ttl()
        item.deadline_at = deadline
        item.attempts += 1  # the row is locked (or the database is, on SQLite)
    WorkItem.objects.bulk_update(
        items,
        ["state", "instance", "leased_at", "lease_expires_at", "deadline_at"]
        + ["attempts"],
    )
    api_keys = {item.pk: new_token() for item in items}
    key_expiry = deadline + timedelta(seconds=settings.HUB_API_KEY_GRACE_SECONDS)
    RunApiKey.objects.bulk_create(
        RunApiKey(
            run_id=i.run_id, key_hash=token_hash(api_keys[i.pk]), expires_at=key_expiry
        )
        for i in items
    )
    instances = {item.instance.pk: item.instance for item in items if item.instance}
    PluginInstance.objects.bulk_update(instances.values(), ["last_dispatch_at"])
    runs = {item.run_id: item.run for item in items}
    Run.objects.filter(pk__in=runs, status=Run.Status.QUEUED).update(
        status=Run.Status.RUNNING, started_at=now
    )
    for run in runs.values():
        if run.status == Run.Status.QUEUED:
            run.status, run.started_at = Run.Status.RUNNING, now
    RunLogLine.objects.bulk_create(
        RunLogLine(
            run_id=item.run_id,
            item=item,
            level=HUB,
            message=f"Job sent to instance at {item.instance.address}"
            + (f" for {item.asset.external_id}." if item.asset else "."),
        )
        for item in items
        if item.instance
    )
    for run_id in runs:
        notify_after_commit(run_id)
    return [
        (
            "send",
            item.instance.channel_name,
            protocol.job_dispatch(
                kind_of(item.run).build_job(item, api_key=api_keys[item.pk])
            ),
        )
        for item in items
        if item.instance
    ]


def lease_item(
    item: WorkItem,
    instance: PluginInstance | None,
    *,
    hold: timedelta | None = None,
    seconds: int | None = None,
    note: str = "",
) -> bool:
    """Pending → leased to `instance`, one attempt more, if no one else won it.
    Every delivery leases through here. The lease lasts `hold` unless renewed:
    one ping cycle for sockets (their pongs renew it), the whole deadline for
    REST connectors and hosted workers (nothing renews a synchronous call; the
    deadline sweep covers a lost worker). Hosted items have no instance and a
    longer first deadline (`seconds`): they may wait in Celery's queue."""
    run = item.run
    now = timezone.now()
    deadline = now + timedelta(seconds=seconds or run.plugin.timeout_seconds)
    with transaction.atomic():
        won = WorkItem.objects.filter(pk=item.pk, state=WorkItem.State.PENDING).update(
            state=WorkItem.State.LEASED,
            instance=instance,
            leased_at=now,
            lease_expires_at=now + (hold or lease_ttl()),
            deadline_at=deadline,
            attempts=F("attempts") + 1,
        )
        if won != 1:
            return False
        item.state, item.instance, item.deadline_at = (
            WorkItem.State.LEASED,
            instance,
            deadline,
        )
        if instance is not None:
            PluginInstance.objects.filter(pk=instance.pk).update(last_dispatch_at=now)
        if Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(
            status=Run.Status.RUNNING, started_at=now
        ):
            run.status, run.started_at = Run.Status.RUNNING, now
        what = f" for {item.asset.external_id}" if item.asset else ""
        where = f"instance at {instance.address}" if instance else "a hosted worker"
        hub_log(run, note or f"Job sent to {where}{what}.", item=item)
        notify_after_commit(run.pk)
        return True


def job_with_key(item: WorkItem) -> dict[str, Any]:
    """The job of a leased item, with a fresh API key that lasts its deadline."""
    assert item.deadline_at is not None
    api_key = new_token()
    RunApiKey.objects.create(
        run=item.run,
        key_hash=token_hash(api_key),
        expires_at=item.deadline_at
        + timedelta(seconds=settings.HUB_API_KEY_GRACE_SECONDS),
    )
    return kind_of(item.run).build_job(item, api_key=api_key)
