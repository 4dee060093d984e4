"""Hosted plugins: submit-to-QA-verdict latency and events per second sustained
with two Celery workers, for the QA example (no requirements).

    .venv/bin/python bench/hosted_qa.py [--latency N] [--burst M]

Embedded hub in a temp HUB_VAR_DIR (SQLite, the filesystem Celery broker
polled every 0.2 s), an invoice project, examples/hosted_qa/main.py uploaded
and built as a hosted plugin triggered by ``label.submitted``, and two real
Celery workers (``--pool solo``) as subprocesses; every handler runs in its own
bubblewrap sandbox.

* latency: N submits one at a time (``lifecycle.task_submit``, a bad IBAN each),
  each timed from the submit call until the QA bot's issue is in the database
  (polled every 2 ms on the SQLite file) and until its verdict is complete (the
  accuracy in the task's metadata, written last);
* throughput: M submits in a burst, timed until all M runs have finished.

Baselines: the sandbox alone (spawn bwrap + Python, import main.py, run the
handler, its client calls) run in this process N times, and a bare
``python3 -c pass`` without a sandbox: the floor under the Celery path.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _measure import load_average, machine_facts, percentile, say, table
from _processes import ROOT, Processes, embedded_django, wait_until

QA = ROOT / "examples" / "hosted_qa" / "main.py"


def make_workspace(count: int) -> tuple[object, list[object], object]:
    from django.contrib.auth.models import User

    from plugins_app.hosted.build import build
    from plugins_app.hosted.invoices import INVOICE_ONTOLOGY
    from plugins_app.hosted.models import HostedCode
    from plugins_app.hosted.services import code_upload
    from plugins_app.plugins.models import PluginType
    from plugins_app.plugins.services import plugin_create
    from plugins_app.plugins.triggers import plugin_set_triggers
    from plugins_app.workspace.models import (
        Asset,
        Membership,
        Organization,
        Project,
        Task,
    )

    org = Organization.objects.create(name="Bench", slug="bench")
    user = User.objects.create_user("labeler")
    Membership.objects.create(user=user, organization=org)
    project = Project.objects.create(
        organization=org, name="Invoices", ontology=INVOICE_ONTOLOGY
    )
    assets = Asset.objects.bulk_create(
        Asset(
            project=project,
            external_id=f"inv{i:05}",
            file="x.png",
            width=640,
            height=480,
        )
        for i in range(count)
    )
    tasks = Task.objects.bulk_create(Task(project=project, asset=a) for a in assets)
    plugin = plugin_create(
        organization=org,
        name="QA bot",
        type=PluginType.EVENT,
        projects=[project],
        timeout_seconds=30,
    ).plugin
    code = code_upload(
        plugin, filename="main.py", data=QA.read_bytes(), memory_limit_mb=256, user=None
    )
    build(code.pk)
    code.refresh_from_db()
    assert code.status == HostedCode.Status.ACTIVE, code.build_log
    say(f"built the QA plugin: {code.build_log.strip().splitlines()[-1]}")
    plugin_set_triggers(plugin, projects=[project], event_names=["label.submitted"])
    return user, tasks, plugin


def query(db_path: Path, sql: str, *params: object) -> object:
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        return conn.execute(sql, params).fetchone()[0]
    finally:
        conn.close()


def wait_row(db_path: Path, sql: str, *params: object, timeout: float = 30) -> None:
    deadline = time.perf_counter() + timeout
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        while not conn.execute(sql, params).fetchone()[0]:
            if time.perf_counter() > deadline:
                raise TimeoutError(sql)
            time.sleep(0.002)
    finally:
        conn.close()


def sandbox_floor(
    tasks: list[object], plugin: object, user: object, n: int
) -> list[float]:
    """The handler run in this process (no broker, no worker): bwrap + Python
    + main.py + the client calls, through the same runner code."""
    from plugins_app.hosted.invoices import invoice_answer
    from plugins_app.hosted.runner import run_item
    from plugins_app.plugins.models import Plugin
    from plugins_app.plugins.triggers import plugin_set_triggers
    from plugins_app.runs.creation import run_create_for_event
    from plugins_app.runs.dispatch.leases import lease
    from plugins_app.runs.models import WorkItem
    from plugins_app.workspace.lifecycle import task_submit

    plugin_set_triggers(plugin, projects=[], event_names=[])  # no Celery here
    times = []
    for task in tasks:
        task = task_submit(task, user=user, answer=invoice_answer("DE89", "EUR"))
        event = task.events.filter(name="label.submitted").last()
        Plugin.objects.filter(pk=plugin.pk).update(delivery="socket")  # no dispatch
        run = run_create_for_event(plugin.pk, event.pk)
        Plugin.objects.filter(pk=plugin.pk).update(delivery="hosted")
        item = WorkItem.objects.select_related("run__plugin", "asset").get(run=run)
        lease([item], seconds=60)
        t0 = time.perf_counter()
        assert run_item(item.pk) == "done"
        times.append((time.perf_counter() - t0) * 1000)
        if len(times) >= n:
            break
    return times


def bare_python(n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(["/usr/bin/python3", "-I", "-c", "pass"], check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency", type=int, default=100)
    parser.add_argument("--burst", type=int, default=200)
    args = parser.parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="bench-hosted-"))
    hosted_dir = Path(tempfile.mkdtemp(prefix="bench-hosted-code-"))
    hosted_dir.chmod(0o755)
    embedded_django(var_dir, HUB_HOSTED_DIR=str(hosted_dir))
    from plugins_app.hosted.invoices import invoice_answer
    from plugins_app.workspace.lifecycle import task_submit

    total_tasks = args.latency + args.burst + args.latency
    user, tasks, plugin = make_workspace(total_tasks)
    db_path = var_dir / "hub.sqlite3"
    processes = Processes(log_dir=var_dir)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "plugins_app.settings"}
    worker = [sys.executable, "-m", "celery", "-A", "plugins_app", "worker"]
    worker += ["--pool", "solo", "--loglevel", "WARNING"]
    latency_tasks = tasks[: args.latency]
    burst_tasks = tasks[args.latency : args.latency + args.burst]
    floor_tasks = tasks[args.latency + args.burst :]
    try:
        for index in range(2):
            processes.start(f"worker{index}", [*worker, "-n", f"w{index}@%h"], env=env)
        time.sleep(6)
        processes.check_alive()
        say(f"latency: {args.latency} submits one at a time")
        to_issue, to_verdict, clicks = [], [], []
        for task in latency_tasks:
            t0 = time.perf_counter()
            task_submit(task, user=user, answer=invoice_answer("DE89", "EUR"))
            clicks.append((time.perf_counter() - t0) * 1000)
            wait_row(
                db_path, "SELECT COUNT(*) FROM workspace_issue WHERE task_id=?", task.pk
            )
            to_issue.append((time.perf_counter() - t0) * 1000)
            wait_row(
                db_path,
                "SELECT COUNT(*) FROM workspace_task WHERE id=? AND metadata LIKE ?",
                task.pk,
                "%accuracy%",
            )
            to_verdict.append((time.perf_counter() - t0) * 1000)
            # Not timed: the run closes just after; the next submit waits for it.
            wait_row(
                db_path,
                "SELECT COUNT(*) FROM runs_run WHERE task_id=? AND finished_at "
                "IS NOT NULL",
                task.pk,
            )
        say(f"throughput: {args.burst} submits in a burst")
        before = query(
            db_path, "SELECT COUNT(*) FROM runs_run WHERE finished_at IS NOT NULL"
        )
        start = time.perf_counter()
        for index, task in enumerate(burst_tasks):
            good = index % 2 == 0
            answer = invoice_answer("FR76" if good else "DE89", "EUR")
            task_submit(task, user=user, answer=answer)
        submitted = time.perf_counter() - start
        wait_until(
            lambda: (
                query(
                    db_path,
                    "SELECT COUNT(*) FROM runs_run WHERE finished_at IS NOT NULL",
                )
                >= before + args.burst
            ),
            timeout=900,
            what=f"{args.burst} runs",
            interval=0.05,
        )
        burst_seconds = time.perf_counter() - start
        failed = query(
            db_path, "SELECT COUNT(*) FROM runs_run WHERE status != 'succeeded'"
        )
        processes.check_alive()
    finally:
        processes.stop_all()
    say("baselines: the sandbox alone in this process; bare python3")
    floor = sandbox_floor(floor_tasks, plugin, user, args.latency)
    bare = bare_python(args.latency)
    print()
    print(machine_facts(), f"load average {load_average()}")

    def stats(values: list[float]) -> str:
        return (
            f"p50 {percentile(values, 50):.0f} ms, p99 {percentile(values, 99):.0f} ms"
        )

    print(
        table(
            ["what", "n", "p50 ms", "p99 ms", "detail"],
            [
                [
                    "submit → issue visible (2 workers)",
                    len(to_issue),
                    f"{percentile(to_issue, 50):.0f}",
                    f"{percentile(to_issue, 99):.0f}",
                    "the QA bot's first issue in the database",
                ],
                [
                    "submit → verdict complete",
                    len(to_verdict),
                    f"{percentile(to_verdict, 50):.0f}",
                    f"{percentile(to_verdict, 99):.0f}",
                    "issues, send back and accuracy all written",
                ],
                [
                    "the submit call itself",
                    len(clicks),
                    f"{percentile(clicks, 50):.1f}",
                    f"{percentile(clicks, 99):.1f}",
                    "the labeler's click",
                ],
                [
                    "sandboxed handler in process (floor)",
                    len(floor),
                    f"{percentile(floor, 50):.0f}",
                    f"{percentile(floor, 99):.0f}",
                    "bwrap + python + main.py + 4 client calls, no Celery",
                ],
                [
                    "bare python3 -I -c pass",
                    len(bare),
                    f"{percentile(bare, 50):.0f}",
                    f"{percentile(bare, 99):.0f}",
                    "no sandbox",
                ],
            ],
        )
    )
    rate = args.burst / burst_seconds
    print(
        f"\nthroughput: {args.burst} events in {burst_seconds:.2f} s = {rate:.1f} "
        f"events/s sustained with 2 workers (submits took {submitted:.2f} s; "
        f"{failed} run(s) not succeeded)"
    )
    floor_rate = 1000 / percentile(floor, 50)
    over = percentile(to_issue, 50) / percentile(floor, 50)
    print(
        f"ratio: p50 latency is {over:.1f}× "
        f"the in-process sandbox floor; 2 workers sustain {rate / floor_rate:.2f}× "
        "one in-process sandbox loop"
    )
    print(
        json.dumps(
            {
                "to_issue": [percentile(to_issue, 50), percentile(to_issue, 99)],
                "rate": rate,
            }
        )
    )


if __name__ == "__main__":
    main()
