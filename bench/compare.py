"""How long a run comparison takes (issue 12 §2: 10,000 assets × 2 runs in
< 10 s): the Celery task's body (`evaluation.services.comparison_compute`)
timed in process on a scratch hub, over reviewed tasks whose history holds
what two runs wrote (4 boxes of 2 classes and 1 polygon per asset, jittered,
a few missed or extra), as `runs/run_answers.py` reads it.

    .venv/bin/python bench/compare.py                # embedded (SQLite WAL)
    .venv/bin/python bench/compare.py --production   # PostgreSQL
    .venv/bin/python bench/compare.py --quick --json # 1,000 assets
    .venv/bin/python bench/compare.py --profile /tmp/cmp.prof  # where it goes

The history is written in bulk (not through the services): what is measured
is the comparison, not the labeling.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import load_average, say  # noqa: E402
from _processes import django_here, in_scratch_hub  # noqa: E402

WIDTH, HEIGHT = 640, 480


def _box(object_id: str, schema_id: str, x: float, y: float) -> dict[str, Any]:
    return {
        "objectId": object_id,
        "schemaId": schema_id,
        "bounding-box": {"x": x, "y": y, "width": 60, "height": 40},
        "classifications": [],
    }


def _answers(rng: random.Random, n: int) -> tuple[dict, dict, dict]:
    """The reviewed answer and what two runs wrote before it (v2 tighter)."""
    truth = [
        _box(f"a{n}-{k}", ("face-box", "coin-box")[k % 2], 40 + 120 * k, 60 + 20 * k)
        for k in range(4)
    ]
    region = {
        "objectId": f"a{n}-p",
        "schemaId": "region-poly",
        "polygon": [[300, 300], [400, 300], [420, 380], [310, 400]],
        "classifications": [],
    }

    def run(spread: float, miss: float) -> dict[str, Any]:
        tools = []
        for obj in truth:
            if rng.random() < miss:
                continue
            box = obj["bounding-box"]
            tools.append(
                {
                    **_box(
                        obj["objectId"],
                        obj["schemaId"],
                        box["x"] + rng.uniform(-spread, spread),
                        box["y"] + rng.uniform(-spread, spread),
                    ),
                    "confidence": round(rng.random(), 3),
                }
            )
        if rng.random() < miss:
            tools.append(_box(f"a{n}-x", "face-box", 500, 20))
        shift = rng.uniform(-spread, spread)
        polygon = [[x + shift, y] for x, y in region["polygon"]]
        tools.append({**region, "polygon": polygon})
        return {"tools": tools, "classifications": []}

    reviewed = {"tools": [*truth, region], "classifications": []}
    return reviewed, run(25, 0.2), run(10, 0.05)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """In the child process, with the database set up: the measurement."""
    django_here()
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from plugins_app.evaluation.models import Comparison
    from plugins_app.evaluation.services import comparison_compute
    from plugins_app.plugins.models import Plugin
    from plugins_app.runs.models import Run
    from plugins_app.workspace import events
    from plugins_app.workspace.models import Asset, Project, Task, TaskEvent

    plugin = Plugin.objects.get(type="model")
    project = Project.objects.get(pk=plugin.projects.values_list("pk").first()[0])
    user = get_user_model().objects.get(username="admin")
    now = timezone.now()
    runs = [
        Run.objects.create(
            organization_id=project.organization_id,
            project=project,
            plugin=plugin,
            created_by=user,
            status=Run.Status.SUCCEEDED,
            finished_at=now,
        )
        for _ in range(2)
    ]
    rng = random.Random(12)
    t0 = time.perf_counter()
    for start in range(0, args.assets, 2000):
        count = min(2000, args.assets - start)
        assets = Asset.objects.bulk_create(
            Asset(
                project=project,
                external_id=f"cmp-{start + i:06d}",
                file="none.png",
                width=WIDTH,
                height=HEIGHT,
            )
            for i in range(count)
        )
        answers = [_answers(rng, start + i) for i in range(count)]
        tasks = Task.objects.bulk_create(
            Task(
                project=project,
                asset=asset,
                stage="Complete",
                status=Task.Status.REVIEWED,
                answer=reviewed,
            )
            for asset, (reviewed, _, _) in zip(assets, answers, strict=True)
        )
        history = []
        for task, (reviewed, first, second) in zip(tasks, answers, strict=True):
            history += [
                TaskEvent(
                    task=task,
                    name=events.ANSWER_WRITTEN,
                    data={"run": runs[0].pk, "previousAnswer": {}},
                ),
                TaskEvent(
                    task=task,
                    name=events.ANSWER_WRITTEN,
                    data={"run": runs[1].pk, "previousAnswer": first},
                ),
                TaskEvent(
                    task=task,
                    name=events.LABEL_SUBMITTED,
                    actor=user,
                    data={"answer": reviewed, "previousAnswer": second},
                ),
                TaskEvent(
                    task=task,
                    name=events.LABEL_REVIEWED,
                    actor=user,
                    data={"verdict": "accepted", "answer": reviewed},
                ),
            ]
        TaskEvent.objects.bulk_create(history, batch_size=1000)
    setup = time.perf_counter() - t0
    comparison = Comparison.objects.create(
        organization_id=project.organization_id,
        project=project,
        created_by=user,
        run_ids=[r.pk for r in runs],
    )
    profiler = None
    if args.profile:
        import cProfile

        # CPU time, not wall: the machine is shared and its load varies.
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    comparison_compute(comparison.pk)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    comparison.refresh_from_db()
    assert comparison.state == Comparison.State.DONE, comparison.error
    result = comparison.result
    assert result["compared"] == args.assets, result["compared"]
    return {
        "mode": "production" if args.production else "embedded",
        "assets": args.assets,
        "runs": 2,
        "objects_per_asset": 5,
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "setup_seconds": round(setup, 1),
        "f1": [r["overall"]["f1"] for r in result["runs"]],
        "map": [r["map"] for r in result["runs"]],
        "load": float(load_average().split()[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="1,000 assets")
    parser.add_argument("--production", action="store_true", help="PostgreSQL")
    parser.add_argument("--json", action="store_true", help="last line: JSON")
    parser.add_argument(
        "--profile", metavar="FILE", help="cProfile the comparison into FILE"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.assets = 1000
    args.assets = max(10, min(args.assets, 100_000))
    if args.child:
        print(json.dumps(measure(args)))
        return
    child = [
        "--assets",
        str(args.assets),
        *(["--production"] if args.production else []),
        *(["--profile", str(Path(args.profile).resolve())] if args.profile else []),
    ]
    result = in_scratch_hub(__file__, child, production=args.production)
    say(
        f"{result['mode']}, {result['assets']:,} assets x 2 runs: "
        f"{result['seconds']} s ({result['cpu_seconds']} s CPU; target < 10 s); "
        f"F1 {result['f1']}, box mAP {result['map']}; load {result['load']}"
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
