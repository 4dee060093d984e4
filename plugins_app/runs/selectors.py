"""Reads for the dashboard: liveness of plugins, run filters, drawn pre-labels."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count, Max, Prefetch, Q, QuerySet
from django.http import QueryDict
from django.utils import timezone

from plugins_app.inputs import json_loads_bounded, parse_id
from plugins_app.plugins.models import Plugin, PluginInstance, lease_ttl
from plugins_app.runs.answer_ledger import runs_touching_task
from plugins_app.runs.models import Run, WorkItem
from plugins_app.runs.run_answers import nothing_written
from plugins_app.workspace import workflow
from plugins_app.workspace.lifecycle import TaskActionError
from plugins_app.workspace.models import Asset, Issue, Task


def plugins_with_liveness(plugins: QuerySet[Plugin]) -> QuerySet[Plugin]:
    """Annotate `live_instances` and `last_heartbeat` (of any live instance) and
    attach the live instances as `live_instance_list`."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.HUB_LIVE_HEARTBEAT_SECONDS)
    # The same conditions as PluginInstanceQuerySet.live().
    live = Q(
        instances__disconnected_at__isnull=True,
        instances__last_heartbeat__gte=cutoff,
        instances__last_seen_at__gte=now - lease_ttl(),
    )
    return (
        plugins.annotate(
            live_instances=Count("instances", filter=live, distinct=True),
            last_heartbeat=Max("instances__last_heartbeat", filter=live),
        )
        .select_related("hosted_code")
        .defer("hosted_code__archive", "hosted_code__build_log")
        .prefetch_related(
            Prefetch(
                "instances",
                queryset=PluginInstance.objects.live(),
                to_attr="live_instance_list",
            )
        )
    )


@dataclass(frozen=True)
class RunFilters:
    project: int | None = None
    plugin: int | None = None
    status: str = ""

    @classmethod
    def from_query(cls, query: QueryDict) -> RunFilters:
        def number(name: str) -> int | None:
            value = query.get(name, "")
            return parse_id(value)

        status = query.get("status", "")
        return cls(
            project=number("project"),
            plugin=number("plugin"),
            status=status if status in Run.Status.values else "",
        )

    def apply(self, runs: QuerySet[Run]) -> QuerySet[Run]:
        if self.project:
            runs = runs.filter(project_id=self.project)
        if self.plugin:
            runs = runs.filter(plugin_id=self.plugin)
        if self.status:
            runs = runs.filter(status=self.status)
        return runs.order_by("-created_at", "-id")

    def query_string(self) -> str:
        pairs = {"project": self.project, "plugin": self.plugin, "status": self.status}
        return urlencode({k: v for k, v in pairs.items() if v})


# A page draws at most this many objects of one answer (an SVG of 10,000
# shapes is megabytes a browser takes seconds over); the caption says
# "showing N of M" and the answer itself is on the task page.
MAX_DRAWN_SHAPES = 500


@dataclass(frozen=True)
class DrawnAsset:
    asset: Asset
    shapes: list[dict[str, Any]]
    classifications: list[str]
    # The answer's objects, drawn or not (more than shapes when capped).
    total_objects: int = 0

    @property
    def capped(self) -> bool:
        return self.total_objects > len(self.shapes)


def answer_drawing(
    answer: dict[str, Any], ontology: dict[str, Any], limit: int = MAX_DRAWN_SHAPES
) -> tuple[list[dict[str, Any]], list[str], int]:
    """The shapes to draw (at most `limit`), the classification labels, and
    how many objects the answer has."""
    tools = {t.get("schemaId"): t for t in ontology.get("tools", [])}
    classes = {c.get("schemaId"): c for c in ontology.get("classifications", [])}
    objects = (answer or {}).get("tools", [])
    shapes = []
    for obj in objects[:limit]:
        tool = tools.get(obj.get("schemaId"), {})
        style = {"color": tool.get("color", "#ff0055"), "title": tool.get("title", "")}
        if box := obj.get("bounding-box"):
            shapes.append({"kind": "box", **box, **style})
        elif points := obj.get("polygon") or obj.get("polyline"):
            text = " ".join(f"{x},{y}" for x, y in points)
            shapes.append({"kind": "polygon", "points": text, **style})
        elif point := obj.get("point"):
            shapes.append({"kind": "point", "x": point[0], "y": point[1], **style})
    labels = [
        f"{classes.get(c.get('schemaId'), {}).get('title', c.get('schemaId'))}: "
        f"{c.get('answer')}"
        for c in (answer or {}).get("classifications", [])[:limit]
    ]
    return shapes, labels, len(objects)


