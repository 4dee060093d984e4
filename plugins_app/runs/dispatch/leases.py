"""The one lease path: pending → leased to an instance (or a hosted worker), one
attempt more, the run running, a log line; then the job with its API key.

Every delivery leases through `lease`: sockets a batch of items they allocated
(socket.py, and `run_create` for the items it has just written), REST
connectors and hosted workers one item at a time. The lease is conditional on
the item still being pending, so two dispatchers never both win an item.
Jobs are built by `jobs_with_keys` (sockets in the lease's transaction, REST
connectors in the Celery task that calls the connector).

This is the hot path of every run: the writes are plain SQL (one UPDATE per
instance and one for the runs, conditional transitions written in
runs/transitions.py; one INSERT each for the log lines and the keys). Through
the ORM the same writes cost ~5× the CPU (bulk_update builds a CASE WHEN per
row and field).
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.db import connection
from django.utils import timezone

from plugins_app import protocol
from plugins_app.plugins.kinds import WORKFLOW_TRIGGER, kind_of
from plugins_app.plugins.models import PluginInstance, lease_ttl
from plugins_app.plugins.secrets import new_token, token_hash
from plugins_app.runs.models import Run, RunApiKey, RunLogLine, WorkItem
from plugins_app.runs.notify import HUB, notify_after_commit
from plugins_app.workspace.bulk import execute_all, insert_many, quoted

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


def lease(
    items: list[WorkItem],
    *,
    now: datetime | None = None,
    hold: timedelta | None = None,
    seconds: int | None = None,
) -> list[WorkItem]:
    """Lease `items` (each to its `item.instance`; None = a hosted worker), those
    still pending only; returns the ones won, updated in memory. Call inside a
    transaction; watchers are told after the commit.

    The lease lasts `hold` unless renewed: one ping cycle for sockets (their
    pongs renew it), the whole deadline for REST connectors and hosted workers
    (nothing renews a synchronous call; the deadline sweep covers a lost
    worker). Hosted items have no instance and a longer first deadline
    (`seconds`): they may wait in Celery's queue."""
    if not items:
        return []
    now = now or timezone.now()
    expires = now + (hold or lease_ttl())
    groups: dict[tuple[int | None, datetime], list[WorkItem]] = {}
    for item in items:
        deadline = now + timedelta(seconds=seconds or item.run.plugin.timeout_seconds)
        groups.setdefault((item.instance_id, deadline), []).append(item)
    won: list[WorkItem] = []
    for (instance_id, deadline), group in groups.items():
        attempts = _update_leased(group, instance_id, now, expires, deadline)
        for item in group:
            if item.pk in attempts:
                item.state, item.attempts = WorkItem.State.LEASED, attempts[item.pk]
                item.leased_at, item.lease_expires_at = now, expires
                item.deadline_at = deadline
                won.append(item)
    if not won:
        return []
    _mark_dispatched(won, now)
    _runs_running({i.run_id: i.run for i in won}, now)
    insert_many(
        RunLogLine,
        ["run", "item", "level", "message", "extra", "created_at"],
        [(i.run_id, i.pk, HUB, _sent_line(i), {}, now) for i in won],
    )
    for run_id in {i.run_id for i in won}:
        notify_after_commit(run_id)
    return won


def jobs_with_keys(items: list[WorkItem]) -> list[dict[str, Any]]:
    """The jobs of leased items, each with a fresh API key that lasts its
    deadline (one INSERT for all the keys)."""
    keys = [new_token() for _ in items]
    grace = timedelta(seconds=settings.HUB_API_KEY_GRACE_SECONDS)
    rows = []
    for item, key in zip(items, keys, strict=True):
        assert item.deadline_at is not None, "only a leased item has a job"
        rows.append((item.run_id, token_hash(key), item.deadline_at + grace))
    insert_many(RunApiKey, ["run", "key_hash", "expires_at"], rows)
    return [
        kind_of(item.run).build_job(item, api_key=key)
        for item, key in zip(items, keys, strict=True)
    ]


def job_with_key(item: WorkItem) -> dict[str, Any]:
    """The job of one leased item (a REST connector's, built in its Celery task)."""
    return jobs_with_keys([item])[0]


def socket_jobs(items: list[WorkItem]) -> list[protocol.Delivery]:
    """The channel-layer sends of items leased to socket instances, to make
    once the lease has committed."""
    on_socket = [i for i in items if i.instance is not None]
    return [
        # A TypedDict is a plain dict to the channel layer.
        ("send", item.instance.channel_name, cast(dict, protocol.job_dispatch(job)))
        for item, job in zip(on_socket, jobs_with_keys(on_socket), strict=True)
        if item.instance is not None
    ]


def _sent_line(item: WorkItem) -> str:
    where = (
        f"instance at {item.instance.address}"
        if item.instance is not None
        else "a hosted worker"
    )
    what = f" for {item.asset.external_id}" if item.asset else ""
    return f"Job sent to {where}{what}."


def _update_leased(
    items: list[WorkItem],
    instance_id: int | None,
    now: datetime,
    expires: datetime,
    deadline: datetime,
) -> dict[int, int]:
    """One conditional UPDATE: the items still pending become leased. Returns
    {item id: attempts} of the ones won."""
    won = WorkItem.objects.transition_batch(
        [i.pk for i in items],
        WorkItem.State.PENDING,
        WorkItem.State.LEASED,
        increment=("attempts",),
        returning=("attempts",),
        instance_id=instance_id,
        leased_at=now,
        lease_expires_at=expires,
        deadline_at=deadline,
    )
    return {int(pk): int(attempts) for pk, attempts in won}


def _mark_dispatched(items: list[WorkItem], now: datetime) -> None:
    """Each instance's last dispatch: the socket allocator's tie-break
    (`socket._allocate` stamps later leases of a batch a microsecond later)."""
    instances: dict[int, PluginInstance] = {
        i.instance.pk: i.instance for i in items if i.instance is not None
    }
    if not instances:
        return
    for instance in instances.values():
        instance.last_dispatch_at = max(instance.last_dispatch_at or now, now)
    at = connection.ops.adapt_datetimefield_value
    rows = [(at(i.last_dispatch_at), i.pk) for i in instances.values()]
    # Most leases (a create's, a freed slot's) go to one instance: one row is
    # a plain execute (execute_all).
    with connection.cursor() as cursor:
        execute_all(cursor, _dispatched_sql(connection.vendor), rows)


@functools.cache
def _dispatched_sql(vendor: str) -> str:
    """Built once per backend: every lease runs it."""
    p = PluginInstance
    return (
        f"UPDATE {quoted(p)} SET {quoted(p, 'last_dispatch_at')} = %s "  # noqa: S608
        f"WHERE {quoted(p, 'id')} = %s"
    )


def _runs_running(runs: dict[int, Run], now: datetime) -> None:
    """Queued runs of the leased items start running (as the database says:
    the copies in memory may be older)."""
    started = Run.objects.transition_batch(
        list(runs), Run.Status.QUEUED, Run.Status.RUNNING, started_at=now
    )
    for (run_id,) in started:
        runs[run_id].status, runs[run_id].started_at = Run.Status.RUNNING, now
