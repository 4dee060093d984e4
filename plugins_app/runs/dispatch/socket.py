"""Socket delivery: lease a batch of pending items to the plugin's live
instances with free slots, least loaded first."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from django.db import connection, transaction
from django.db.models import prefetch_related_objects
from django.db.models.query import get_related_populators
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
    fleet = _instances_with_free_slots(plugin_id)
    free = fleet.free
    if not free:
        return []
    now = timezone.now()
    items = _locked(plugin_id, waiting[:free], fresh)
    leased = _allocate(items, fleet, now)
    left = free - len(leased)
    if left and len(leased) < len(items):
        # Workflow jobs found every workflow slot taken: other jobs need not
        # wait behind them.
        others = pending.exclude(run__trigger=WORKFLOW_TRIGGER).exclude(
            pk__in=[i.pk for i in items]
        )
        leased += _allocate(_lock(others, limit=left), fleet, now)
    return socket_jobs(lease(leased, now=now))


def _locked(
    plugin_id: int, wanted: list[int], fresh: Sequence[WorkItem]
) -> list[WorkItem]:
    """The `wanted` pending items, in order, locked until the transaction ends
    with what their jobs are built from; the `fresh` ones as they are."""
    known = {item.pk: item for item in fresh}
    others = [pk for pk in wanted if pk not in known]
    found = {i.pk: i for i in _lock_ids(plugin_id, others)} if others else {}
    mine = [known[pk] for pk in wanted if pk in known]
    # Their jobs name the asset's task: one query for all of them.
    prefetch_related_objects([i.asset for i in mine if i.asset is not None], "task")
    found.update((i.pk, i) for i in mine)
    return [found[pk] for pk in wanted if pk in found]


def _lock(items: Any, limit: int | None = None) -> list[WorkItem]:
    """Pending items (the first `limit`), locked until the transaction ends,
    with what their jobs are built from."""
    locked = _lock_query(items)
    return list(locked[:limit] if limit else locked)


def _lock_ids(plugin_id: int, ids: list[int]) -> list[WorkItem]:
    """`_lock` of these pending items of the plugin, its SQL compiled once per
    connection and size (the ids padded to a power of two with repeats of the
    last): an answer that frees a slot leases the next item through this, and
    building the query through the ORM each time was ~60 % of its cost (21 % of
    the hub's CPU in the Model run)."""
    conn = transaction.get_connection()
    size = 1 << (len(ids) - 1).bit_length()
    per_size = _COMPILED.setdefault(conn, {})
    compiled = per_size.get(size)
    if compiled is None:
        compiled = per_size[size] = _Compiled(conn, size)
    padded = [*ids, *[ids[-1]] * (size - len(ids)), PENDING, plugin_id]
    return compiled.run([padded[n] for n in compiled.slots])


PENDING = WorkItem.State.PENDING.value


class _Compiled:
    """`_lock` of `size` pending items of a plugin, compiled on one connection:
    its SQL and what Django's ModelIterable builds the items and their job
    relations with (the same steps, less the compiling)."""

    def __init__(self, conn: Any, size: int) -> None:
        # Ids and a plugin no row has, to check the parameters' order.
        marks = list(range(-size, 0))
        pending = WorkItem.objects.filter(plugin_id=0, state=PENDING, pk__in=marks)
        compiler = _lock_query(pending).query.get_compiler(connection=conn)
        self.sql, params = compiler.as_sql()
        # Where each parameter goes: the plugin, the state, the n-th id.
        self.slots = [-1 if p == 0 else -2 if p == PENDING else -p - 1 for p in params]
        if sorted(self.slots) != [-2, -1, *range(size)]:
            raise AssertionError(f"runs.dispatch: unexpected lock query {params!r}")
        self.compiler = compiler
        select, klass_info = compiler.select, compiler.klass_info
        assert klass_info is not None and not compiler.annotation_col_map
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [f[0].target.attname for f in select[self.start : self.end]]
        # django-stubs describe a later Django (a fetch_mode argument).
        self.populators = get_related_populators(klass_info, select, conn.alias)  # type: ignore[call-arg]
        self.converters = compiler.get_converters(
            [s[0] for s in select[0 : compiler.col_count]]
        )

    def run(self, params: list[Any]) -> list[WorkItem]:
        conn = self.compiler.connection
        with conn.cursor() as cursor:
            cursor.execute(self.sql, params)
            rows: Any = cursor.fetchall()
        if self.converters:
            rows = self.compiler.apply_converters(rows, self.converters)
        items = []
        for row in rows:
            item = WorkItem.from_db(
                conn.alias, self.init_list, row[self.start : self.end]
            )
            for populator in self.populators:
                populator.populate(row, item)
            items.append(item)
        return items


# Per connection (a thread's or an async context's): a compiler holds its own.
_COMPILED: WeakKeyDictionary[Any, dict[int, _Compiled]] = WeakKeyDictionary()


def _lock_query(items: Any) -> Any:
    return (
        items.select_for_update(of=("self",))
        .select_related(*JOB_RELATIONS)
        .order_by("priority", "id")
    )


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


# A live instance with a free slot as read: id, channel name, address, capacity,
# last dispatch (aware), timeouts, jobs in flight, workflow jobs in flight,
# limit, workflow limit.
Row = tuple[int, str, str, int | None, datetime | None, int, int, int, int, int]


class Fleet:
    """The plugin's live instances with a free slot, as plain rows. An
    allocation of k items can only pick among the k best instances by the
    allocation rule (see `candidates`), so Slots (and their PluginInstance) are
    built for those alone: the cost of a dispatch does not grow with the fleet
    (building every instance as a model was 11-19 % of the web process's CPU
    with 200 instances)."""

    def __init__(self, plugin_id: int, rows: list[Row]) -> None:
        self.plugin_id = plugin_id
        self._rows = rows
        self._built: dict[int, Slots] = {}
        self.free = sum(row[8] - row[6] for row in rows)

    def candidates(self, k: int, now: datetime, *, workflow: bool) -> list[Slots]:
        """The instances the next k leases can go to, in id order (the
        allocator's tie-break): the k best by `_rank` among those with a free
        slot, and with `workflow` the k best among those with a free workflow
        slot too. Why k suffice: an instance first picked at the j-th lease
        (j <= k) loses only to better ones that are full or ranked lower by
        then, and only a lease changes an instance's slots or rank, so at most
        j - 1 < k instances rank above it."""
        states = [self._state(row) for row in self._rows]
        pools = [[s for s in states if s[6] < s[8]]]  # any free slot
        if workflow:
            pools.append([s for s in pools[0] if s[7] < s[9]])
        chosen = {
            s[0]: s
            for pool in pools
            for s in heapq.nsmallest(k, pool, key=lambda s: _rank(s, now))
        }
        return [self._slots(chosen[pk]) for pk in sorted(chosen)]

    def _state(self, row: Row) -> Row:
        """A row as it stands now: built instances carry this batch's leases."""
        built = self._built.get(row[0])
        if built is None:
            return row
        i = built.instance
        return (
            *row[:4],
            i.last_dispatch_at,
            row[5],
            built.in_flight,
            built.workflow_in_flight,
            *row[8:],
        )

    def _slots(self, row: Row) -> Slots:
        pk, channel_name, address, capacity, last_dispatch_at, timeouts = row[:6]
        built = self._built.get(pk)
        if built is None:
            instance = PluginInstance(
                pk=pk,
                plugin_id=self.plugin_id,
                channel_name=channel_name,
                address=address,
                capacity=capacity,
                last_dispatch_at=last_dispatch_at,
                timeouts=timeouts,
            )
            built = Slots(instance, *row[6:])
            self._built[pk] = built
        return built


def _rank(row: Row, now: datetime) -> tuple[bool, int, bool, datetime, int]:
    """The allocation rule (`_allocate`) on a row, ties by id."""
    last = row[4]
    return (row[5] > 0, row[6], last is not None, last or now, row[0])


def _instances_with_free_slots(plugin_id: int) -> Fleet:
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
        counts = {row[0]: (row[1], row[2]) for row in cursor}
        cursor.execute(live_sql, [plugin_id, at(heartbeat), at(seen)])
        rows = cursor.fetchall()
    free: list[Row] = []
    # Plain tuples, not model instances: a fleet has hundreds of instances, and
    # building each one as a model cost more than the query.
    for pk, channel_name, address, capacity, last, timeouts, concurrency in rows:
        in_flight, workflow = counts.get(pk, (0, 0))
        limit = min(capacity or concurrency, concurrency)
        if in_flight >= limit:
            continue
        # The SDK runs workflow jobs on `concurrency` slots (1 unless the script
        # says more; declared to the hub as ?concurrency=N in HOST) and answers
        # {"error": true} at once when they are all busy: never send more.
        free.append(
            (
                pk,
                channel_name,
                address,
                capacity,
                _aware(last),
                timeouts,
                in_flight,
                workflow,
                limit,
                min(capacity or 1, limit),
            )
        )
    return Fleet(plugin_id, free)


def _aware(value: Any) -> Any:
    """A datetime read by a raw query: SQLite's come back naive (stored in UTC),
    PostgreSQL's aware; the ORM converts them, a raw cursor does not."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and timezone.is_naive(value):
        return timezone.make_aware(value, UTC)
    return value


def _allocate(items: list[WorkItem], fleet: Fleet, now: Any) -> list[WorkItem]:
    """Give each item (in order) to the instance with the fewest jobs in flight,
    the one that waited longest for a job first; skip items nobody can take.
    Instances whose last jobs timed out go last: a hung script looks idle (it
    answers pings and its slots free up at each timeout), and would otherwise
    get first pick of the very jobs that timed out on it."""
    if not items:
        return []
    workflows = [item.run.trigger == WORKFLOW_TRIGGER for item in items]
    instances = fleet.candidates(len(items), now, workflow=any(workflows))
    leased = []
    for n, (item, workflow) in enumerate(zip(items, workflows, strict=True)):
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
