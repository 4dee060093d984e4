"""The plugin's live instances with a free slot, as a socket dispatch sees
them (`Fleet`): read in one statement, allocated by the rule in socket.py."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from plugins_app.plugins.kinds import WORKFLOW_TRIGGER
from plugins_app.plugins.models import Plugin, PluginInstance, live_cutoffs
from plugins_app.runs.models import Run, WorkItem
from plugins_app.workspace.bulk import quoted


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
        chosen = self.best(k, now, workflow=workflow)
        return [self._slots(row) for row in chosen]

    def best(self, k: int, now: datetime, *, workflow: bool) -> list[Row]:
        """The rows of `candidates`, as they stand now, in id order."""
        states = [self._state(row) for row in self._rows]
        pools = [[s for s in states if s[6] < s[8]]]  # any free slot
        if workflow:
            pools.append([s for s in pools[0] if s[7] < s[9]])
        chosen = {
            s[0]: s
            for pool in pools
            for s in heapq.nsmallest(k, pool, key=lambda s: _rank(s, now))
        }
        return [chosen[pk] for pk in sorted(chosen)]

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


def instances_with_free_slots(plugin_id: int) -> Fleet:
    """Live instances with a free slot, each with its jobs in flight and its
    limit: the smaller of what it declared and the plugin's setting. Counted
    from the plugin's leased items only (an index range), never from all the
    items an instance ever held. One plain query: through the ORM it cost ~5×
    as much to build as to run, on every dispatch."""
    i = PluginInstance
    sql = _fleet_sql(f"i.{quoted(i, 'plugin')} = %s")
    params = [*_held_params(plugin_id), plugin_id, *_live_params()]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return Fleet(plugin_id, _with_free_slots(cursor.fetchall()))


def _fleet_sql(which: str) -> str:
    """Live instances `i` (`which` of them), their plugin's concurrency and
    their jobs in flight; parameters: `_held_params`, `which`'s, `_live_params`."""
    i, p = PluginInstance, Plugin
    names = ", ".join(f"i.{quoted(i, n)}" for n in _INSTANCE_COLUMNS)
    return (
        f"SELECT {names}, p.{quoted(p, 'concurrency')}, "  # noqa: S608
        f"COALESCE(h.n, 0), COALESCE(h.workflow, 0) "
        f"FROM {quoted(i)} i JOIN {quoted(p)} p "
        f"ON p.{quoted(p, 'id')} = i.{quoted(i, 'plugin')} "
        f"LEFT JOIN ({_held_sql()}) h ON h.instance = i.{quoted(i, 'id')} "
        f"WHERE {which} AND {_live()} ORDER BY i.{quoted(i, 'id')}"
    )


# A live instance with a free slot as read: id, channel name, address, capacity,
# last dispatch (aware), timeouts, then the plugin's concurrency.
_INSTANCE_COLUMNS = (
    "id",
    "channel_name",
    "address",
    "capacity",
    "last_dispatch_at",
    "timeouts",
)


def _live() -> str:
    """The condition of a live instance `i` (PluginInstanceQuerySet.live)."""
    i = PluginInstance
    return (
        f"i.{quoted(i, 'disconnected_at')} IS NULL "
        f"AND i.{quoted(i, 'last_heartbeat')} >= %s "
        f"AND i.{quoted(i, 'last_seen_at')} >= %s"
    )


def _live_params() -> list[Any]:
    at = connection.ops.adapt_datetimefield_value
    heartbeat, seen = live_cutoffs(timezone.now())
    return [at(heartbeat), at(seen)]


def _held_sql() -> str:
    """(instance, jobs in flight, workflow jobs in flight) of the plugin's
    leased items."""
    w, r = WorkItem, Run
    return (
        f"SELECT w.{quoted(w, 'instance')} AS instance, COUNT(*) AS n, "  # noqa: S608
        f"SUM(CASE WHEN r.{quoted(r, 'trigger')} = %s THEN 1 ELSE 0 END) AS workflow "
        f"FROM {quoted(w)} w JOIN {quoted(r)} r "
        f"ON r.{quoted(r, 'id')} = w.{quoted(w, 'run')} "
        f"WHERE w.{quoted(w, 'plugin')} = %s AND w.{quoted(w, 'state')} = %s "
        f"GROUP BY w.{quoted(w, 'instance')}"
    )


def _held_params(plugin_id: int) -> list[Any]:
    return [WORKFLOW_TRIGGER, plugin_id, WorkItem.State.LEASED.value]


def _with_free_slots(rows: Iterable[Any]) -> list[Row]:
    """Rows of (instance columns, the plugin's concurrency, jobs in flight,
    workflow jobs in flight) as `Row`s, those with a free slot only."""
    free: list[Row] = []
    # Plain tuples, not model instances: a fleet has hundreds of instances, and
    # building each one as a model cost more than the query.
    for row in rows:
        pk, channel_name, address, capacity, last, timeouts, concurrency = row[:7]
        in_flight, workflow = int(row[7]), int(row[8] or 0)
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
    return free


def _aware(value: Any) -> Any:
    """A datetime read by a raw query: SQLite's come back naive (stored in UTC),
    PostgreSQL's aware; the ORM converts them, a raw cursor does not."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and timezone.is_naive(value):
        return timezone.make_aware(value, UTC)
    return value
