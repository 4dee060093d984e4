"""What `POST /api/runs` costs the hub: the ASGI app called in process (no
socket, no server) with a real Bearer token, N single-asset Model runs, each
leased at once to one socketless instance (its job lands in the channel layer,
never read), as in bench/relay.py with one plugin and one run in flight. Prints
process CPU milliseconds per request (every thread: the loop's, the pool's),
SQL statements per request by kind, and the hops to other threads.

    .venv/bin/python bench/create_cost.py                  # embedded (SQLite WAL)
    .venv/bin/python bench/create_cost.py --production     # PostgreSQL
    .venv/bin/python bench/create_cost.py --runs 300 --json
    .venv/bin/python bench/create_cost.py --profile /tmp/create.prof  # all threads
    BENCH_TRACE=/tmp/trace.sql .venv/bin/python bench/create_cost.py --runs 3

The round trip through real sockets is bench/relay.py; the answer's side is
bench/answer_cost.py.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import load_average, percentile  # noqa: E402
from _processes import django_here, in_process_main  # noqa: E402

CHANNEL = "bench!create"


def measure(args: argparse.Namespace) -> dict[str, object]:
    """In the child process, with the database set up: the measurement."""
    django_here()
    from django.db import connection
    from django.db.backends.signals import connection_created

    from plugins_app import protocol
    from plugins_app.asgi import application
    from plugins_app.plugins.models import Plugin, PluginInstance
    from plugins_app.plugins.secrets import new_token, token_hash
    from plugins_app.workspace.models import ApiToken, Project

    plugin = Plugin.objects.get(type="model")
    Plugin.objects.filter(pk=plugin.pk).update(concurrency=args.runs + 10)
    project = Project.objects.get(pk=plugin.projects.values_list("pk").first()[0])
    assets = list(project.assets.values_list("external_id", flat=True))
    PluginInstance.objects.create(plugin=plugin, channel_name=CHANNEL, address="b:1")
    token = new_token()
    admin = project.organization.memberships.get(user__username="admin").user
    ApiToken.objects.create(user=admin, name="create", key_hash=token_hash(token))
    connection.close()

    kinds: Counter[str] = Counter()
    # BENCH_TRACE=<file>: every statement of the measured requests, one a line.
    trace_path = os.environ.get("BENCH_TRACE")
    trace = open(trace_path, "w") if trace_path else None  # noqa: SIM115

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        kinds[sql.lstrip().split(None, 1)[0].upper()] += 1
        if trace is not None and tracing:
            print(sql[:400], file=trace)
        return execute(sql, params, many, context)

    def on_open(connection: Any, **kwargs: object) -> None:
        if count not in connection.execute_wrappers:
            connection.execute_wrappers.append(count)

    connection_created.connect(on_open)
    profiles: list[cProfile.Profile] = []

    def profiled() -> None:
        if args.profile:
            profiles.append(cProfile.Profile())
            profiles[-1].enable()

    tracing = False
    threads: set[int] = set()
    original_thread_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        threads.add(id(self))
        original_thread_start(self)

    threading.Thread.start = start  # type: ignore[method-assign]
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {token}".encode()),
    ]

    async def post(n: int) -> tuple[int, bytes]:
        body = json.dumps(
            {
                "plugin_id": plugin.pk,
                "project_id": project.pk,
                "class_mapping": {"face": "face-box"},
                "external_ids": [assets[n % len(assets)]],
            }
        ).encode()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/runs",
            "raw_path": b"/api/runs",
            "query_string": b"",
            "root_path": "",
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
        }
        sent = False
        out: dict[str, Any] = {"body": b""}

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                out["status"] = message["status"]
            else:
                out["body"] += message.get("body", b"")

        await application(scope, receive, send)  # type: ignore[arg-type]
        return out["status"], out["body"]

    async def run_all() -> dict[str, object]:
        loop = asyncio.get_running_loop()
        # The server's pool (protocol.in_pool), one thread as with one in flight.
        loop.set_default_executor(ThreadPoolExecutor(1, initializer=profiled))
        protocol.mark_asgi_process(loop)
        for n in range(5):  # warm: imports, the pool thread and its connection
            status, body = await post(n)
            assert status == 201, (status, body[:300])
        nonlocal tracing
        kinds.clear()
        threads.clear()
        tracing = True
        profiled()
        statuses: Counter[int] = Counter()
        walls: list[float] = []
        cpu0 = time.process_time()
        for n in range(args.runs):
            t0 = time.perf_counter()
            status, _ = await post(n)
            walls.append(time.perf_counter() - t0)
            statuses[status] += 1
        cpu = time.process_time() - cpu0
        for p in profiles:
            p.disable()
        protocol.mark_asgi_process(None)
        n = args.runs
        return {
            "mode": "production" if args.production else "embedded",
            "load": float(load_average().split()[0]),
            "requests": n,
            "statuses": {str(k): v for k, v in statuses.items()},
            "cpu_ms_per_request": round(cpu / n * 1000, 3),
            "wall_p50_ms": round(percentile([w * 1000 for w in walls], 50), 3),
            "statements_per_request": round(sum(kinds.values()) / n, 2),
            "statements_by_kind": {k: round(v / n, 2) for k, v in kinds.most_common()},
            "threads_started_per_request": round(len(threads) / n, 2),
        }

    result = asyncio.run(run_all())
    if args.profile and profiles:
        stats = pstats.Stats(profiles[0])
        for p in profiles[1:]:
            stats.add(p)
        stats.dump_stats(args.profile)
    return result


def describe(result: dict[str, Any]) -> str:
    return (
        f"{result['mode']}: {result['requests']} POST /api/runs {result['statuses']}, "
        f"{result['cpu_ms_per_request']} ms CPU and {result['wall_p50_ms']} ms wall "
        f"(p50) per request, {result['statements_per_request']} statements "
        f"{result['statements_by_kind']}, {result['threads_started_per_request']} "
        f"threads started per request, load {result['load']}"
    )


def main() -> None:
    in_process_main(
        __file__,
        __doc__ or "",
        measure,
        describe,
        runs=300,
        profile_help="cProfile every thread into this file",
    )


if __name__ == "__main__":
    main()
