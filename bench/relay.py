"""Run round-trip benchmark: the hub against a bare python-socketio relay.

    cd /work/main && .venv/bin/python bench/relay.py [--quick] [--duration S]
    .venv/bin/python bench/relay.py --production pubsub   # or core
    .venv/bin/python bench/relay.py --quick --json         # last line: one JSON object

Hub side: embedded mode (SQLite in a temp HUB_VAR_DIR, in-memory channel layer),
uvicorn as a subprocess; with `--production LAYER`, production mode instead (a
new PostgreSQL database, dropped at the end; Redis db 9, flushed; that channel
layer). A run is created with `POST /api/runs` (Bearer token), exactly as a
script would; it is "finished" when its row has `finished_at`, read from the
hub's database by this process every 1 ms (the hub is not asked, so watching
costs it no CPU; resolution ~1 ms). One extra row observes completion
the way an API user would, with `GET /api/runs/<id>` every 2 ms.

Bare side: bench/bare_relay.py (python-socketio AsyncServer, ASGI, under uvicorn
from .venv-sdk14); `POST /job` emits the job to the least loaded plugin and
answers when the plugin's `response` arrives. No persistence.

Both relay to the same plugin: bench/plugin_bench.py, a real imerit-ango 1.4.10
Model plugin whose callback returns one box. Load: closed loop, 1 run at a time
or 8 in flight, with 1 and with 4 plugin processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis
from _measure import (
    HttpConn,
    RunWatcher,
    load_average,
    say,
)
from _processes import PG_URL, Processes, cpu_seconds, psql
from _servers import (
    BareRelay,
    Hub,
    PluginTarget,
    add_server_arguments,
    run_driver,
    start_plugins,
)
from relay_results import Result, Sample, report, summary_line

FINISHED = {"succeeded", "failed", "timed_out", "cancelled"}
RUN_TIMEOUT_SECONDS = 30.0
API_POLL_SECONDS = 0.002
PRODUCTION_REDIS_URL = "redis://127.0.0.1:6379/9"


OneRun = Callable[[HttpConn, int], Awaitable[Sample]]


async def closed_loop(
    port: int,
    one_run: OneRun,
    *,
    workers: int,
    warmup: float,
    duration: float,
    cpu: Callable[[], tuple[float, float]],
) -> tuple[list[Sample], float, tuple[float, float]]:
    """`workers` clients, each with its own keep-alive connection, each starting
    its next run as soon as the previous one is seen finished."""
    conns = [await HttpConn(port).open() for _ in range(workers)]
    try:
        counter = iter(range(10_000_000))
        warm_until = time.time() + warmup

        async def warm(conn: HttpConn) -> None:
            for _ in range(200):
                await one_run(conn, next(counter))
                if time.time() > warm_until:
                    break

        await asyncio.gather(*(warm(c) for c in conns))
        samples: list[Sample] = []
        cpu_before = cpu()
        start = time.time()
        deadline = start + duration
        max_runs = int(duration * 20_000) + 100

        async def worker(conn: HttpConn) -> None:
            while time.time() < deadline and len(samples) < max_runs:
                samples.append(await one_run(conn, next(counter)))

        await asyncio.gather(*(worker(c) for c in conns))
        cpu_after = cpu()
        elapsed = max((s.done for s in samples), default=start) - start
        used = (cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1])
        return samples, elapsed, used
    finally:
        for conn in conns:
            await conn.close()


# --- one run, each way -------------------------------------------------------
def bare_run() -> OneRun:
    async def one(conn: HttpConn, k: int) -> Sample:
        t0 = time.time()
        status, body = await conn.request("POST", "/job", {"config": {}})
        done = time.time()
        ok = status == 200 and isinstance(body, dict) and "error" not in body
        return Sample(t0=t0, create=float("nan"), done=done, ok=ok)

    return one


def hub_run(hub: Hub, watcher: RunWatcher | None) -> OneRun:
    external_ids = hub.info["external_ids"]

    async def one(conn: HttpConn, k: int) -> Sample:
        body = {
            "plugin_id": hub.info["plugin_pk"],
            "project_id": hub.info["project_id"],
            "external_ids": [external_ids[k % len(external_ids)]],
            "class_mapping": {"face": "face-box"},
        }
        t0 = time.time()
        status, created = await conn.request("POST", "/api/runs", body, hub.auth)
        t1 = time.time()
        if status != 201:
            raise RuntimeError(f"POST /api/runs answered {status}: {created}")
        run_id = int(created["id"])
        if watcher is not None:
            try:
                _, run_status = await asyncio.wait_for(
                    watcher.finished(run_id), RUN_TIMEOUT_SECONDS
                )
            except TimeoutError:
                watcher.waiting.pop(run_id, None)
                run_status = "not finished"
            done = time.time()
        else:
            run_status, done = await poll_api(conn, run_id)
        return Sample(t0, t1 - t0, done, run_id, run_status == "succeeded")

    async def poll_api(conn: HttpConn, run_id: int) -> tuple[str, float]:
        deadline = time.time() + RUN_TIMEOUT_SECONDS
        while time.time() < deadline:
            status, run = await conn.request(
                "GET", f"/api/runs/{run_id}", None, hub.auth
            )
            if status == 200 and run["status"] in FINISHED:
                return run["status"], time.time()
            await asyncio.sleep(API_POLL_SECONDS)
        return "timeout", time.time()

    return one


# --- the whole benchmark ------------------------------------------------------
def cpu_meter(processes: Processes, server: str) -> Callable[[], tuple[float, float]]:
    def read() -> tuple[float, float]:
        return (
            cpu_seconds(processes.pids(server)),
            cpu_seconds(processes.pids(f"plugin-{server}-")),
        )

    return read


async def measure(
    hub: Hub,
    bare: BareRelay,
    processes: Processes,
    plugins: int,
    in_flight: int,
    args: argparse.Namespace,
) -> list[Result]:
    results = []
    for server in ("bare", "hub"):
        say(f"  {server}: {plugins} plugin(s), {in_flight} in flight …")
        watcher = RunWatcher(hub.connect()).start() if server == "hub" else None
        try:
            samples, elapsed, (server_cpu, plugin_cpu) = await closed_loop(
                bare.port if server == "bare" else hub.port,
                bare_run() if server == "bare" else hub_run(hub, watcher),
                workers=in_flight,
                warmup=args.warmup,
                duration=args.duration,
                cpu=cpu_meter(processes, server),
            )
        finally:
            if watcher is not None:
                await watcher.stop()
        results.append(
            Result(
                server,
                plugins,
                in_flight,
                samples,
                elapsed,
                server_cpu=server_cpu,
                plugin_cpu=plugin_cpu,
                load=os.getloadavg()[0],
            )
        )
    return results


async def measure_api_poll(
    hub: Hub, processes: Processes, args: argparse.Namespace, plugins: int
) -> Result:
    say("  hub, completion seen via GET /api/runs/<id> every 2 ms …")
    samples, elapsed, (server_cpu, plugin_cpu) = await closed_loop(
        hub.port,
        hub_run(hub, None),
        workers=1,
        warmup=args.warmup,
        duration=args.duration / 2,
        cpu=cpu_meter(processes, "hub"),
    )
    return Result(
        "hub (API poll)",
        plugins,
        1,
        samples,
        elapsed,
        note="api-poll",
        server_cpu=server_cpu,
        plugin_cpu=plugin_cpu,
        load=os.getloadavg()[0],
    )


def production_database(hub: Hub, channel_layer: str) -> str:
    """Put `hub` in production mode on a new PostgreSQL database (its name is
    returned, to drop) and Redis db 9, flushed, with `channel_layer`."""
    name = f"relay_{uuid.uuid4().hex[:10]}"
    psql(f"CREATE DATABASE {name}")
    redis.Redis.from_url(PRODUCTION_REDIS_URL).flushdb()
    hub.database_url = f"{PG_URL}/{name}"
    hub.redis_url = PRODUCTION_REDIS_URL
    hub.channel_layer = channel_layer
    return name


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hub-bench-relay-"))
    processes = Processes(tmp)
    database = ""
    results: list[Result] = []
    try:
        print(f"load average at the start (1/5/15 min): {load_average()}")
        say(f"starting the hub (HUB_VAR_DIR={tmp / 'var'}) and the bare relay …")
        bare = BareRelay(stack=args.bare_stack).launch(processes)
        hub = Hub(tmp / "var", app=args.hub_app)
        if args.production:
            database = production_database(hub, args.production)
        hub.launch(processes)
        bare.wait_ready(processes)
        hub.wait_ready(processes)
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
        for plugins in (1, 4):
            say(f"connecting {plugins} plugin process(es) to each server …")
            start_plugins(processes, targets, plugins)
            for in_flight in (1, 8):
                results += await measure(hub, bare, processes, plugins, in_flight, args)
                processes.check_alive()
            if plugins == 1 and not args.no_api_poll:
                results.append(await measure_api_poll(hub, processes, args, plugins))
        report(results, hub, args)
    finally:
        processes.stop_all()
        if database:
            psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        if args.keep:
            print(f"logs and database kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        # Last, after everything else printed: a script reads the last line.
        mode = "production" if args.production else "embedded"
        print(summary_line(mode, results), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="~40 s smoke run")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object with the hub/bare ratios per case as the last line",
    )
    parser.add_argument("--duration", type=float, help="seconds per measured row")
    parser.add_argument("--warmup", type=float, help="warm-up seconds per row")
    parser.add_argument("--no-api-poll", action="store_true")
    parser.add_argument(
        "--production",
        choices=["pubsub", "core"],
        help="hub in production mode (a new PostgreSQL database, Redis db 9) on"
        " this channel layer; default: embedded mode",
    )
    add_server_arguments(parser)
    args = parser.parse_args()
    if args.duration is None:
        args.duration = 0.7 if args.quick else 10.0
    if args.warmup is None:
        args.warmup = 0.3 if args.quick else 2.0
    args.duration = max(0.2, min(args.duration, 120.0))
    args.warmup = max(0.0, min(args.warmup, 60.0))
    run_driver(main_async, args)


if __name__ == "__main__":
    sys.exit(main())
