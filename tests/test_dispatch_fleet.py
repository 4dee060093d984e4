"""Socket dispatch over a large fleet (issue 10): the instance chosen follows the
allocation rule (timeouts last, least in flight, longest idle first, ties by
id) whatever the fleet's size, and a dispatch builds model objects only for the
instances it may pick, not for every live one."""

from __future__ import annotations

import random
from datetime import timedelta
from operator import attrgetter
from types import SimpleNamespace
from typing import Any
from unittest import mock

from django.db import connection, transaction
from django.db.models.sql.compiler import SQLCompiler
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from plugins_app.plugins.kinds import WORKFLOW_TRIGGER
from plugins_app.plugins.models import Plugin, PluginInstance
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.dispatch.leases import JOB_RELATIONS
from plugins_app.runs.dispatch.socket import (
    Fleet,
    Row,
    Slots,
    _allocate,
    _lock,
    _lock_ids,
)
from plugins_app.runs.models import WorkItem
from tests.builders import new_run


def fleet_of(
    plugin: Plugin, size: int, seed: int = 7, first: int = 0
) -> list[PluginInstance]:
    """`size` live instances: a third whose last jobs timed out, some never
    given a job, the others last given one at scattered times."""
    rnd = random.Random(seed)
    now = timezone.now()
    instances = PluginInstance.objects.bulk_create(
        PluginInstance(
            plugin=plugin,
            channel_name=f"fleet!{n}",
            address=f"fleet:{n}",
            timeouts=1 if n % 3 == 0 else 0,
            last_dispatch_at=(
                None
                if n % 3 == 0 or n % 7 == 0
                else now - timedelta(seconds=rnd.randint(1, 3600))
            ),
        )
        for n in range(first, first + size)
    )
    return instances


def by_rule(busy: set[int]) -> PluginInstance:
    """The instance the rule picks for one item, from every live instance."""
    now = timezone.now()
    return min(
        PluginInstance.objects.filter(disconnected_at=None),
        key=lambda i: (
            i.timeouts > 0,
            i.pk in busy,
            i.last_dispatch_at is not None,
            i.last_dispatch_at or now,
            i.pk,
        ),
    )


