"""One Model run over many assets, 4 plugin instances: the hub's rate against
the bare relay's with the same jobs, in one invocation (issue 10 §1: a Model
run over 1,000 assets with 4 instances at >= 0.5x the bare relay's rate).

    cd /work/main && .venv/bin/python bench/model_run.py [--assets 1000]
    .venv/bin/python bench/model_run.py --plugins 4 --trials 2 --json
    .venv/bin/python bench/model_run.py --production   # PostgreSQL + Redis

Hub: embedded (SQLite) or, with `--production`, a new PostgreSQL database and
Redis db 9 (the pubsub layer); a project of `--assets` assets; one run over all
of them created with `POST /api/runs`, timed from the POST to the run's
`finished_at`; then every item must be done and the run succeeded. The hub
keeps up to the plugin's concurrency (8) jobs in flight per instance.

Bare: bench/bare_relay.py, the same `--assets` jobs sent with `POST /job` by as
many clients as the hub keeps jobs in flight (instances x 8), timed from the
first request to the last answer.

Both relay to `--plugins` processes of bench/plugin_bench.py (the real
imerit-ango SDK; each takes one job at a time). Trials alternate bare, hub.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from _measure import HttpConn, load_average, machine_facts, say, table
from _processes import Child, Processes, cpu_seconds, http_json, psql
from _servers import BareRelay, Hub, PluginTarget, run_driver, start_plugins
from relay import production_database

HUB_CONCURRENCY = 8  # the plugin's jobs in flight per instance (hub_setup's default)
TARGET_RATIO = 0.5


async def bare_trial(bare: BareRelay, jobs: int, in_flight: int) -> float:
    """Seconds for `jobs` jobs through the bare relay, `in_flight` at a time."""
    conns = [await HttpConn(bare.port, timeout=120).open() for _ in range(in_flight)]
    left = jobs
    failed = 0

    async def worker(conn: HttpConn) -> None:
        nonlocal left, failed
        while left > 0:
            left -= 1
            status, body = await conn.request("POST", "/job", {"config": {}})
            failed += status != 200 or "error" in body

    try:
        start = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in conns))
        seconds = time.perf_counter() - start
    finally:
        for conn in conns:
            await conn.close()
    if failed:
        raise RuntimeError(f"bare relay: {failed} of {jobs} jobs failed")
    return seconds


async def hub_trial(hub: Hub, external_ids: list[str]) -> tuple[float, float]:
    """Seconds from `POST /api/runs` over `external_ids` to its answer and to
    the run finished."""
    body = {
        "plugin_id": hub.info["plugin_pk"],
        "project_id": hub.info["project_id"],
        "external_ids": external_ids,
        "class_mapping": {"face": "face-box"},
    }
    conn = hub.connect()
    try:
        start = time.perf_counter()
        status, created = http_json(
            f"{hub.url}/api/runs", method="POST", body=body, headers=hub.auth
        )
        if status != 201:
            raise RuntimeError(f"POST /api/runs answered {status}: {created}")
        run_id = int(created["id"])
        create_s = time.perf_counter() - start
        finished = f"SELECT status FROM runs_run WHERE id = {run_id}"
        finished += " AND finished_at IS NOT NULL"
        deadline = start + 600
        while (row := conn.execute(finished).fetchone()) is None:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"run {run_id} not finished after 600 s")
            await asyncio.sleep(0.005)
        seconds = time.perf_counter() - start
        done = conn.execute(
            "SELECT count(*) FROM runs_workitem WHERE run_id = "
            f"{run_id} AND state = 'done'"
        ).fetchone()[0]
    finally:
        conn.close()
    if row[0] != "succeeded" or done != len(external_ids):
        raise RuntimeError(f"run {run_id}: {row[0]}, {done} items done")
    return create_s, seconds


def start_profile(processes: Processes, pid: int, path: str) -> Child | None:
    """py-spy on the hub (the thread holding the GIL: its CPU) until SIGINT."""
    if not path:
        return None
    py_spy = os.environ.get("PY_SPY", "/tmp/pyspy/bin/py-spy")
    return processes.start(
        "pyspy-hub",
        [py_spy, "record", "--pid", str(pid), "--rate", "200", "--gil", "--nonblocking"]
        + ["--threads", "--format", "raw", "--output", path],
    )


def summary(mode: str, plugins: int, trials: list[dict[str, float]]) -> str:
    """The `--json` last line: per trial both rates and their ratio."""
    cases = [
        {
            "plugins": plugins,
            "assets": t["assets"],
            "hub_s": round(t["hub_s"], 3),
            "bare_s": round(t["bare_s"], 3),
            "hub_assets_per_s": round(t["assets"] / t["hub_s"], 1),
            "bare_assets_per_s": round(t["assets"] / t["bare_s"], 1),
            "rate_ratio": round(t["bare_s"] / t["hub_s"], 3),
            "hub_cpu_ms_per_asset": round(t["hub_cpu_s"] / t["assets"] * 1000, 2),
            "load": t["load"],
        }
        for t in trials
    ]
    return json.dumps(
        {"mode": mode, "load": round(os.getloadavg()[0], 2), "cases": cases},
        allow_nan=False,
    )


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hub-bench-model-run-"))
    processes = Processes(tmp)
    database = ""
    trials: list[dict[str, float]] = []
    mode = "production" if args.production else "embedded"
    try:
        print(f"machine: {machine_facts()}; load {load_average()}")
        os.environ["BENCH_EXTRA_ASSETS"] = str(max(0, args.assets - 16))
        bare = BareRelay().launch(processes)
        hub = Hub(tmp / "var")
        if args.production:
            database = production_database(hub, "pubsub")
        hub.launch(processes)
        bare.wait_ready(processes)
        hub.wait_ready(processes)
        extra = [f"bulk-{n:05d}" for n in range(max(0, args.assets - 16))]
        external_ids = (hub.info["external_ids"] + extra)[: args.assets]
        targets = [
            PluginTarget(
                "hub",
                hub.url,
                hub.info["plugin_id"],
                hub.info["plugin_secret"],
                hub.live_instances,
            ),
            PluginTarget("bare", bare.url, "bare", "bare", bare.live_instances),
        ]
        say(f"{len(external_ids):,} assets; connecting {args.plugins} plugins each")
        start_plugins(processes, targets, args.plugins)
        in_flight = args.plugins * HUB_CONCURRENCY
        hub_pids = processes.pids("hub")
        profile = start_profile(processes, hub_pids[0], args.profile)
        for n in range(args.trials):
            bare_s = await bare_trial(bare, len(external_ids), in_flight)
            say(f"trial {n + 1}: bare relay {bare_s:.2f} s")
            cpu0 = cpu_seconds(hub_pids)
            create_s, hub_s = await hub_trial(hub, external_ids)
            hub_cpu = cpu_seconds(hub_pids) - cpu0
            say(
                f"trial {n + 1}: hub {hub_s:.2f} s (POST answered in {create_s:.2f}"
                f" s; {hub_cpu:.1f} s of hub CPU)"
            )
            trials.append(
                {
                    "assets": len(external_ids),
                    "hub_s": hub_s,
                    "bare_s": bare_s,
                    "hub_cpu_s": hub_cpu,
                    "load": round(os.getloadavg()[0], 2),
                }
            )
            processes.check_alive()
        if profile is not None:
            profile.proc.send_signal(signal.SIGINT)  # py-spy writes, then exits
            profile.proc.wait(timeout=60)
            say(f"py-spy stacks of the hub's trials: {args.profile}")
        rows = [
            [
                n + 1,
                t["assets"],
                t["hub_s"],
                t["assets"] / t["hub_s"],
                t["bare_s"],
                t["assets"] / t["bare_s"],
                t["bare_s"] / t["hub_s"],
                "met" if t["bare_s"] / t["hub_s"] >= TARGET_RATIO else "NOT met",
                t["hub_cpu_s"] / t["assets"] * 1000,
                t["load"],
            ]
            for n, t in enumerate(trials)
        ]
        print()
        print(f"hub mode: {mode}; {args.plugins} plugin processes on each server")
        headers = [
            "trial", "assets", "hub s", "hub assets/s", "bare s", "bare assets/s",
            "hub/bare rate", f">= {TARGET_RATIO}x", "hub CPU ms/asset", "load 1m",
        ]  # fmt: skip
        print(table(headers, rows))
    finally:
        processes.stop_all()
        if database:
            psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json and trials:
        print(summary(mode, args.plugins, trials), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=1_000)
    parser.add_argument("--plugins", type=int, default=4)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--production", action="store_true")
    parser.add_argument("--json", action="store_true", help="last line: JSON")
    parser.add_argument(
        "--profile", default="", help="py-spy the hub's trials (--gil) to this file"
    )
    args = parser.parse_args()
    args.assets = max(16, min(args.assets, 100_000))
    args.plugins = max(1, min(args.plugins, 16))
    args.trials = max(1, min(args.trials, 10))
    run_driver(main_async, args)


if __name__ == "__main__":
    sys.exit(main())
