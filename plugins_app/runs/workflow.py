"""Workflow Plugin stages: a task entering one gets a run of the stage's Model
plugin; its answer (POST /v2/annotate) moves the task on."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from plugins_app import protocol
from plugins_app.plugins.kinds import WORKFLOW_TRIGGER, checks
from plugins_app.plugins.kinds.model import check_model_answer, store_model_answer
from plugins_app.plugins.models import (
    Plugin,
    PluginType,
    Preset,
)
from plugins_app.plugins.versions import served_version
from plugins_app.runs.creation import run_write
from plugins_app.runs.ledger import (
    RunActionError,
    finish_item,
    item_fail,
    requeue,
    run_close,
    run_settle,
)
from plugins_app.runs.models import (
    Run,
    RunLogLine,
    WorkItem,
)
from plugins_app.runs.notify import HUB, hub_log
from plugins_app.runs.tasks import dispatch_plugin_work
from plugins_app.runs.wakeup import freed_slots
from plugins_app.workspace import lifecycle, workflow
from plugins_app.workspace.models import Project, Task

log = logging.getLogger(__name__)


OPEN_RUN = (Run.Status.QUEUED, Run.Status.RUNNING)


WORKFLOW_SLOT_GRACE_SECONDS = 0.05


MAX_WORKFLOW_BOUNCES = 5


BUSY_NOTE = "The instance's workflow slots were all busy (it refused the job at once);"


class WorkflowAnswerError(Exception):
    """A POST /v2/annotate the hub refuses; `status` is the HTTP status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class StageSettings:
    """What a Plugin stage runs: its plugin, mapping and config, or why not."""

    plugin: Plugin | None
    mapping: list[dict[str, str]] | None
    config_json: str
    problems: list[str]


def stage_settings(project: Project, stage: dict[str, Any]) -> StageSettings:
    """Resolve a stage's plugin and preset now: a preset edited since the stage
    was set up applies, and one broken by an ontology change stops the run."""
    plugin_id = stage.get("plugin")
    plugin = (
        Plugin.objects.filter(
            pk=plugin_id, organization_id=project.organization_id
        ).first()
        if plugin_id is not None
        else None
    )
    if plugin is None:
        return StageSettings(None, None, "{}", ["The stage's plugin no longer exists."])
    problems = []
    if plugin.type != PluginType.MODEL:
        problems.append(f"“{plugin.name}” is not a Model plugin.")
    if not plugin.projects.filter(pk=project.pk).exists():
        problems.append(f"“{plugin.name}” is not activated on this project.")
    mapping: dict[str, str] = stage.get("class_mapping") or {}
    config = stage.get("config_json") or plugin.default_config or "{}"
    source = ""
    if stage.get("preset"):
        preset = Preset.objects.filter(
            pk=stage["preset"], project=project, plugin=plugin
        ).first()
        if preset is None:
            problems.append("The stage's preset was deleted: choose another one.")
        else:
            mapping, config = preset.class_mapping, preset.config_json
            source = f" (from preset “{preset.name}”)"
    # The same checks as a Run dialog's: a preset edited or an ontology changed
    # since the stage was set up shows here, before anything is sent.
    problems += checks.mapping_problems(plugin, project, mapping, source=source)
    problems += checks.config_problems(config)
    return StageSettings(plugin, checks.mapping_pairs(mapping), config, problems)


def workflow_run_create(*, task_id: int, stage_name: str) -> Run | None:
    """A task entered (or is retried in) a Plugin stage: one run for it, sent to
    the stage's Model plugin. None when the task has moved on, or already has a
    run in flight (a duplicate event must not handle it twice)."""
    with transaction.atomic():
        task = (
            Task.objects.select_for_update()
            .select_related("project", "asset")
            .filter(pk=task_id)
            .first()
        )
        if task is None or task.stage != stage_name:
            return None
        stage = workflow.stage_named(task.project.workflow, stage_name)
        if stage is None or stage.get("type") != workflow.PLUGIN:
            return None
        if Run.objects.filter(
            task=task, trigger=WORKFLOW_TRIGGER, status__in=OPEN_RUN
        ).exists():
            return None
        settings_ = stage_settings(task.project, stage)
        if settings_.plugin is None:
            log.warning("task %s in stage %s: %s", task.pk, stage_name, "no plugin")
            return None
        run = Run(
            organization_id=task.project.organization_id,
            project=task.project,
            plugin=settings_.plugin,
            class_mapping=settings_.mapping,
            config_json=settings_.config_json.strip() or "{}",
            trigger=WORKFLOW_TRIGGER,
            task=task,
        )
        what = f"Task of {task.asset.external_id} entered the stage “{stage_name}”"
        if settings_.problems:
            run_write(run, [])
            hub_log(run, f"{what}; it cannot be sent:", level="ERROR")
            run_close(run, Run.Status.FAILED, "\n".join(settings_.problems))
            return run
        run_write(run, [task.asset], lines=[f"{what}; waiting for a plugin instance."])
    return run


