"""Comparisons of finished Model / Batch Model runs against the reviewed labels:
checked and queued here, computed by the Celery task (tasks.py) through
`comparison_compute`, figures from metrics.py.

The reference of a task is the answer of its last accepted review (the
`label.reviewed` event records the answer it accepted). What each run wrote
there is read from the history (runs/run_answers.py), so a run's answer is
known even after people corrected it. Runs are compared on the reviewed tasks
that every one of them wrote: the same assets for all.
"""

from __future__ import annotations

import gc
import heapq
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from plugins_app.evaluation import matching, metrics
from plugins_app.evaluation.models import Comparison
from plugins_app.evaluation.written import answers_written
from plugins_app.plugins.models import PluginType
from plugins_app.runs.models import Run
from plugins_app.web.access import visible_runs
from plugins_app.workspace import events
from plugins_app.workspace.models import Project, Task, TaskEvent

MAX_RUNS = 6
COMPARED_KINDS = (PluginType.MODEL, PluginType.BATCH_MODEL)
# Tasks read per query (history of runs, reviews, sizes), and so per progress step.
CHUNK = 1000
# The per-asset list keeps the assets that disagree most; the counts cover all.
MAX_ASSETS_LISTED = 500


class ComparisonError(ValueError):
    """Input the user can fix: shown as a 400 with this text."""


class ComparisonNotFound(LookupError):
    """A run the user cannot see (another organization's, or none): a 404."""


def comparison_create(
    *, user: Any, run_ids: Any, iou_threshold: Any = 0.5, project_id: int | None = None
) -> Comparison:
    """Check the choice and queue the computation (after commit). With
    `project_id` (the project page's form) the runs must be of that project."""
    ids = _run_ids(run_ids)
    threshold = _threshold(iou_threshold)
    found = visible_runs(user).select_related("plugin").in_bulk(ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise ComparisonNotFound(f"No such run: #{missing[0]}.")
    runs = [found[i] for i in ids]
    if len({run.project_id for run in runs}) > 1:
        raise ComparisonError(
            "The runs belong to different projects; pick runs of one project."
        )
    if project_id is not None and runs[0].project_id != project_id:
        raise ComparisonError("These runs are not of this project.")
    for run in runs:
        if run.plugin.type not in COMPARED_KINDS:
            raise ComparisonError(
                f"Run #{run.pk} is a {run.plugin.get_type_display()} run; only "
                "Model and Batch Model runs write labels to compare."
            )
        if run.status not in Run.FINISHED:
            raise ComparisonError(
                f"Run #{run.pk} is still {run.status}; wait until it finishes."
            )
        if run.dry_run:
            raise ComparisonError(
                f"Run #{run.pk} is a preview (dry run): it wrote nothing."
            )
    comparison = Comparison.objects.create(
        organization_id=runs[0].organization_id,
        project_id=runs[0].project_id,
        created_by=user,
        run_ids=ids,
        iou_threshold=threshold,
    )
    comparison_queue(comparison.pk)
    return comparison


def _run_ids(value: Any) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
    ):
        raise ComparisonError("runs: give a list of run ids.")
    ids = list(dict.fromkeys(value))
    if not 2 <= len(ids) <= MAX_RUNS:
        raise ComparisonError(f"runs: pick between 2 and {MAX_RUNS} different runs.")
    return ids


def _threshold(value: Any) -> float:
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise ComparisonError(
            "iou_threshold: give a number between 0.05 and 0.95."
        ) from None
    if not (math.isfinite(threshold) and 0.05 <= threshold <= 0.95):
        raise ComparisonError("iou_threshold: give a number between 0.05 and 0.95.")
    return threshold


def reviewed_answers(
    project: Project, task_ids: list[int] | None = None
) -> dict[int, Any]:
    """Task id → the answer of its last accepted review (of these tasks only,
    when given)."""
    reviews = TaskEvent.objects.filter(
        task__project=project, name=events.LABEL_REVIEWED, data__verdict="accepted"
    )
    if task_ids is not None:
        reviews = reviews.filter(task_id__in=task_ids)
    last = (
        reviews.values("task_id")
        .annotate(last=Max("id"))
        .values_list("last", flat=True)
    )
    return dict(
        TaskEvent.objects.filter(id__in=last)
        .order_by()
        .values_list("task_id", "data__answer")
    )


