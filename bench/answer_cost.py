"""What applying one plugin answer costs the hub: `responses.item_respond` (check
the frame's session, validate the answer, write the pre-label through
workspace/writes.py, finish the item, settle and close the run), in process,
without sockets. Prints CPU and wall milliseconds per answer and SQL statements
per answer by kind.

    .venv/bin/python bench/answer_cost.py                # embedded (SQLite WAL)
    .venv/bin/python bench/answer_cost.py --production   # PostgreSQL
    .venv/bin/python bench/answer_cost.py --runs 300 --json

The answers are single-asset Model runs, leased to one socketless instance
(jobs land in the outbox, never read), answered with one box. The round trip
through real sockets is bench/relay.py; the watcher's view is bench/watch.py.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import load_average, percentile  # noqa: E402
from _processes import django_here, in_process_main  # noqa: E402

BOX = {"x": 1, "y": 2, "width": 3, "height": 4}
ANSWER = {"objects": [{"schemaId": "face-box", "bounding-box": BOX}]}
CHANNEL = "bench!answer"


def measure(args: argparse.Namespace) -> dict[str, object]:
    """In the child process, with the database set up: the measurement."""
    django_here()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from plugins_app import protocol
    from plugins_app.plugins.models import Plugin, PluginInstance
    from plugins_app.runs.creation import RunRequest, run_create
    from plugins_app.runs.dispatch import dispatch_pending
    from plugins_app.runs.models import WorkItem
    from plugins_app.runs.responses import item_respond
    from plugins_app.workspace.models import Project

    plugin = Plugin.objects.get(type="model")
    Plugin.objects.filter(pk=plugin.pk).update(concurrency=args.runs + 10)
    project = Project.objects.get(pk=plugin.projects.values_list("pk").first()[0])
    user = get_user_model().objects.get(username="admin")
    assets = list(project.assets.values_list("external_id", flat=True))
    PluginInstance.objects.create(plugin=plugin, channel_name=CHANNEL, address="b:1")
    for n in range(args.runs):
        run_create(
            RunRequest(
                plugin=plugin,
                project=project,
                user=user,
                class_mapping={"face": "face-box"},
                config_json="{}",
                external_ids=[assets[n % len(assets)]],
                batch_ids=[],
            ),
            dispatch=False,
        )
    dispatch_pending(plugin.pk)
    sessions = list(
        WorkItem.objects.filter(state=WorkItem.State.LEASED).values_list(
            "session", flat=True
        )
    )
    assert len(sessions) == args.runs, f"{len(sessions)} leased of {args.runs}"
    # As in the ASGI process: a running loop owns the in-memory channel layer,
    # so the watchers' pings go to it and the freed-slot dispatch to run_later's
    # pool thread. Only the answering thread's CPU and statements are counted.
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    protocol.mark_asgi_process(loop)
    kinds: Counter[str] = Counter()
    # BENCH_TRACE=<file>: every statement of the answers, one per line.
    trace_path = os.environ.get("BENCH_TRACE")
    trace = open(trace_path, "w") if trace_path else None  # noqa: SIM115

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        kinds[sql.lstrip().split(None, 1)[0].upper()] += 1
        if trace is not None:
            print(sql[:400], file=trace)
        return execute(sql, params, many, context)

    # Connections opened on any thread while answering (the answering one, the
    # freed-slot dispatch's): none once each keeps its own (no churn).
    from django.db.backends.signals import connection_created

    opened = [0]

    def on_open(**kwargs: object) -> None:
        opened[0] += 1

    connection_created.connect(on_open)
    walls: list[float] = []
    outcomes: Counter[str] = Counter()
    profile = cProfile.Profile() if args.profile else None
    cpu0 = time.thread_time()
    if profile is not None:
        profile.enable()
    with connection.execute_wrapper(count):
        for session in sessions:
            t0 = time.perf_counter()
            outcomes[
                item_respond(
                    session=session,
                    payload={"session": session, "response": ANSWER},
                    channel_name=CHANNEL,
                )
            ] += 1
            walls.append(time.perf_counter() - t0)
    cpu = time.thread_time() - cpu0
    if profile is not None:
        profile.disable()
        profile.dump_stats(args.profile)
    time.sleep(0.5)  # the last freed-slot dispatches, on run_later's thread
    loop.call_soon_threadsafe(loop.stop)
    n = len(sessions)
    return {
        "mode": "production" if args.production else "embedded",
        "load": float(load_average().split()[0]),
        "answers": n,
        "outcomes": dict(outcomes),
        "cpu_ms_per_answer": round(cpu / n * 1000, 3),
        "wall_p50_ms": round(percentile([w * 1000 for w in walls], 50), 3),
        "statements_per_answer": round(sum(kinds.values()) / n, 2),
        "statements_by_kind": {k: round(v / n, 2) for k, v in kinds.most_common()},
        "connections_opened": opened[0],
    }


def describe(result: dict[str, Any]) -> str:
    return (
        f"{result['mode']}: {result['answers']} answers {result['outcomes']}, "
        f"{result['cpu_ms_per_answer']} ms CPU and {result['wall_p50_ms']} ms wall "
        f"(p50) per answer, {result['statements_per_answer']} statements "
        f"{result['statements_by_kind']}, {result['connections_opened']} "
        f"connection(s) opened, load {result['load']}"
    )


def main() -> None:
    in_process_main(
        __file__,
        __doc__ or "",
        measure,
        describe,
        runs=200,
        profile_help="cProfile the answers into this file",
    )


if __name__ == "__main__":
    main()
