"""Event triggers: events per second sustained with two Celery workers.

    .venv/bin/python bench/events.py [--events N]

Embedded hub in a temp HUB_VAR_DIR (SQLite, the filesystem Celery broker), a
project with N tasks in Label and one Event-triggered plugin activated on it for
``label.submitted``. Two real Celery workers (``--pool solo`` each) run as
subprocesses. This process submits the N tasks one after another through
``lifecycle.task_submit`` (each its own transaction; on commit the trigger
listener queues ``create_event_run`` on the broker), timing each submit — the
labeler's click — and the time until the workers have created all N runs
(polled on the SQLite file). No plugin is connected: the runs stay queued, so
this measures the event → run path, not a plugin.

Baseline: N more events turned into runs by calling ``run_create_for_event``
directly in this process (no broker, no worker): the floor of the database
work per event.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from _support import ROOT, Processes, machine_facts, percentile, say, table, wait_until


def setup_django(var_dir: Path) -> None:
    os.environ["HUB_VAR_DIR"] = str(var_dir)
    for key in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(key, None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "plugins_app.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def make_workspace(count: int) -> tuple[object, list[object], object]:
    from django.contrib.auth.models import User

    from plugins_app.plugins.models import PluginType
    from plugins_app.plugins.services import plugin_create
    from plugins_app.plugins.triggers import plugin_set_triggers
    from plugins_app.workspace.demo import DEMO_ONTOLOGY
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
        organization=org, name="Events", ontology=DEMO_ONTOLOGY
    )
    assets = Asset.objects.bulk_create(
        Asset(
            project=project, external_id=f"a{i:05}", file="x.png", width=64, height=64
        )
        for i in range(2 * count)
    )
    tasks = Task.objects.bulk_create(Task(project=project, asset=a) for a in assets)
    plugin = plugin_create(
        organization=org, name="QA", type=PluginType.EVENT, projects=[project]
    ).plugin
    plugin_set_triggers(plugin, projects=[project], event_names=["label.submitted"])
    return user, tasks, plugin


def run_count(db_path: Path) -> int:
    conn = sqlite3.connect(db_path, timeout=30)
    try:
        return conn.execute("SELECT COUNT(*) FROM runs_run").fetchone()[0]
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=500)
    args = parser.parse_args()
    count = args.events
    var_dir = Path(tempfile.mkdtemp(prefix="bench-events-"))
    setup_django(var_dir)
    from plugins_app.runs.services import run_create_for_event
    from plugins_app.workspace import events
    from plugins_app.workspace.lifecycle import task_submit
    from plugins_app.workspace.models import TaskEvent

    user, tasks, plugin = make_workspace(count)
    db_path = var_dir / "hub.sqlite3"
    processes = Processes(log_dir=var_dir)
    env = {
        **os.environ,
        "HUB_VAR_DIR": str(var_dir),
        "DJANGO_SETTINGS_MODULE": "plugins_app.settings",
    }
    worker = [sys.executable, "-m", "celery", "-A", "plugins_app", "worker"]
    worker += ["--pool", "solo", "--loglevel", "WARNING"]
    try:
        for index in range(2):
            processes.start(f"worker{index}", [*worker, "-n", f"w{index}@%h"], env=env)
        time.sleep(6)  # both workers up (they log nothing at WARNING)
        processes.check_alive()
        say(f"submitting {count} tasks with two Celery workers")
        clicks = []
        start = time.perf_counter()
        for task in tasks[:count]:
            t0 = time.perf_counter()
            task_submit(task, user=user, answer={"tools": []})
            clicks.append((time.perf_counter() - t0) * 1000)
        submitted = time.perf_counter() - start
        wait_until(
            lambda: run_count(db_path) >= count,
            timeout=600,
            what=f"{count} runs",
            interval=0.05,
        )
        total = time.perf_counter() - start
        processes.check_alive()
        say("baseline: the same work with no broker and no worker")
        for task in tasks[count:]:
            task_submit(task, user=user, answer={"tools": []})
        fresh = TaskEvent.objects.filter(
            name=events.LABEL_SUBMITTED, task__in=tasks[count:]
        ).values_list("pk", flat=True)
        base_start = time.perf_counter()
        for event_id in fresh:
            run_create_for_event(plugin.pk, event_id)
        baseline = time.perf_counter() - base_start
    finally:
        processes.stop_all()
    print()
    print(machine_facts())
    print(
        table(
            ["what", "events", "time", "events/s", "detail"],
            [
                [
                    "submit → run, 2 Celery workers",
                    count,
                    f"{total:.2f} s",
                    f"{count / total:,.0f}",
                    f"submits took {submitted:.2f} s; a submit p50 "
                    f"{percentile(clicks, 50):.1f} ms, "
                    f"p99 {percentile(clicks, 99):.1f} ms",
                ],
                [
                    "run_create_for_event in process (baseline)",
                    len(fresh),
                    f"{baseline:.2f} s",
                    f"{len(fresh) / baseline:,.0f}",
                    "no broker, no worker",
                ],
            ],
        )
    )
    ratio = (count / total) / (len(fresh) / baseline)
    print(
        f"\nratio: the Celery path sustains {ratio:.2f}× the in-process rate "
        "(1.0 = no overhead)"
    )


if __name__ == "__main__":
    main()
