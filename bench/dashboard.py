"""How long a plugin's dashboard figures take over many work items (issue 12
§3: the queries must stay bounded with 100k items): `dashboard.figures.
plugin_figures` for the hour, day and week, and the whole `/metrics`
collector, timed in process on a scratch hub whose plugin has N items ended
over the last week (most answered, some errors, time-outs, skips, retries)
plus N items of another plugin the queries must skip.

    .venv/bin/python bench/dashboard.py                # 100,000 items, SQLite
    .venv/bin/python bench/dashboard.py --production   # PostgreSQL
    .venv/bin/python bench/dashboard.py --quick --json # 10,000 items

The items are written in bulk (not through the ledger): what is measured is
reading the figures, not running the jobs. Each run times the figures twice on
the same database and load: with the dashboard's indexes (runs 0013), then
with them dropped (as before that migration); `--plans` prints the query plan
(EXPLAIN QUERY PLAN / EXPLAIN) of every query of the hour's figures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import load_average, say  # noqa: E402
from _processes import django_here, in_scratch_hub  # noqa: E402

ITEMS_PER_RUN = 1000
REPEATS = 5


def _fill(
    plugin: Any,
    project: Any,
    user: Any,
    items: int,
    rng: random.Random,
    *,
    in_order: bool = False,
) -> None:
    """`in_order`: each run's items end one after the other (half a second
    apart) and the runs are written oldest first, as the ledger writes them;
    otherwise every item ends at a random time of the week."""
    from django.utils import timezone

    from plugins_app.runs.models import Run, WorkItem

    now = timezone.now()
    week = timedelta(days=7).total_seconds()
    # Within the week by a margin: the window is measured after the setup,
    # which takes a while.
    runs_ago = sorted(
        (rng.uniform(600, week - 3600) for _ in range(0, items, ITEMS_PER_RUN)),
        reverse=True,
    )
    for start, run_ago in zip(range(0, items, ITEMS_PER_RUN), runs_ago, strict=True):
        created_ago = run_ago if in_order else rng.uniform(0, week)
        run = Run.objects.create(
            organization_id=project.organization_id,
            project=project,
            plugin=plugin,
            created_by=user,
            status=Run.Status.SUCCEEDED,
            created_at=now - timedelta(seconds=created_ago),
        )
        rows = []
        for n in range(min(ITEMS_PER_RUN, items - start)):
            ago = run_ago - n * 0.5 if in_order else rng.uniform(60, week - 3600)
            leased = now - timedelta(seconds=ago)
            roll = rng.random()
            state, failure = WorkItem.State.DONE, ""
            if roll < 0.05:
                state, failure = WorkItem.State.FAILED, WorkItem.Failure.ERROR
            elif roll < 0.08:
                state, failure = WorkItem.State.FAILED, WorkItem.Failure.TIMEOUT
            elif roll < 0.10:
                state = WorkItem.State.SKIPPED
            rows.append(
                WorkItem(
                    run=run,
                    plugin=plugin,
                    session=uuid.uuid4().hex,
                    state=state,
                    failure=failure,
                    error="boom" if failure else "",
                    attempts=2 if rng.random() < 0.03 else 1,
                    queued_at=leased - timedelta(seconds=rng.uniform(0, 2)),
                    leased_at=leased,
                    finished_at=leased + timedelta(seconds=rng.expovariate(2)),
                )
            )
        WorkItem.objects.bulk_create(rows, batch_size=1000)


# Added by runs 0013 for these queries; dropped to time them as before it.
DASHBOARD_INDEXES = ("item_plugin_finished", "run_plugin_created")


def _median_ms(fn: Any) -> float:
    walls = []
    for _ in range(REPEATS):
        wall0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - wall0)
    return round(statistics.median(walls) * 1000, 1)


def _time_figures(plugin: Any, figures: dict[str, Any]) -> dict[str, float]:
    """Median ms of each window's figures (kept in `figures`), and of the
    failing streak alone (part of every window's)."""
    from plugins_app.dashboard.figures import WINDOWS, failing_streak, plugin_figures

    timings = {}
    for name, window in WINDOWS.items():
        timings[name] = _median_ms(
            lambda: figures.__setitem__(name, plugin_figures(plugin, window))  # noqa: B023
        )
    timings["failing"] = _median_ms(lambda: failing_streak(plugin))
    return timings


def _plans(plugin: Any) -> list[dict[str, Any]]:
    """The database's plan of every query of the hour's figures."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from plugins_app.dashboard.figures import WINDOWS, plugin_figures

    with CaptureQueriesContext(connection) as captured:
        plugin_figures(plugin, WINDOWS["hour"])
    explain = "EXPLAIN QUERY PLAN" if connection.vendor == "sqlite" else "EXPLAIN"
    column = -1 if connection.vendor == "sqlite" else 0  # the plan's text
    plans = []
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            # Captured with its parameters inlined, as the database saw it.
            cursor.execute(f"{explain} {query['sql']}")
            plan = [str(row[column]) for row in cursor.fetchall()]
            plans.append({"sql": query["sql"][:200], "plan": plan})
    return plans


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """In the child process, with the database set up: the measurement."""
    django_here()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from prometheus_client import CollectorRegistry, generate_latest

    from plugins_app.ops.metrics import HubCollector
    from plugins_app.plugins.models import Plugin
    from plugins_app.plugins.services import plugin_create
    from plugins_app.workspace.models import Project

    plugin = Plugin.objects.get(type="model")
    project = Project.objects.get(pk=plugin.projects.values_list("pk").first()[0])
    user = get_user_model().objects.get(username="admin")
    other = plugin_create(
        organization=plugin.organization,
        name="other",
        type="model",
        class_names=["face"],
        default_config="{}",
        timeout_seconds=60,
        projects=[project],
    ).plugin
    rng = random.Random(12)
    t0 = time.perf_counter()
    _fill(plugin, project, user, args.items, rng, in_order=args.in_order)
    _fill(other, project, user, args.items, rng, in_order=args.in_order)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    setup = time.perf_counter() - t0
    figures: dict[str, Any] = {}
    timings = _time_figures(plugin, figures)
    plans = _plans(plugin) if args.plans else []
    walls = []
    for _ in range(REPEATS):
        registry = CollectorRegistry(auto_describe=False)
        registry.register(HubCollector())
        wall0 = time.perf_counter()
        generate_latest(registry)
        walls.append(time.perf_counter() - wall0)
    metrics_ms = round(statistics.median(walls) * 1000, 1)
    week = figures["week"]
    ended = sum(week["items"][k] for k in ("done", "skipped", "failed", "cancelled"))
    assert ended == args.items, (ended, args.items)
    with connection.cursor() as cursor:
        for index in DASHBOARD_INDEXES:
            cursor.execute(f"DROP INDEX {index}")  # noqa: S608 - our constants
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE")
    without = _time_figures(plugin, {})
    return {
        "mode": "production" if args.production else "embedded",
        "in_order": args.in_order,
        "items": args.items,
        "other_plugin_items": args.items,
        "figures_ms": timings,
        "figures_ms_without_indexes": without,
        "failing_ms": timings.pop("failing"),
        "failing_ms_without_indexes": without.pop("failing"),
        "plans": plans,
        "metrics_ms": metrics_ms,
        "repeats": REPEATS,
        "week_error_rate": week["error_rate"],
        "week_latency_p95": week["latency_p95"],
        "setup_seconds": round(setup, 1),
        "load": float(load_average().split()[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 items")
    parser.add_argument("--production", action="store_true", help="PostgreSQL")
    parser.add_argument("--json", action="store_true", help="last line: JSON")
    parser.add_argument("--plans", action="store_true", help="print query plans")
    parser.add_argument(
        "--in-order", action="store_true", help="items end in the order written"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.items = 10_000
    args.items = max(100, min(args.items, 1_000_000))
    if args.child:
        print(json.dumps(measure(args)))
        return
    child = ["--items", str(args.items)]
    child += ["--production"] if args.production else []
    child += ["--plans"] if args.plans else []
    child += ["--in-order"] if args.in_order else []
    result = in_scratch_hub(__file__, child, production=args.production)
    for query in result["plans"]:
        say(query["sql"])
        for line in query["plan"]:
            say(f"    {line}")
    say(
        f"{result['mode']}{', in order' if result['in_order'] else ''}, "
        f"{result['items']:,} items (+ as many of another "
        f"plugin): figures hour/day/week {result['figures_ms']} ms "
        f"(without the dashboard's indexes {result['figures_ms_without_indexes']}), "
        f"failing streak {result['failing_ms']} ms (without "
        f"{result['failing_ms_without_indexes']}), /metrics "
        f"{result['metrics_ms']} ms (median of {result['repeats']}); "
        f"load {result['load']}"
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