@dataclass(frozen=True)
class ItemRow:
    external_id: str
    state: str
    state_label: str
    attempts: int
    reason: str


MAX_ITEM_ROWS = 200


@dataclass(frozen=True)
class RunProgress:
    done: int
    failed: int
    total: int
    percent: int
    label: str
    # Failed items first (their reasons matter most), at most MAX_ITEM_ROWS.
    items: tuple[ItemRow, ...] = ()
    # Answered, but kept from a task holding a person's work (not failures).
    skipped: int = 0
    # Jobs failed for want of an answer within the plugin's timeout.
    timed_out: int = 0
    # Succeeded without putting anything on any task: a neutral bar, not green.
    nothing_written: bool = False
    # (version, jobs) that answered, when not all were the run's own version
    # (a roll-out, an upgrade mid-run); empty otherwise.
    versions: tuple[tuple[str, int], ...] = ()


def run_progress(run: Run) -> RunProgress:
    """Assets done over total for multi-asset runs, the plugin's own `progress`
    and `total` log extras for a single job, labeled assets for Batch Model.
    One query reads the items for both the counts and the table of items."""
    rows = list(run.items.order_by("id").values_list(*ITEM_COLUMNS))
    return progress_of(run, rows)


# What progress_of reads of each item, in this order (ItemValues); a run
# watcher's push reads the same (web/watch_reads.py).
ITEM_COLUMNS = (
    "state",
    "attempts",
    "error",
    "asset__external_id",
    "failure",
    "plugin_version",
)
ItemValues = tuple[str, int, str, "str | None", str, str]


def progress_of(run: Run, rows: Sequence[ItemValues]) -> RunProgress:
    """run_progress from the run's item rows in id order (state, attempts,
    error, external id, failure, plugin version): read by run_progress, or
    held by the caller that just wrote them (the create route's 201 body)."""
    states = [state for state, *_ in rows]
    done, failed = states.count("done"), states.count("failed")
    skipped = states.count(WorkItem.State.SKIPPED)
    timed_out = sum(1 for row in rows if row[4] == WorkItem.Failure.TIMEOUT)
    answered = Counter(row[5] for row in rows if row[5])
    done += skipped  # processed: the run goes on past a kept task
    total = len(states)
    if run.plugin.type == "batch_model" and run.assets_total:
        percent, label = _batch_progress(run)
    elif total > 1:
        percent = 100 * (done + failed) // total
        label = f"{done + failed} of {total} assets processed"
        if failed:
            label += f" ({failed} failed)"
        if skipped:
            label += f" ({skipped} skipped: a person's work kept)"
    elif run.reported_total:
        shown = min(run.reported_progress or 0, run.reported_total)
        percent = 100 * shown // run.reported_total
        label = (
            f"{run.reported_progress} of {run.reported_total} (reported by the plugin)"
        )
    else:
        percent = 100 * (done + failed) // max(total, 1)
        label = f"{done + failed} of {total} job(s) finished"
    empty = _succeeded_empty(run)
    if empty:
        why = (
            "every task held a person's work and kept it"
            if skipped and skipped == total
            else "the plugin returned nothing this run's class mapping could write"
        )
        label = f"Succeeded, nothing written: {why} ({label})."
    if run.is_finished:
        percent = 100 if run.status == Run.Status.SUCCEEDED else percent
    return RunProgress(
        done,
        failed,
        total,
        min(percent, 100),
        label,
        _item_rows([r[:4] for r in rows]),
        skipped,
        timed_out,
        empty,
        tuple(sorted(answered.items())) if set(answered) - {run.plugin_version} else (),
    )


def _batch_progress(run: Run) -> tuple[int, str]:
    """Tasks holding the run's labels, counted after each import_labels call;
    a plugin that imports once at the end but logs `progress`/`total` extras
    moves the bar with what it reports, said as such."""
    percent = 100 * run.assets_labeled // run.assets_total
    label = f"{run.assets_labeled} of {run.assets_total} assets labeled"
    reported, of = run.reported_progress, run.reported_total
    if reported is not None and of and not run.is_finished:
        processed = 100 * min(reported, of) // of
        if processed > percent:
            percent = processed
            label += f"; the plugin reports {reported} of {of} processed"
    return percent, label


def _succeeded_empty(run: Run) -> bool:
    if run.status != Run.Status.SUCCEEDED or run.plugin.type not in (
        "model",
        "batch_model",
    ):
        return False
    if run.dry_run:
        return False  # a preview writes nothing by design; its page says so
    return nothing_written(run)


