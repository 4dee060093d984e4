"""State changes of tasks: moving through the workflow, sending back, issues and
metadata. Every change is recorded as an event (workspace/events.py), which is
how event plugins and workflow Plugin stages hear of it."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from plugins_app.workspace import events, workflow
from plugins_app.workspace.models import Issue, Task

# The status a task shows while it sits in a stage of each type.
STATUS_IN_STAGE = {
    workflow.START: Task.Status.TODO,
    workflow.LABEL: Task.Status.TODO,
    workflow.PLUGIN: Task.Status.TODO,
    workflow.REVIEW: Task.Status.SUBMITTED,
    workflow.COMPLETE: Task.Status.REVIEWED,
}


class TaskActionError(Exception):
    """The action does not apply to the task as it is now (shown to the user)."""


def task_move(
    task: Task,
    *,
    to_stage: str,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    data: dict[str, Any] | None = None,
) -> Task:
    """Put the task in `to_stage` and record `task.stage_entered`."""
    stage = workflow.stage_named(task.project.workflow, to_stage)
    if stage is None:
        raise TaskActionError(f"“{to_stage}” is not a stage of this project.")
    with transaction.atomic():
        from_stage = task.stage
        task.stage = to_stage
        task.status = STATUS_IN_STAGE.get(stage.get("type", ""), task.status)
        task.save(update_fields=["stage", "status", "updated_at"])
        events.emit(
            task,
            events.TASK_STAGE_ENTERED,
            actor=actor,
            actor_label=actor_label,
            data={"from": from_stage, "to": to_stage, **(data or {})},
        )
    return task


def task_send_back(
    task: Task,
    *,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    reason: str = "",
    to_stage: str | None = None,
) -> Task:
    """Back to the labeling queue: `to_stage`, or the workflow's first Label stage."""
    target = to_stage or _first_label_stage(task)
    with transaction.atomic():
        events.emit(
            task,
            events.TASK_SENT_BACK,
            actor=actor,
            actor_label=actor_label,
            data={"from": task.stage, "to": target, "reason": reason},
        )
        return task_move(task, to_stage=target, actor=actor, actor_label=actor_label)


def _first_label_stage(task: Task) -> str:
    stage = workflow.first_stage_of_type(task.project.workflow, workflow.LABEL)
    if stage is None:
        raise TaskActionError("This project's workflow has no Label stage.")
    return stage["name"]


def issue_create(
    task: Task,
    *,
    content: str,
    position: dict[str, Any] | None = None,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
) -> Issue:
    content = (content or "").strip()
    if not content:
        raise TaskActionError("An issue needs a text.")
    return Issue.objects.create(
        task=task,
        content=content,
        position=position or {},
        created_by=actor,
        created_by_label=actor_label,
    )


def task_metadata_update(task: Task, values: dict[str, Any]) -> Task:
    """Merge `values` into the task's metadata (a key set to None is removed)."""
    if not isinstance(values, dict):
        raise TaskActionError("Metadata must be a JSON object.")
    with transaction.atomic():
        task = Task.objects.select_for_update().get(pk=task.pk)
        merged = {**task.metadata, **values}
        task.metadata = {k: v for k, v in merged.items() if v is not None}
        task.save(update_fields=["metadata", "updated_at"])
    return task
