"""Event triggers: events per second with two Celery workers, and the latency
from a submit to a connected QA script's verdict.

    .venv/bin/python bench/events.py [--events N] [--latency M]

Embedded hub in a temp HUB_VAR_DIR (SQLite, the filesystem Celery broker); two
real Celery workers (``--pool solo`` each) as subprocesses.

* throughput: a project with N tasks in Label and an Event-triggered plugin
  activated for ``label.submitted`` (no instance connected: its runs stay
  queued, so this is the event → run path, not a plugin). This process submits
  the N tasks one after another through ``lifecycle.task_submit`` (each its own
  transaction; on commit the trigger listener queues ``create_event_run``),
  timing each submit — the labeler's click — and the time until the workers
  have created all N runs (polled on the SQLite file).
  Baseline: N more events turned into runs by ``run_create_for_event`` called
  in this process (no broker, no worker): the floor of the database work.
* latency: a second project whose trigger runs examples/qa_event_plugin.py, a
  connected imerit-ango 1.4.x script, against the hub under uvicorn. M tasks
  are submitted one at a time with an empty answer; each is timed from the
  submit call until the plugin's issue is in the database and until the task
  is back in Label (the plugin requeues it last), polled every 2 ms.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from _measure import load_average, machine_facts, percentile, say, table
from _processes import (
    HUB_PYTHON,
    ROOT,
    SDK_PYTHON,
    Processes,
    embedded_django,
    free_port,
    http_json,
    wait_until,
)
from _servers import uvicorn_command

QA_SCRIPT = ROOT / "examples" / "qa_event_plugin.py"


def make_project(org: Any, name: str, count: int) -> tuple[list[Any], Any, str]:
    """A project of `count` tasks in Label and an event plugin triggered on it."""
    from plugins_app.demo.seed import DEMO_ONTOLOGY, QA_CONFIG
    from plugins_app.plugins.models import PluginType
    from plugins_app.plugins.services import plugin_create
    from plugins_app.plugins.triggers import plugin_set_triggers
    from plugins_app.workspace.models import Asset, Project, Task

    project = Project.objects.create(
        organization=org, name=name, ontology=DEMO_ONTOLOGY
    )
    assets = Asset.objects.bulk_create(
        Asset(
            project=project, external_id=f"a{i:05}", file="x.png", width=64, height=64
        )
        for i in range(count)
    )
    tasks = Task.objects.bulk_create(Task(project=project, asset=a) for a in assets)
    credentials = plugin_create(
        organization=org,
        name=f"QA of {name}",
        type=PluginType.EVENT,
        default_config=QA_CONFIG,
        timeout_seconds=60,
        projects=[project],
    )
    plugin_set_triggers(
        credentials.plugin, projects=[project], event_names=["label.submitted"]
    )
    return tasks, credentials.plugin, credentials.secret


def scalar(db_path: Path, sql: str, *params: Any) -> Any:
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        return conn.execute(sql, params).fetchone()[0]
    finally:
        conn.close()


def throughput(
    user: Any, tasks: list[Any], plugin: Any, db_path: Path, count: int
) -> list[list[Any]]:
    from plugins_app.runs.creation import run_create_for_event
    from plugins_app.workspace import events
    from plugins_app.workspace.lifecycle import task_submit
    from plugins_app.workspace.models import TaskEvent

    say(f"throughput: submitting {count} tasks with two Celery workers")
    clicks = []
    start = time.perf_counter()
    for task in tasks[:count]:
        t0 = time.perf_counter()
        task_submit(task, user=user, answer={"tools": []})
        clicks.append((time.perf_counter() - t0) * 1000)
    submitted = time.perf_counter() - start
    wait_until(
        lambda: (
            scalar(
                db_path, "SELECT COUNT(*) FROM runs_run WHERE plugin_id = ?", plugin.pk
            )
            >= count
        ),
        timeout=600,
        what=f"{count} runs",
    )
    total = time.perf_counter() - start
    say("baseline: the same work with no broker and no worker")
    for task in tasks[count:]:
        task_submit(task, user=user, answer={"tools": []})
    fresh = list(
        TaskEvent.objects.filter(
            name=events.LABEL_SUBMITTED, task__in=tasks[count:]
        ).values_list("pk", flat=True)
    )
    base_start = time.perf_counter()
    for event_id in fresh:
        run_create_for_event(plugin.pk, event_id)
    baseline = time.perf_counter() - base_start
    ratio = (count / total) / (len(fresh) / baseline)
    say(f"ratio: the Celery path sustains {ratio:.2f}x the in-process rate")
    return [
        [
            "submit → run, 2 Celery workers",
            count,
            f"{total:.2f} s",
            f"{count / total:,.0f}/s",
            f"submits took {submitted:.2f} s; a submit p50 "
            f"{percentile(clicks, 50):.1f} ms, p99 {percentile(clicks, 99):.1f} ms",
        ],
        [
            "run_create_for_event in process (baseline)",
            len(fresh),
            f"{baseline:.2f} s",
            f"{len(fresh) / baseline:,.0f}/s",
            f"no broker, no worker; the Celery path sustains {ratio:.2f}x this",
        ],
    ]


def latency(
    user: Any,
    tasks: list[Any],
    plugin: Any,
    secret: str,
    db_path: Path,
    processes: Processes,
    env: dict[str, str],
) -> list[list[Any]]:
    from plugins_app.plugins.models import PluginInstance
    from plugins_app.workspace.lifecycle import task_submit

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    processes.start(
        "hub",
        uvicorn_command(HUB_PYTHON, "plugins_app.asgi:application", port),
        env=env,
    )
    wait_until(
        lambda: http_json(f"{url}/login/", timeout=2)[0] == 200,
        timeout=30,
        what="the hub",
        processes=processes,
    )
    plugin_env = {
        **env,
        "HOST": url,
        "PLUGIN_ID": plugin.public_id,
        "PLUGIN_SECRET": secret,
    }
    processes.start("plugin-qa", [str(SDK_PYTHON), str(QA_SCRIPT)], env=plugin_env)
    wait_until(
        lambda: PluginInstance.objects.live().filter(plugin=plugin).exists(),
        timeout=30,
        what="the QA script to connect",
        processes=processes,
    )
    say(f"latency: {len(tasks)} submits, one at a time, to the connected QA script")
    to_issue, to_label = [], []
    for task in tasks:
        task_id = task.pk
        t0 = time.perf_counter()
        task_submit(task, user=user, answer={"tools": []})
        wait_until(
            lambda: scalar(
                db_path,
                "SELECT COUNT(*) FROM workspace_issue WHERE task_id = ?",
                task_id,  # noqa: B023 - waited for within the iteration
            ),
            timeout=60,
            what="the QA issue",
            interval=0.002,
        )
        to_issue.append((time.perf_counter() - t0) * 1000)
        wait_until(
            lambda: (
                scalar(
                    db_path,
                    "SELECT stage FROM workspace_task WHERE id = ?",
                    task_id,  # noqa: B023 - waited for within the iteration
                )
                == "Label"
            ),
            timeout=60,
            what="the task back in Label",
            interval=0.002,
        )
        to_label.append((time.perf_counter() - t0) * 1000)
    return [
        [
            "submit → issue visible (connected QA script)",
            len(tasks),
            f"p50 {percentile(to_issue, 50):.0f} ms",
            f"p99 {percentile(to_issue, 99):.0f} ms",
            "Celery worker → outbox → socket → SDK → POST /v2/issues",
        ],
        [
            "submit → task back in Label (verdict complete)",
            len(tasks),
            f"p50 {percentile(to_label, 50):.0f} ms",
            f"p99 {percentile(to_label, 99):.0f} ms",
            "after the issue: metadata, then requeueTasks",
        ],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--latency", type=int, default=50)
    args = parser.parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="bench-events-"))
    embedded_django(var_dir)
    from django.contrib.auth.models import User

    from plugins_app.workspace.models import Membership, Organization

    org = Organization.objects.create(name="Bench", slug="bench")
    user = User.objects.create_user("labeler")
    Membership.objects.create(user=user, organization=org)
    bulk_tasks, bulk_plugin, _ = make_project(org, "Throughput", 2 * args.events)
    live_tasks, live_plugin, secret = make_project(org, "Latency", args.latency)
    db_path = var_dir / "hub.sqlite3"
    processes = Processes(log_dir=var_dir)
    env = {
        **os.environ,
        "HUB_VAR_DIR": str(var_dir),
        "DJANGO_SETTINGS_MODULE": "plugins_app.settings",
    }
    worker = [str(HUB_PYTHON), "-m", "celery", "-A", "plugins_app", "worker"]
    worker += ["--pool", "solo", "--loglevel", "WARNING"]
    rows: list[list[Any]] = []
    try:
        for index in range(2):
            processes.start(f"worker{index}", [*worker, "-n", f"w{index}@%h"], env=env)
        time.sleep(6)  # both workers up (they log nothing at WARNING)
        processes.check_alive()
        rows += throughput(user, bulk_tasks, bulk_plugin, db_path, args.events)
        if args.latency:
            rows += latency(
                user, live_tasks, live_plugin, secret, db_path, processes, env
            )
        processes.check_alive()
    finally:
        processes.stop_all()
    print()
    print(machine_facts())
    print(f"load average at the end: {load_average()}")
    print(table(["what", "events", "time / p50", "rate / p99", "detail"], rows))


if __name__ == "__main__":
    main()
