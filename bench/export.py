"""Export of N tasks: seconds and peak memory of the process that builds it.

    cd /work/main && .venv/bin/python bench/export.py [--sizes 1000,10000]

Sets up a scratch embedded hub database (SQLite in a temp HUB_VAR_DIR) with one
project per size, each task holding a pre-label of 3 boxes and a history of 4
events (submitted, into Review, reviewed, into Complete: read for each line's
stageHistory), and an Export run on each. Each build then runs in a fresh
process, as the Celery worker runs it: ``exports.services.snapshot_build``
(tasks read with ``.iterator(chunk_size=1000)``, their events one query per
chunk, NDJSON lines written into the zip stream on a temporary file, the file
handed to the storage). Reported per size: seconds,
peak RSS growth over the process's RSS before the build (VmHWM - VmRSS, from
/proc), and, in a second fresh process, the peak of Python allocations
(tracemalloc).

Baseline: the naive build of the same rows in a fresh process — every line in
a list, joined, and ``writestr`` into the zip in one piece — whose memory grows
with the number of tasks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _measure import machine_facts, say, table  # noqa: E402
from _processes import django_here  # noqa: E402


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def setup(sizes: list[int]) -> dict[int, int]:
    """One project and Export run per size; returns {size: run id}."""
    django_here()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    from plugins_app.demo.seed import DEMO_ONTOLOGY
    from plugins_app.plugins.models import PluginType
    from plugins_app.plugins.services import plugin_create
    from plugins_app.runs.models import Run
    from plugins_app.workspace import events
    from plugins_app.workspace.models import (
        Asset,
        Organization,
        Project,
        Task,
        TaskEvent,
    )

    org = Organization.objects.create(name="Bench", slug="bench")
    box = {"x": 10.5, "y": 20, "width": 30, "height": 40}
    answer = {
        "tools": [
            {"schemaId": "face-box", "bounding-box": box, "objectId": f"o{i}"}
            for i in range(3)
        ],
        "classifications": [],
        "relations": [],
    }
    history = [
        (events.LABEL_SUBMITTED, {"answer": answer}),
        (events.TASK_STAGE_ENTERED, {"from": "Label", "to": "Review"}),
        (events.LABEL_REVIEWED, {"verdict": "accepted", "answer": answer}),
        (events.TASK_STAGE_ENTERED, {"from": "Review", "to": "Complete"}),
    ]
    runs = {}
    for size in sizes:
        project = Project.objects.create(
            organization=org, name=f"P{size}", ontology=DEMO_ONTOLOGY
        )
        plugin = plugin_create(
            organization=org,
            name=f"Export {size}",
            type=PluginType.EXPORT,
            class_names=[],
            default_config="{}",
            timeout_seconds=600,
            projects=[project],
        ).plugin
        assets = Asset.objects.bulk_create(
            Asset(
                project=project,
                external_id=f"img-{n:06d}",
                file="demo/none.png",
                width=640,
                height=480,
            )
            for n in range(size)
        )
        tasks = Task.objects.bulk_create(
            Task(project=project, asset=a, stage="Complete", answer=answer)
            for a in assets
        )
        # Each task's history as labeling leaves it (read for stageHistory):
        # submitted, into Review, reviewed, into Complete.
        TaskEvent.objects.bulk_create(
            (
                TaskEvent(task=t, name=name, actor_label="bench", data=data)
                for t in tasks
                for name, data in history
            ),
            batch_size=2000,
        )
        run = Run.objects.create(
            organization=org,
            project=project,
            plugin=plugin,
            inputs={"stages": ["Complete"]},
        )
        runs[size] = run.pk
    return runs


def measure(run_id: int, mode: str) -> dict[str, float]:
    """In a fresh process: build one export of the run's project."""
    django_here()
    import tracemalloc

    from django.utils import timezone

    from plugins_app.exports.models import ExportSnapshot
    from plugins_app.exports.services import snapshot_build
    from plugins_app.plugins.secrets import new_token, token_hash
    from plugins_app.runs.models import Run

    run = Run.objects.select_related("project").get(pk=run_id)
    snapshot = ExportSnapshot.objects.create(
        run=run,
        token_hash=token_hash(new_token()),
        stages=["Complete"],
        base_url="http://127.0.0.1:8000",
        expires_at=timezone.now(),
    )
    import django.db

    django.db.connection.ensure_connection()
    if mode.endswith("traced"):
        tracemalloc.start()
    before = _rss_kib("VmRSS")
    start = time.perf_counter()
    if mode.startswith("naive"):
        lines = naive_build(snapshot)
    else:
        snapshot_build(snapshot.pk)
        snapshot.refresh_from_db()
        assert snapshot.state == "ready", snapshot.error
        lines = snapshot.lines
    seconds = time.perf_counter() - start
    peak_traced = tracemalloc.get_traced_memory()[1] if mode.endswith("traced") else 0
    return {
        "lines": lines,
        "seconds": seconds,
        "rss_growth_mib": (_rss_kib("VmHWM") - before) / 1024,
        "traced_peak_mib": peak_traced / 2**20,
    }