def test_200_instances_one_item_goes_where_the_rule_says(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    Plugin.objects.filter(pk=plugin.pk).update(concurrency=2)
    fleet_of(plugin, 200)
    # The instance the rule would pick already holds a job: the next one wins.
    first = by_rule(busy=set())
    held = new_run(workspace, plugin, "coins").items.get()
    WorkItem.objects.filter(pk=held.pk).update(
        state=WorkItem.State.LEASED, instance=first
    )
    expected = by_rule(busy={first.pk})
    assert expected.pk != first.pk

    run = new_run(workspace, plugin, "astronaut")
    assert dispatch_pending(plugin.pk) == 1

    assert run.items.get().instance_id == expected.pk


def dispatch_cost(workspace: Any, plugin: Plugin) -> tuple[int, int]:
    """(PluginInstance objects built, SQL statements) of dispatching one item."""
    new_run(workspace, plugin, "astronaut")
    built = 0
    init = PluginInstance.__init__

    def counted(self: PluginInstance, *args: Any, **kwargs: Any) -> None:
        nonlocal built
        built += 1
        init(self, *args, **kwargs)

    with (
        mock.patch.object(PluginInstance, "__init__", counted),
        CaptureQueriesContext(connection) as queries,
    ):
        assert dispatch_pending(plugin.pk) == 1
    return built, len(queries)


def test_the_cost_of_a_dispatch_does_not_grow_with_the_fleet(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    fleet_of(plugin, 20)
    small = dispatch_cost(workspace, plugin)
    fleet_of(plugin, 180, seed=8, first=20)  # 200 now
    large = dispatch_cost(workspace, plugin)

    assert large == small
    assert large[0] == 1  # only the instance chosen is built


# --- the allocator on synthetic fleets: the same choices as over every instance
def reference(batches: list[list[Any]], rows: list[Row], now: Any) -> list[int | None]:
    """The allocation rule over every instance (the allocator before the
    fleet was cut to its candidates), batch after batch."""
    slots = [
        Slots(SimpleNamespace(pk=r[0], timeouts=r[5], last_dispatch_at=r[4]), *r[6:])  # type: ignore[arg-type]
        for r in rows
    ]
    chosen: list[int | None] = []
    for n, item in ((n, i) for batch in batches for n, i in enumerate(batch)):
        workflow = item.run.trigger == WORKFLOW_TRIGGER
        fits = [
            s
            for s in slots
            if s.in_flight < s.limit
            and (not workflow or s.workflow_in_flight < s.workflow_limit)
        ]
        if not fits:
            chosen.append(None)
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
        best.instance.last_dispatch_at = now + timedelta(microseconds=n)
        chosen.append(best.instance.pk)
    return chosen


def synthetic(rnd: random.Random, size: int, now: Any) -> list[Row]:
    rows: list[Row] = []
    for pk in range(1, size + 1):
        limit = rnd.randint(1, 4)
        workflow_limit = rnd.randint(1, limit)
        in_flight = rnd.randint(0, limit - 1)
        last = (
            None if rnd.random() < 0.2 else now - timedelta(seconds=rnd.randint(0, 9))
        )
        rows.append(
            (
                pk,
                f"c{pk}",
                f"a{pk}",
                limit,
                last,
                rnd.choice([0, 0, 0, 2]),
                in_flight,
                rnd.randint(0, min(in_flight, workflow_limit)),
                limit,
                workflow_limit,
            )
        )
    return rows


def test_the_allocator_picks_as_the_rule_over_every_instance() -> None:
    rnd = random.Random(10)
    now = timezone.now()
    for _ in range(300):
        rows = synthetic(rnd, rnd.randint(1, 40), now)
        fleet = Fleet(1, rows)
        batches = []
        for _batch in range(rnd.randint(1, 3)):  # lease_pending's second pass
            batches.append(
                [
                    SimpleNamespace(
                        pk=n,
                        instance=None,
                        run=SimpleNamespace(
                            trigger=WORKFLOW_TRIGGER if rnd.random() < 0.4 else "manual"
                        ),
                    )
                    for n in range(rnd.randint(1, 12))
                ]
            )
        expected = reference(batches, rows, now)
        got: list[int | None] = []
        for batch in batches:
            leased = _allocate(batch, fleet, now)  # type: ignore[arg-type]
            assert all(item.instance is not None for item in leased)
            got += [item.instance.pk if item.instance else None for item in batch]
        assert got == expected


# --- the freed-slot lease: the lock of the next items, compiled once -------------
def test_the_next_items_are_locked_without_compiling_a_query(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    Plugin.objects.filter(pk=plugin.pk).update(concurrency=1)
    fleet_of(plugin, 2)
    run = new_run(
        workspace, plugin, "astronaut", "coins", "camera", "coffee", "chelsea"
    )
    assert dispatch_pending(plugin.pk) == 2  # compiles the lock (per size)
    compiled = 0
    as_sql = SQLCompiler.as_sql

    def counted(self: SQLCompiler, *args: Any, **kwargs: Any) -> Any:
        nonlocal compiled
        compiled += self.query.select_for_update
        return as_sql(self, *args, **kwargs)

    with mock.patch.object(SQLCompiler, "as_sql", counted):
        for item in WorkItem.objects.filter(run=run, state=WorkItem.State.LEASED):
            WorkItem.objects.filter(pk=item.pk).update(state=WorkItem.State.DONE)
            assert dispatch_pending(plugin.pk) == 1
    assert compiled == 0


def test_the_compiled_lock_reads_what_the_orm_reads(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    fleet_of(plugin, 1)
    run = new_run(workspace, plugin, "astronaut", "coins", "camera")
    # Nobody to lease them to: they stay pending whatever created them.
    PluginInstance.objects.update(disconnected_at=timezone.now())
    WorkItem.objects.update(state=WorkItem.State.PENDING, instance=None)
    ids = list(run.items.order_by("-id").values_list("pk", flat=True))
    pending = WorkItem.objects.filter(plugin_id=plugin.pk, state=WorkItem.State.PENDING)
    relations = [r.replace("__", ".") for r in JOB_RELATIONS]

    def seen(items: list[WorkItem]) -> list[Any]:
        return [
            (i.__dict__ | {"_state": None}, [repr(attrgetter(r)(i)) for r in relations])
            for i in items
        ]

    with transaction.atomic():
        for wanted in (ids[:1], ids[:3], [ids[0], -5]):
            orm = _lock(pending.filter(pk__in=wanted))
            assert seen(_lock_ids(plugin.pk, wanted)) == seen(orm)
        WorkItem.objects.filter(pk=ids[0]).update(state=WorkItem.State.LEASED)
        assert [i.pk for i in _lock_ids(plugin.pk, ids)] == sorted(ids[1:])
