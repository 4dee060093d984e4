"""What the freed-slot dispatch costs when nothing of the plugin is pending,
the usual case: every answer asks for one (runs/wakeup.py). Calls
`dispatch_pending` on a socket plugin with 20 live instances, 1,000 finished
items and none pending, in process; prints CPU microseconds and SQL statements
per call.

    .venv/bin/python bench/probe_cost.py                # embedded (SQLite WAL)
    .venv/bin/python bench/probe_cost.py --production   # PostgreSQL
    .venv/bin/python bench/probe_cost.py --runs 5000 --json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import load_average  # noqa: E402
from _processes import django_here, in_process_main  # noqa: E402

FINISHED = 1_000


def measure(args: argparse.Namespace) -> dict[str, object]:
    """In the child process, with the database set up: the measurement."""
    django_here()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from plugins_app.plugins.models import Plugin, PluginInstance
    from plugins_app.runs.creation import RunRequest, run_create
    from plugins_app.runs.dispatch import dispatch_pending
    from plugins_app.runs.models import WorkItem
    from plugins_app.workspace.models import Project

    plugin = Plugin.objects.get(type="model")
    project = Project.objects.get(pk=plugin.projects.values_list("pk").first()[0])
    user = get_user_model().objects.get(username="admin")
    assets = list(project.assets.values_list("external_id", flat=True))
    PluginInstance.objects.bulk_create(
        PluginInstance(plugin=plugin, channel_name=f"probe!{n}", address=f"p:{n}")
        for n in range(20)
    )
    run_create(
        RunRequest(
            plugin=plugin,
            project=project,
            user=user,
            class_mapping={"face": "face-box"},
            config_json="{}",
            external_ids=[assets[n % len(assets)] for n in range(FINISHED)],
            batch_ids=[],
        ),
        dispatch=False,
    )
    WorkItem.objects.update(state=WorkItem.State.DONE)
    for _ in range(50):  # warm up: the connection, compiled statements
        assert dispatch_pending(plugin.pk) == 0
    kinds: Counter[str] = Counter()

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        kinds[sql.lstrip().split(None, 1)[0].upper()] += 1
        return execute(sql, params, many, context)

    cpu0, wall0 = time.thread_time(), time.perf_counter()
    with connection.execute_wrapper(count):
        for _ in range(args.runs):
            dispatch_pending(plugin.pk)
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    n = args.runs
    return {
        "mode": "production" if args.production else "embedded",
        "load": float(load_average().split()[0]),
        "calls": n,
        "cpu_us_per_call": round(cpu / n * 1e6, 1),
        "wall_us_per_call": round(wall / n * 1e6, 1),
        "statements_per_call": round(sum(kinds.values()) / n, 2),
        "statements_by_kind": {k: round(v / n, 2) for k, v in kinds.most_common()},
    }


def describe(result: dict[str, object]) -> str:
    return (
        f"{result['mode']}: {result['calls']} dispatches with nothing pending, "
        f"{result['cpu_us_per_call']} µs CPU and {result['wall_us_per_call']} µs "
        f"wall per call, {result['statements_per_call']} statements "
        f"{result['statements_by_kind']}, load {result['load']}"
    )


def main() -> None:
    in_process_main(
        __file__,
        __doc__ or "",
        measure,
        describe,
        runs=2000,
        profile_help="(unused)",
    )


if __name__ == "__main__":
    main()
