"""Tasks through a workflow Plugin stage, end to end with the real SDK.

    cd /work/main && .venv/bin/python bench/workflow_stage.py [--concurrency 1 4]

The hub runs embedded (SQLite in a temp HUB_VAR_DIR, uvicorn and a Celery
worker as subprocesses) with a project of 16 tasks and a Plugin stage before
Review. A real imerit-ango 1.4.x Model plugin (tests/plugin_scripts/
workflow_model.py, answering at once) runs with ``ModelPlugin(concurrency=C)``
and declares C with ``?concurrency=C`` in HOST. Every task is moved into the
stage at once (``task.stage_entered`` → Celery → one run per task → the plugin
→ ``POST /v2/annotate`` → Review); measured until all are in Review.

Baseline: the same 16 assets as one ordinary Model run from ``POST /api/runs``
on the same plugin process (jobs answered over the socket, no stage, no Celery
hop, up to the plugin's 8 jobs at once): the hub's own Model-run path.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _measure import machine_facts, say, table
from _processes import HUB_PYTHON, ROOT, SDK_PYTHON, Processes, http_json, wait_until
from _servers import Hub

STAGE = "Auto-label"
SCRIPT = ROOT / "tests" / "plugin_scripts" / "workflow_model.py"
DJANGO = (
    "import os, sys, django; sys.path.insert(0, {root!r}); "
    "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'plugins_app.settings'); "
    "django.setup()\n"
)
ADD_STAGE = """
from plugins_app.workspace.models import Project
from plugins_app.plugins import stages
stages.workflow_plugin_stage_add(Project.objects.get(pk={project}), name={stage!r},
    plugin_id={plugin}, preset_id=None, overwrite=True)
"""
ENTER = """
from plugins_app.workspace.models import Task
from plugins_app.workspace import lifecycle
for task in Task.objects.filter(project_id={project}).select_related('project'):
    lifecycle.task_move(task, to_stage={stage!r})
"""


def django_run(hub: Hub, code: str) -> None:
    script = DJANGO.format(root=str(ROOT)) + code
    done = subprocess.run(
        [str(HUB_PYTHON), "-c", script],
        env=hub.env(),
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode()[-3000:])


def one_setting(concurrency: int) -> tuple[float, float, int]:
    """Seconds for all tasks through the stage, for the baseline run, tasks."""
    var_dir = Path(tempfile.mkdtemp(prefix="bench-workflow-"))
    processes = Processes(var_dir)
    try:
        hub = Hub(var_dir).start(processes)
        info = hub.info
        processes.start(
            "celery",
            [str(HUB_PYTHON), "-m", "celery", "-A", "plugins_app", "worker",
             "--pool", "solo", "--loglevel", "WARNING"],
            env=hub.env(),
        )  # fmt: skip
        env = {
            "PATH": "/usr/bin:/bin",
            "HOST": f"{hub.url}/?concurrency={concurrency}",
            "PLUGIN_ID": info["plugin_id"],
            "PLUGIN_SECRET": info["plugin_secret"],
            "CONCURRENCY": str(concurrency),
            "PYTHONUNBUFFERED": "1",
        }
        processes.start("plugin", [str(SDK_PYTHON), str(SCRIPT)], env)
        wait_until(
            lambda: hub.live_instances() >= 1,
            timeout=60,
            what="the plugin to connect",
            processes=processes,
        )
        project, plugin = info["project_id"], info["plugin_pk"]
        conn = sqlite3.connect(hub.db_path, timeout=30)
        t0 = time.perf_counter()
        status, body = http_json(
            f"{hub.url}/api/runs",
            method="POST",
            body={
                "plugin_id": plugin,
                "project_id": project,
                "class_mapping": {"face": "face-box"},
                "external_ids": info["external_ids"],
            },
            headers=hub.auth,
            timeout=60,
        )
        assert status in (200, 201), (status, body)
        wait_until(
            lambda: conn.execute(
                "SELECT 1 FROM runs_run WHERE id = ? AND status = 'succeeded'",
                (body["id"],),
            ).fetchone(),
            timeout=120,
            what="the baseline run",
            processes=processes,
        )
        baseline = time.perf_counter() - t0
        django_run(hub, ADD_STAGE.format(project=project, stage=STAGE, plugin=plugin))
        tasks = conn.execute(
            "SELECT COUNT(*) FROM workspace_task WHERE project_id = ?", (project,)
        ).fetchone()[0]
        t0 = time.perf_counter()
        django_run(hub, ENTER.format(project=project, stage=STAGE))
        wait_until(
            lambda: (
                conn.execute(
                    "SELECT COUNT(*) FROM workspace_task WHERE project_id = ?"
                    " AND stage = 'Review'",
                    (project,),
                ).fetchone()[0]
                == tasks
            ),
            timeout=60,
            what="every task to reach Review",
            interval=0.01,
            processes=processes,
        )
        seconds = time.perf_counter() - t0
        bad = conn.execute(
            "SELECT COUNT(*) FROM runs_run WHERE trigger = 'workflow'"
            " AND status != 'succeeded'"
        ).fetchone()[0]
        busy = conn.execute(
            "SELECT COUNT(*) FROM runs_runlogline WHERE message LIKE"
            " 'The instance''s workflow slots were all busy%'"
        ).fetchone()[0]
        conn.close()
        if bad:
            raise RuntimeError(f"{bad} workflow run(s) did not succeed")
        say(f"concurrency {concurrency}: {busy} busy refusal(s) requeued")
        return seconds, baseline, tasks
    except Exception:
        for child in processes.children:
            say(f"--- {child.name}:\n{child.tail()}")
        raise
    finally:
        processes.stop_all()
        shutil.rmtree(var_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    say(machine_facts())
    rows = []
    for concurrency in args.concurrency:
        seconds, baseline, tasks = one_setting(concurrency)
        rows.append(
            [
                f"{tasks} tasks, ModelPlugin(concurrency={concurrency})",
                f"{seconds:.2f} s",
                f"{tasks / seconds:.1f}",
                f"{baseline:.2f} s",
                f"{seconds / baseline:.1f}x",
            ]
        )
    print(
        table(
            ["workflow stage", "time", "tasks/s", "baseline Model run", "ratio"],
            rows,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