def _item_rows(rows: list[tuple[str, int, str, str | None]]) -> tuple[ItemRow, ...]:
    ordered = sorted(
        rows, key=lambda r: r[0] not in (WorkItem.State.FAILED, WorkItem.State.SKIPPED)
    )
    return tuple(
        ItemRow(
            external_id=external_id or "(whole run)",
            state=state,
            state_label=WorkItem.State(state).label,
            attempts=attempts,
            reason=error if state in ("failed", "cancelled", "skipped") else "",
        )
        for state, attempts, error, external_id in ordered[:MAX_ITEM_ROWS]
    )


# --- the task page ---------------------------------------------------------------
def task_page(task: Task) -> dict[str, Any]:
    """What the task page shows: stage and what can be done in it, answer,
    metadata, open issues, the labels submitted so far, the history (events,
    with the runs they name) and the runs about the task."""
    project = task.project
    stage = workflow.stage_named(project.workflow, task.stage) or {}
    history = list(task.events.select_related("actor"))
    run_ids = {e.data.get("run") for e in history if isinstance(e.data.get("run"), int)}
    runs = runs_touching_task(task, run_ids)
    return {
        "task": task,
        "project": project,
        "asset": task.asset,
        "stage_type": stage.get("type", ""),
        "stages": workflow.stages(project.workflow),
        "answer_json": json.dumps(task.answer or {}, indent=2),
        "metadata": sorted((task.metadata or {}).items()),
        "open_issues": task.issues.filter(status=Issue.Status.OPEN),
        "submissions": task.submissions.filter(active=True).select_related("user"),
        "labels_per_asset": project.labels_per_asset,
        "history": history,
        "runs": runs[:20],
        "stage_task": _stage_tasks(project, task.stage, task_id=task.pk)[0]
        if stage.get("type") == workflow.PLUGIN
        else None,
    }


def answer_from_text(text: str) -> dict[str, Any] | None:
    """The answer box of the task page: empty keeps the task's current labels."""
    if not text.strip():
        return None
    try:
        value = json_loads_bounded(
            text, what="It", max_bytes=settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        )
    except ValueError as exc:
        raise TaskActionError(f"The answer is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise TaskActionError("The answer must be a JSON object.")
    return value


# --- workflow ---------------------------------------------------------------------
@dataclass(frozen=True)
class StageTask:
    """A task sitting in a Plugin stage with its latest workflow run, if any."""

    task_id: int
    asset_id: int
    external_id: str
    run: Run | None

    @property
    def failed(self) -> bool:
        return self.run is not None and self.run.status in (
            Run.Status.FAILED,
            Run.Status.TIMED_OUT,
            Run.Status.CANCELLED,
        )


@dataclass(frozen=True)
class StageRow:
    stage: dict[str, Any]
    task_count: int
    tasks: tuple[StageTask, ...] = ()
    plugin_name: str = ""
    preset_name: str = ""

    @property
    def failed_count(self) -> int:
        return sum(1 for t in self.tasks if t.failed)


def workflow_overview(project: Any, tasks_per_stage: int = 200) -> list[StageRow]:
    """Every stage with its task count; Plugin stages also list their tasks and
    the latest workflow run of each (status and error)."""
    from plugins_app.workspace import workflow

    counts = dict(
        project.tasks.values("stage").annotate(n=Count("id")).values_list("stage", "n")
    )
    plugins = dict(
        Plugin.objects.filter(organization=project.organization_id).values_list(
            "pk", "name"
        )
    )
    presets = dict(project.plugin_presets.values_list("pk", "name"))
    rows = []
    for stage in workflow.stages(project.workflow):
        row = StageRow(stage, counts.get(stage.get("name"), 0))
        if stage.get("type") == workflow.PLUGIN:
            row = StageRow(
                stage,
                row.task_count,
                _stage_tasks(project, stage["name"], tasks_per_stage),
                plugins.get(stage.get("plugin") or 0, "(deleted plugin)"),
                presets.get(stage.get("preset"), ""),
            )
        rows.append(row)
    return rows


def _stage_tasks(
    project: Any, stage_name: str, limit: int = 1, task_id: int | None = None
) -> tuple[StageTask, ...]:
    in_stage = project.tasks.filter(stage=stage_name)
    if task_id is not None:
        in_stage = in_stage.filter(pk=task_id)
    tasks = list(in_stage.select_related("asset").order_by("id")[:limit])
    latest: dict[int, Run] = {}
    runs = Run.objects.filter(
        task__in=[t.pk for t in tasks], trigger="workflow"
    ).order_by("created_at", "id")
    for run in runs:
        if run.task_id is not None:  # filtered on tasks: never None here
            latest[run.task_id] = run
    return tuple(
        StageTask(t.pk, t.asset_id, t.asset.external_id, latest.get(t.pk))
        for t in tasks
    )