class Superseded(Exception):
    """The sweep gave the comparison to another attempt: this one stops."""


def comparison_compute(comparison_id: int) -> None:
    """Compute and store the figures; progress counted in steps of CHUNK tasks
    (every run's answers read together), then one step per run for the
    figures. Each step is also the heartbeat recovery.py watches."""
    if not Comparison.objects.filter(
        pk=comparison_id, state=Comparison.State.PENDING
    ).update(
        state=Comparison.State.RUNNING,
        attempt=F("attempt") + 1,
        updated_at=timezone.now(),
    ):
        return  # already taken (a redelivered message) or gone
    comparison = Comparison.objects.select_related("project").get(pk=comparison_id)
    mine = Comparison.objects.filter(
        pk=comparison_id, state=Comparison.State.RUNNING, attempt=comparison.attempt
    )
    try:
        with _no_cyclic_gc():
            result = _compute(comparison)
    except Superseded:
        return
    except Exception as exc:
        mine.update(
            state=Comparison.State.FAILED, error=str(exc), finished_at=timezone.now()
        )
        raise
    mine.update(
        state=Comparison.State.DONE,
        result=result,
        progress=comparison.total,
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The cyclic garbage collector off while computing. The computation
    builds hundreds of thousands of small dicts, tuples and lists (decoded
    answers, shapes, COCO's input), none in a cycle, so reference counting
    frees them all. With the collector on, each collection walks every live
    one again: py-spy put a fifth of the time in whatever allocated at that
    moment (bench/compare.py)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def comparison_queue(comparison_id: int) -> None:
    """Hand the computation to Celery once the transaction commits."""

    def queue() -> None:
        from plugins_app.evaluation.tasks import compute_comparison

        compute_comparison.delay(comparison_id)

    transaction.on_commit(queue)


def _compute(comparison: Comparison) -> dict[str, Any]:
    project = comparison.project
    runs = Run.objects.select_related("plugin").in_bulk(comparison.run_ids)
    ordered = [runs[i] for i in comparison.run_ids if i in runs]
    reference = reviewed_answers(project)
    task_ids = sorted(reference)
    chunks = [task_ids[i : i + CHUNK] for i in range(0, len(task_ids), CHUNK)]
    # One step per chunk of tasks (every run's answers read together), then
    # one per run for its figures.
    comparison.total = len(chunks) + len(ordered)
    _progress(comparison, 0)
    written: list[dict[int, Any]] = [{} for _ in ordered]
    for step, chunk in enumerate(chunks, 1):
        found = answers_written([run.pk for run in ordered], chunk)
        for answers, more in zip(written, found, strict=True):
            answers.update(more)
        _progress(comparison, step)
    common = sorted(set(task_ids).intersection(*(a.keys() for a in written)))
    assets = _assets(common)
    classes = [
        tool
        for tool in (project.ontology or {}).get("tools", [])
        if isinstance(tool, dict) and tool.get("tool") in metrics.MEASURED
    ]
    reviewed = [reference[t] for t in common]
    truth = Reference(
        common,
        reviewed,
        [metrics.shapes_of(answer) for answer in reviewed],
        assets,
        [metrics.by_object_id(answer) for answer in reviewed],
    )
    per_asset: list[list[metrics.Counts]] = [[] for _ in common]
    figures = []
    for n, (run, answers) in enumerate(zip(ordered, written, strict=True)):
        figures.append(
            _run_figures(
                run,
                [answers[t] for t in common],
                truth,
                classes,
                per_asset,
                comparison.iou_threshold,
            )
        )
        _progress(comparison, len(chunks) + n + 1)
    return {
        "iou_threshold": comparison.iou_threshold,
        "reviewed": len(task_ids),
        "compared": len(common),
        "classes": [
            {
                "schemaId": t["schemaId"],
                "title": t.get("title") or t["schemaId"],
                "tool": t["tool"],
            }
            for t in classes
        ],
        "runs": figures,
        "assets": _disagreement(common, per_asset, assets),
        "assets_total": len(common),
    }


@dataclass(frozen=True)
class Reference:
    """The compared tasks (in order) with their reviewed answers, shapes and
    assets: what every run is measured against."""

    task_ids: list[int]
    answers: list[Any]
    shapes: list[list[metrics.Shape]]
    assets: dict[int, tuple[str, int, int]]
    by_id: list[dict[str, dict[str, Any]]]  # the answers' objects by objectId


def _assets(task_ids: list[int]) -> dict[int, tuple[str, int, int]]:
    """Task id → (external id, width, height)."""
    found: dict[int, tuple[str, int, int]] = {}
    for i in range(0, len(task_ids), CHUNK):
        rows = Task.objects.filter(pk__in=task_ids[i : i + CHUNK]).values_list(
            "id", "asset__external_id", "asset__width", "asset__height"
        )
        found.update({pk: (ext, w, h) for pk, ext, w, h in rows})
    return found


def _run_figures(
    run: Run,
    answers: list[Any],
    reference: Reference,
    classes: list[dict[str, Any]],
    per_asset: list[list[metrics.Counts]],
    threshold: float,
) -> dict[str, Any]:
    """One run's figures; each asset's counts appended to per_asset."""
    codes = {tool["schemaId"]: n for n, tool in enumerate(classes)}
    box_ids = {
        tool["schemaId"]: n
        for n, tool in enumerate((t for t in classes if t["tool"] == metrics.BOX), 1)
    }
    predicted = [metrics.shapes_of(answer) for answer in answers]
    counts = matching.match_run(predicted, reference.shapes, codes, threshold)
    overall = metrics.Counts()
    for asset_counts, found in zip(per_asset, counts.assets, strict=True):
        asset_counts.append(found)
        overall.add(found)
    cost = metrics.Correction()
    boxes = metrics.MapInput()
    for n, task_id in enumerate(reference.task_ids):
        _, width, height = reference.assets[task_id]
        ran = metrics.by_object_id(answers[n])
        cost.add(metrics.indexed_correction(ran, reference.by_id[n]))
        boxes.add(task_id, (width, height), predicted[n], reference.shapes[n], box_ids)
    mean_ap = metrics.box_map(boxes, box_ids)
    return {
        "run": run.pk,
        "label": f"#{run.pk} {run.plugin.name}"
        + (f" {run.plugin_version}" if run.plugin_version else ""),
        "plugin": run.plugin.name,
        # Which version wrote it: "is version 2 better than version 1?"
        "plugin_version": run.plugin_version,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "classes": {
            schema_id: {
                **counts.classes[code].figures(),
                "ap": mean_ap["classes"].get(schema_id),
            }
            for schema_id, code in codes.items()
        },
        "overall": overall.figures(),
        "map": mean_ap["map"],
        "correction": vars(cost),
    }


def _disagreement(
    task_ids: list[int],
    per_asset: list[list[metrics.Counts]],
    assets: dict[int, tuple[str, int, int]],
) -> list[dict[str, Any]]:
    """The assets where the runs missed or added most (false positives and
    negatives summed over runs), the loosest matches first among equals."""

    def rank(n: int) -> tuple[int, float, int]:
        counts = per_asset[n]
        ious = [c.iou_sum / c.tp for c in counts if c.tp]
        return (-sum(c.fp + c.fn for c in counts), min(ious) if ious else 2.0, n)

    # Only the listed rows are built (heapq keeps the order sorted() gives).
    top = heapq.nsmallest(MAX_ASSETS_LISTED, range(len(task_ids)), key=rank)
    rows = []
    for n in top:
        counts = per_asset[n]
        ious = [c.iou_sum / c.tp for c in counts if c.tp]
        rows.append(
            {
                "task": task_ids[n],
                "asset": assets[task_ids[n]][0],
                "disagreement": sum(c.fp + c.fn for c in counts),
                "min_iou": min(ious) if ious else None,
                "runs": [
                    {
                        "tp": c.tp,
                        "fp": c.fp,
                        "fn": c.fn,
                        "mean_iou": c.iou_sum / c.tp if c.tp else None,
                    }
                    for c in counts
                ],
            }
        )
    return rows


def _progress(comparison: Comparison, step: int) -> None:
    comparison.progress = step
    if not Comparison.objects.filter(
        pk=comparison.pk, state=Comparison.State.RUNNING, attempt=comparison.attempt
    ).update(progress=step, total=comparison.total, updated_at=timezone.now()):
        raise Superseded(comparison.pk)
