"""Socket delivery: lease a batch of pending items to the plugin's live
instances with free slots, least loaded first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
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
from plugins_app.runs.dispatch.fleet import (
    Fleet,
    Row,
    Slots,
    instances_with_free_slots,
)
from plugins_app.runs.dispatch.leases import (
    JOB_RELATIONS,
    lease,
    socket_jobs,
)
from plugins_app.runs.models import WorkItem
from plugins_app.workspace.bulk import quoted

# Fleet, Row and Slots are read here by the allocator and its tests.
__all__ = ["DISPATCH_BATCH", "Fleet", "Row", "Slots", "lease_pending"]

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
    locked, so a cancel waits for the lease and then cancels it. (Dispatching
    without that lock, each dispatch locking the instances it leases to, was
    tried and left out: docs/stage5-lock.md.)"""
    # A cheap indexed probe first: most calls find nothing waiting.
    waiting = _waiting(plugin_id)
    if not waiting:
        return []
    _lock_dispatch(plugin_id)
    fleet = instances_with_free_slots(plugin_id)
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
        pending = WorkItem.objects.filter(
            plugin_id=plugin_id, state=WorkItem.State.PENDING
        )
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