def naive_build(snapshot: object) -> int:
    """Everything in memory: the list of lines, the joined text, the zip."""
    import io
    import zipfile

    from plugins_app.exports.lines import (
        _NO_HISTORY,
        _batch_names,
        _histories,
        export_line,
        export_tasks,
        ontology_titles,
    )

    titles = ontology_titles(snapshot.run.project.ontology)  # type: ignore[attr-defined]
    rows = list(export_tasks(snapshot))
    batches = _batch_names({row["asset_id"] for row in rows})
    histories = _histories({row["pk"] for row in rows}, titles)
    base = snapshot.base_url  # type: ignore[attr-defined]
    lines = [
        json.dumps(
            export_line(
                row,
                batches.get(row["asset_id"], []),
                titles,
                base,
                histories.get(row["pk"], _NO_HISTORY),
            )
        )
        for row in rows
    ]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("export.ndjson", "".join(line + "\n" for line in lines))
    return len(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--setup", help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="stream", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup:
        print(json.dumps(setup([int(s) for s in args.setup.split(",")])))
        return
    if args.measure:
        print(json.dumps(measure(args.measure, args.mode)))
        return
    say(machine_facts())
    sizes = [int(s) for s in args.sizes.split(",")]
    var_dir = tempfile.mkdtemp(prefix="bench-export-")
    env = {**os.environ, "HUB_VAR_DIR": var_dir}
    for key in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(key, None)
    made = subprocess.run(
        [sys.executable, __file__, "--setup", args.sizes],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    runs = {int(k): v for k, v in json.loads(made.stdout.splitlines()[-1]).items()}
    say(f"set up {', '.join(f'{s:,}' for s in sizes)} tasks in {var_dir}")
    rows, results = [], {}
    for mode in ("stream", "naive"):
        for size in sizes:
            got = {}
            for variant in (mode, mode + "-traced"):
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--measure",
                        str(runs[size]),
                        "--mode",
                        variant,
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=ROOT,
                )
                got[variant] = json.loads(out.stdout.splitlines()[-1])
            plain, traced = got[mode], got[mode + "-traced"]
            results[(mode, size)] = (plain, traced)
            rows.append(
                [
                    "hub (streamed)"
                    if mode == "stream"
                    else "naive, in memory (baseline)",
                    f"{size:,}",
                    f"{plain['seconds']:.2f} s",
                    f"{size / plain['seconds']:,.0f}",
                    f"{plain['rss_growth_mib']:.1f} MiB",
                    f"{traced['traced_peak_mib']:.1f} MiB",
                ]
            )
    print(
        table(
            [
                "build",
                "tasks",
                "time",
                "tasks/s",
                "peak RSS growth",
                "peak Python heap",
            ],
            rows,
        )
    )
    small, big = sizes[0], sizes[-1]
    for mode, name in (("stream", "hub"), ("naive", "naive")):
        a, b = results[(mode, small)][1], results[(mode, big)][1]
        print(
            f"{name}: heap peak {a['traced_peak_mib']:.1f} MiB at {small:,} tasks, "
            f"{b['traced_peak_mib']:.1f} MiB at {big:,} "
            f"({b['traced_peak_mib'] / max(a['traced_peak_mib'], 1e-9):.2f}x for "
            f"{big / small:.0f}x the tasks)"
        )
    hub_big, naive_big = results[("stream", big)][1], results[("naive", big)][1]
    ratio = hub_big["traced_peak_mib"] / naive_big["traced_peak_mib"]
    print(f"at {big:,} tasks the hub's heap peak is {ratio:.2f}x the naive build's")


if __name__ == "__main__":
    main()
