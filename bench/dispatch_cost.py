"""What one queued single-asset run costs the hub before any plugin sees it:
`run_create` plus its on-commit `dispatch_pending`, in production mode
(PostgreSQL, Redis channel layer), with N live instances of the plugin. Prints
milliseconds per run, SQL statements per run by kind, and channel-layer
deliveries per run. Instances have no socket (jobs go to their channels
unread) and jobs are never answered, so leases pile up as in a busy fleet.

    .venv/bin/python bench/dispatch_cost.py                  # 200 instances, 300 runs
    .venv/bin/python bench/dispatch_cost.py --instances 20 --runs 100

Creates a fresh PostgreSQL database (127.0.0.1:5432, dropped at the end) and
uses Redis db 13. The fleet benchmark (bench/fleet.py) measures the same path
end to end; this one isolates it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import load_average, machine_facts, say  # noqa: E402
from _processes import HUB_PYTHON, ROOT, django_here  # noqa: E402
from fleet import PG_URL, psql  # noqa: E402


def measure(args: argparse.Namespace) -> None:
    """In the child process, with the database set up: the measurement."""
    django_here()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from plugins_app import protocol
    from plugins_app.plugins.models import Plugin, PluginInstance
    from plugins_app.runs.creation import RunRequest, run_create
    from plugins_app.workspace.models import Project

    plugin = Plugin.objects.get(type="model")
    project = Project.objects.get(pk=plugin.projects.values_list("pk").first()[0])
    user = get_user_model().objects.get(username="admin")
    assets = list(project.assets.values_list("external_id", flat=True))
    PluginInstance.objects.bulk_create(
        PluginInstance(plugin=plugin, channel_name=f"bench!{n}", address=f"bench:{n}")
        for n in range(args.instances)
    )
    Plugin.objects.filter(pk=plugin.pk).update(concurrency=1_000)

    def one(n: int) -> None:
        run_create(
            RunRequest(
                plugin=plugin,
                project=project,
                user=user,
                class_mapping={"face": "face-box"},
                config_json="{}",
                external_ids=[assets[n % len(assets)]],
                batch_ids=[],
            )
        )

    statements: Counter[str] = Counter()

    def count(execute, sql, params, many, context):  # noqa: ANN001, ANN202
        statements[sql.split()[0].upper()] += 1
        return execute(sql, params, many, context)

    deliveries = 0
    deliver_many = protocol.deliver_many

    def counted(batch):  # noqa: ANN001, ANN202
        nonlocal deliveries
        deliveries += len(batch)
        return deliver_many(batch)

    protocol.deliver_many = counted
    for n in range(20):  # warm up: connections, caches
        one(n)
    from django.db.backends.signals import connection_created

    opened = [0]

    def on_open(**kwargs: object) -> None:
        opened[0] += 1

    connection_created.connect(on_open)
    deliveries = 0
    started, cpu0 = time.perf_counter(), time.thread_time()
    with connection.execute_wrapper(count):
        for n in range(args.runs):
            one(n)
    seconds, cpu = time.perf_counter() - started, time.thread_time() - cpu0
    print(
        json.dumps(
            {
                "ms_per_run": 1000 * seconds / args.runs,
                # This thread's CPU: the creating request's share of the hub.
                "cpu_ms_per_run": round(1000 * cpu / args.runs, 3),
                "statements": round(sum(statements.values()) / args.runs, 2),
                "connections_opened": opened[0],
                "statements_per_run": {
                    k: round(v / args.runs, 2) for k, v in statements.items()
                },
                "deliveries_per_run": deliveries / args.runs,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--json", action="store_true", help="last line: JSON")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure(args)
        return
    say(f"machine: {machine_facts()}; load {load_average()}")
    db_name = f"dispatch_{uuid.uuid4().hex[:10]}"
    psql(f"CREATE DATABASE {db_name}")
    try:
        with tempfile.TemporaryDirectory(prefix="dispatch-") as tmp:
            env = {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "plugins_app.settings",
                "DATABASE_URL": f"{PG_URL}/{db_name}",
                "REDIS_URL": "redis://127.0.0.1:6379/13",
                "HUB_VAR_DIR": tmp,
                "DJANGO_SECRET_KEY": uuid.uuid4().hex * 2,
                "HUB_METRICS_TOKEN": "bench-metrics-token",
            }
            env.pop("HUB_TEST_DB", None)
            subprocess.run(
                [str(HUB_PYTHON), str(ROOT / "bench" / "hub_setup.py")],
                env=env, cwd=ROOT, check=True, capture_output=True, timeout=300,
            )  # fmt: skip
            child = subprocess.run(
                [str(HUB_PYTHON), __file__, "--child", "--instances",
                 str(args.instances), "--runs", str(args.runs)],
                env=env, cwd=ROOT, capture_output=True, text=True,
            )  # fmt: skip
            if child.returncode != 0:
                sys.exit(child.stderr[-3000:])
    finally:
        psql(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    print(
        f"\n{args.runs} single-asset runs, {args.instances} live instances: "
        f"{result['ms_per_run']:.1f} ms wall and {result['cpu_ms_per_run']:.2f} ms "
        f"CPU per run_create + dispatch; SQL statements per run "
        f"{result['statements_per_run']}; channel-layer deliveries per run "
        f"{result['deliveries_per_run']:.1f}; {result['connections_opened']} "
        f"connection(s) opened; load {load_average()}"
    )
    if args.json:
        print(json.dumps(result | {"load": float(load_average().split()[0])}))


if __name__ == "__main__":
    main()
