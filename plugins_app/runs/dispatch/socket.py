"""Socket delivery: lease a batch of pending items to the plugin's live
instances with free slots, least loaded first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone

from plugins_app import protocol
from plugins_app.plugins.kinds import (
    WORKFLOW_TRIGGER,
)
from plugins_app.plugins.models import Plugin, PluginInstance, live_cutoffs
from plugins_app.runs.dispatch.leases import (
    JOB_RELATIONS,
    lease,
    quoted,
    socket_jobs,
)
from plugins_app.runs.models import Run, WorkItem

DISPATCH_BATCH = 100  # socket jobs leased in one transaction


DISPATCH_LOCK_CLASS = 0x4855  # the first key of the plugin's advisory lock


def lease_pending(
    plugin_id: int, *, fresh: Sequence[WorkItem] = ()
) -> list[protocol.Delivery]:
    """Inside a transaction: lease up to DISPATCH_BATCH pending items of a
    plugin, best priority first, each to the least-loaded live instance with a
    free slot; the jobs go out after the commit, in one hop to the channel
    layer. Returns the jobs to send once the transaction commits.

    `fresh`: items this transaction has just written, with their run, plugin
    and asset in memory (`run_create`): no other transaction can see them, so
    they need neither a lock nor reading back.

    A handful of statements whatever the batch size: on PostgreSQL a per-plugin
    advisory lock lets one dispatcher at a time count the instances' free slots
    (two processes could otherwise fill the same slot), and the items are
    locked, so a cancel waits for the lease and then cancels it."""
    # A cheap indexed probe first: most calls find nothing waiting.
    waiting = _waiting(plugin_id)
    if not waiting:
        return []
    pending = WorkItem.objects.filter(plugin_id=plugin_id, state=WorkItem.State.PENDING)
    _lock_dispatch(plugin_id)
    instances = _instances_with_free_slots(plugin_id)
    free = sum(s.limit - s.in_flight for s in instances)
    if not free:
        return []
    now = timezone.now()
    items = _locked(pending, waiting[:free], fresh)
    leased = _allocate(items, instances, now)
    left = free - len(leased)
    if left and len(leased) < len(items):
        # Workflow jobs found every workflow slot taken: other jobs need not
        # wait behind them.
        others = pending.exclude(run__trigger=WORKFLOW_TRIGGER).exclude(
            pk__in=[i.pk for i in items]
        )
        leased += _allocate(_lock(others, limit=left), instances, now)
    return socket_jobs(lease(leased, now=now))


def _locked(
    pending: Any, wanted: list[int], fresh: Sequence[WorkItem]
) -> list[WorkItem]:
    """The `wanted` pending items, in order, locked until the transaction ends
    with what their jobs are built from; the `fresh` ones as they are."""
    known = {item.pk: item for item in fresh}
    others = [pk for pk in wanted if pk not in known]
    found = {i.pk: i for i in _lock(pending.filter(pk__in=others))} if others else {}
    mine = [known[pk] for pk in wanted if pk in known]
    # Their jobs name the asset's task: one query for all of them.
    prefetch_related_objects([i.asset for i in mine if i.asset is not None], "task")
    found.update((i.pk, i) for i in mine)
    return [found[pk] for pk in wanted if pk in found]


def _lock(items: Any, limit: int | None = None) -> list[WorkItem]:
    """Pending items (the first `limit`), locked until the transaction ends,
    with what their jobs are built from."""
    locked = (
        items.select_for_update(of=("self",))
        .select_related(*JOB_RELATIONS)
        .order_by("priority", "id")
    )
    return list(locked[:limit] if limit else locked)


def _lock_dispatch(plugin_id: int) -> None:
    # SQLite needs nothing: its IMMEDIATE transactions already run one at a time.
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                [DISPATCH_LOCK_CLASS, plugin_id],
            )


def _waiting(plugin_id: int) -> list[int]:
    """The ids of the plugin's first DISPATCH_BATCH pending items, best
    priority first (an index range of `next_job`)."""
    w = WorkItem
    sql = (
        f"SELECT {quoted(w, 'id')} FROM {quoted(w)} "  # noqa: S608
        f"WHERE {quoted(w, 'plugin')} = %s AND {quoted(w, 'state')} = %s "
        f"ORDER BY {quoted(w, 'priority')}, {quoted(w, 'id')} LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [plugin_id, WorkItem.State.PENDING.value, DISPATCH_BATCH])
        return [row[0] for row in cursor.fetchall()]


@dataclass
class Slots:
    """A live instance and its slots, while a batch is allocated: its jobs in
    flight and its limit (the smaller of what it declared and the plugin's
    setting), the same for workflow jobs."""

    instance: PluginInstance
    in_flight: int
    workflow_in_flight: int
    limit: int
    workflow_limit: int


def _instances_with_free_slots(plugin_id: int) -> list[Slots]:
    """Live instances with a free slot, each with its jobs in flight and its
    limit: the smaller of what it declared and the plugin's setting. Counted
    from the plugin's leased items only (an index range), never from all the
    items an instance ever held. Two plain queries: through the ORM they cost
    ~5× as much to build as to run, on every dispatch."""
    w, r, i, p = WorkItem, Run, PluginInstance, Plugin
    held_sql = (
        f"SELECT w.{quoted(w, 'instance')}, COUNT(*), "  # noqa: S608
        f"SUM(CASE WHEN r.{quoted(r, 'trigger')} = %s THEN 1 ELSE 0 END) "
        f"FROM {quoted(w)} w JOIN {quoted(r)} r "
        f"ON r.{quoted(r, 'id')} = w.{quoted(w, 'run')} "
        f"WHERE w.{quoted(w, 'plugin')} = %s AND w.{quoted(w, 'state')} = %s "
        f"GROUP BY w.{quoted(w, 'instance')}"
    )
    names = ["id", "channel_name", "address", "capacity", "last_dispatch_at"]
    names.append("timeouts")
    live_sql = (
        f"SELECT {', '.join(f'i.{quoted(i, n)}' for n in names)}, "  # noqa: S608
        f"p.{quoted(p, 'concurrency')} FROM {quoted(i)} i JOIN {quoted(p)} p "
        f"ON p.{quoted(p, 'id')} = i.{quoted(i, 'plugin')} "
        f"WHERE i.{quoted(i, 'plugin')} = %s "
        f"AND i.{quoted(i, 'disconnected_at')} IS NULL "
        f"AND i.{quoted(i, 'last_heartbeat')} >= %s "
        f"AND i.{quoted(i, 'last_seen_at')} >= %s ORDER BY i.{quoted(i, 'id')}"
    )
    at = connection.ops.adapt_datetimefield_value
    heartbeat, seen = live_cutoffs(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            held_sql, [WORKFLOW_TRIGGER, plugin_id, WorkItem.State.LEASED.value]
        )
        counts = {row[0]: {"n": row[1], "workflow": row[2]} for row in cursor}
        cursor.execute(live_sql, [plugin_id, at(heartbeat), at(seen)])
        rows = cursor.fetchall()
    instances = []
    # Plain rows, not model instances: a fleet has hundreds of instances, and
    # building each one as a model cost more than the query.
    for row in rows:
        pk, channel_name, address, capacity, last_dispatch_at, timeouts = row[:6]
        concurrency = row[6]
        held = counts.get(pk, {})
        limit = min(capacity or concurrency, concurrency)
        if held.get("n", 0) >= limit:
            continue
        instance = PluginInstance(
            pk=pk,
            plugin_id=plugin_id,
            channel_name=channel_name,
            address=address,
            capacity=capacity,
            last_dispatch_at=_aware(last_dispatch_at),
            timeouts=timeouts,
        )
        # The SDK runs workflow jobs on `concurrency` slots (1 unless the script
        # says more; declared to the hub as ?concurrency=N in HOST) and answers
        # {"error": true} at once when they are all busy: never send more.
        instances.append(
            Slots(
                instance,
                in_flight=held.get("n", 0),
                workflow_in_flight=held.get("workflow", 0),
                limit=limit,
                workflow_limit=min(capacity or 1, limit),
            )
        )
    return instances


def _aware(value: Any) -> Any:
    """A datetime read by a raw query: SQLite's come back naive (stored in UTC),
    PostgreSQL's aware; the ORM converts them, a raw cursor does not."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and timezone.is_naive(value):
        return timezone.make_aware(value, UTC)
    return value


def _allocate(
    items: list[WorkItem], instances: list[Slots], now: Any
) -> list[WorkItem]:
    """Give each item (in order) to the instance with the fewest jobs in flight,
    the one that waited longest for a job first; skip items nobody can take.
    Instances whose last jobs timed out go last: a hung script looks idle (it
    answers pings and its slots free up at each timeout), and would otherwise
    get first pick of the very jobs that timed out on it."""
    leased = []
    for n, item in enumerate(items):
        workflow = item.run.trigger == WORKFLOW_TRIGGER
        fits = [
            s
            for s in instances
            if s.in_flight < s.limit
            and (not workflow or s.workflow_in_flight < s.workflow_limit)
        ]
        if not fits:
            continue
        best = min(
            fits,
            key=lambda s: (
                s.instance.timeouts > 0,
                s.in_flight,
                s.instance.last_dispatch_at is not None,
                s.instance.last_dispatch_at or now,
            ),
        )
        best.in_flight += 1
        best.workflow_in_flight += workflow
        # Later leases of the batch go behind earlier ones among equals.
        best.instance.last_dispatch_at = now + timedelta(microseconds=n)
        item.instance = best.instance
        leased.append(item)
    return leased