def workflow_stage_retry(
    project: Project,
    stage_name: str,
    *,
    task_ids: Iterable[int] | None = None,
    only_failed: bool = True,
) -> int:
    """Send the stage's tasks again: the failed ones (or one of them), or every
    task sitting in the stage with no run in flight (Ango's stage Re-Run).
    Returns how many runs were created."""
    stage = workflow.stage_named(project.workflow, stage_name)
    if stage is None or stage.get("type") != workflow.PLUGIN:
        raise RunActionError(f"“{stage_name}” is not a Plugin stage of this project.")
    tasks = project.tasks.filter(stage=stage_name)
    if task_ids is not None:
        tasks = tasks.filter(pk__in=list(task_ids))
    created = 0
    for task_id in tasks.values_list("pk", flat=True):
        latest = (
            Run.objects.filter(task_id=task_id, trigger=WORKFLOW_TRIGGER)
            .order_by("-created_at", "-id")
            .values_list("status", flat=True)
            .first()
        )
        if only_failed and latest not in (
            Run.Status.FAILED,
            Run.Status.TIMED_OUT,
            Run.Status.CANCELLED,
        ):
            continue
        if workflow_run_create(task_id=task_id, stage_name=stage_name) is not None:
            created += 1
    return created


def workflow_answer(
    *, run: Run, task: Task, body: Any, next_stage: bool = True
) -> dict[str, Any]:
    """A plugin's POST /v2/annotate/{taskId} for its workflow job: check the
    answer like a Model answer, store it, end the job, and move the task to the
    next stage. Applied once: a duplicate or late post is refused (409)."""
    if run.trigger != WORKFLOW_TRIGGER or run.task_id != task.pk:
        raise WorkflowAnswerError(
            "This apikey is not for a workflow job of that task.", 403
        )
    item = run.items.select_related("asset", "run__plugin").first()
    if item is None or item.state != WorkItem.State.LEASED:
        state = item.get_state_display().lower() if item else "unknown"
        raise WorkflowAnswerError(
            f"This job is already {state}; the answer was not applied.", 409
        )
    assert item.asset is not None
    answer = body.get("answer") if isinstance(body, dict) else None
    if not isinstance(answer, dict):
        problem = "The plugin posted no answer (its callback failed or returned None)."
        item_fail(item, WorkItem.Failure.INVALID, problem)
        raise WorkflowAnswerError(problem, 400)
    result = check_model_answer(run, item.asset, answer)
    if not result.ok:
        text = "The plugin's answer was rejected:\n" + "\n".join(
            f"• {p}" for p in result.problems
        )
        item_fail(item, WorkItem.Failure.INVALID, text)
        raise WorkflowAnswerError(text, 400)
    with transaction.atomic():
        if not finish_item(item, WorkItem.State.DONE):
            raise WorkflowAnswerError("This job was answered already.", 409)
        version = served_version(run.plugin, item.instance)
        note = store_model_answer(run, item.asset, result.answer, version=version).note
        task.refresh_from_db()
        moved_to = _workflow_move_on(task, run) if next_stage else None
        where = f"; the task moved to “{moved_to}”" if moved_to else ""
        hub_log(run, note + where, item=item)
        run_settle(run.pk, dispatch=False)
        _dispatch_soon(run.plugin_id)
    return {"task": str(task.pk), "stage": moved_to or task.stage}


def _dispatch_soon(plugin_id: int) -> None:
    """Hand out the next job once the instance freed its workflow slot: the SDK
    frees it only after reading this very HTTP reply, so a job sent at once
    would find the slot still taken. In the ASGI process a timer does it (a
    Celery round trip would cost far more than the wait); elsewhere Celery."""

    def later() -> None:
        grace = WORKFLOW_SLOT_GRACE_SECONDS
        if not protocol.run_later(grace, freed_slots.request, plugin_id):
            dispatch_plugin_work.apply_async((plugin_id,), countdown=grace)

    transaction.on_commit(later)


def workflow_bounced(item: WorkItem) -> bool:
    """1.4.x answers a workflow job {"error": true} at once, without running the
    callback (so without one log line), when all its `concurrency` slots are
    taken. That is no failure of the job: it goes back to the queue, its attempt
    not counted, a few times at most."""
    if item.run.trigger != WORKFLOW_TRIGGER or item.leased_at is None:
        return False
    quick = timezone.now() - item.leased_at < timedelta(seconds=2)
    logged = RunLogLine.objects.filter(item=item).exclude(level=HUB)
    bounces = RunLogLine.objects.filter(item=item, message__startswith=BUSY_NOTE)
    if not quick or logged.exists() or bounces.count() >= MAX_WORKFLOW_BOUNCES:
        return False
    with transaction.atomic():
        if not requeue(item, timezone.now()):
            return False
        WorkItem.objects.filter(pk=item.pk).update(attempts=F("attempts") - 1)
        hub_log(item.run, BUSY_NOTE + " the job goes back to the queue.", item=item)
        _dispatch_soon(item.run.plugin_id)
    return True


def _workflow_move_on(task: Task, run: Run) -> str | None:
    current = workflow.stage_named(task.project.workflow, task.stage)
    if current is None or current.get("type") != workflow.PLUGIN:
        return None  # moved by hand meanwhile: the answer is kept, the task stays
    following = workflow.next_stage(task.project.workflow, task.stage)
    if following is None:
        return None
    lifecycle.task_move(
        task,
        to_stage=following["name"],
        actor_label=f"plugin {run.plugin.name}",
        # The answer it leaves the stage with, for the export's stageHistory.
        data={"run": run.pk, "answer": task.answer},
    )
    return following["name"]
