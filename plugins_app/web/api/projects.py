"""Projects and their tasks in the JSON API: list them, submit and review a
task, read its history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Router, Schema, Status

from plugins_app.web import access
from plugins_app.web.api.fields import ErrorOut, JsonObject, PageNumber, page_slice
from plugins_app.web.request_types import AuthenticatedHttpRequest
from plugins_app.workspace import workflow
from plugins_app.workspace.lifecycle import (
    TaskActionError,
    TaskPermissionError,
    task_review,
    task_submit,
)
from plugins_app.workspace.models import Task

router = Router()


class ProjectOut(Schema):
    id: int
    name: str
    organization: str
    ontology: dict[str, Any]
    batches: list[dict[str, Any]]
    labels_per_asset: int
    workflow: list[dict[str, Any]]


class TaskOut(Schema):
    id: int
    project_id: int
    asset_id: int
    external_id: str
    stage: str
    status: str
    answer: dict[str, Any]
    metadata: dict[str, Any]
    open_issues: list[dict[str, Any]]
    labels_submitted: int
    labels_per_asset: int


class TaskEventOut(Schema):
    id: int
    name: str
    actor: str | None
    actor_label: str
    data: dict[str, Any]
    created_at: datetime


class SubmitIn(Schema):
    # None: submit the task's current labels (e.g. an accepted pre-label).
    answer: JsonObject | None = None


class ReviewIn(Schema):
    verdict: str  # "accept" or "reject"
    reason: str = ""


@router.get("/projects", response=list[ProjectOut])
def list_projects(request: AuthenticatedHttpRequest) -> list[dict[str, Any]]:
    return [
        {
            "id": p.pk,
            "name": p.name,
            "organization": p.organization.name,
            "ontology": p.ontology,
            "batches": [{"id": b.pk, "name": b.name} for b in p.batches.all()],
            "labels_per_asset": p.labels_per_asset,
            "workflow": workflow.stages(p.workflow),
        }
        for p in access.visible_projects(request.user).select_related("organization")
    ]


def task_out(task: Task) -> dict[str, Any]:
    return {
        "id": task.pk,
        "project_id": task.project_id,
        "asset_id": task.asset_id,
        "external_id": task.asset.external_id,
        "stage": task.stage,
        "status": task.status,
        "answer": task.answer or {},
        "metadata": task.metadata or {},
        "open_issues": [
            {
                "id": i.pk,
                "content": i.content,
                "created_by": i.created_by.get_username()
                if i.created_by
                else i.created_by_label,
                "created_at": i.created_at.isoformat(),
            }
            for i in task.issues.filter(status="open").select_related("created_by")
        ],
        "labels_submitted": task.submissions.filter(active=True).count(),
        "labels_per_asset": task.project.labels_per_asset,
    }


@router.get("/projects/{project_id}/tasks", response=list[TaskOut])
def list_tasks(
    request: AuthenticatedHttpRequest,
    project_id: int,
    stage: str = "",
    page: PageNumber = 1,
    per_page: int = 100,
) -> list[dict[str, Any]]:
    """The project's tasks by id, optionally only those in one stage."""
    project = access.get_project_for_user(request.user, project_id)
    tasks = project.tasks.select_related("asset", "project").order_by("id")
    if stage:
        tasks = tasks.filter(stage=stage)
    return [task_out(t) for t in tasks[page_slice(page, per_page, most=500)]]


@router.get("/tasks/{task_id}", response=TaskOut)
def get_task(request: AuthenticatedHttpRequest, task_id: int) -> dict[str, Any]:
    return task_out(access.get_task_for_user(request.user, task_id))


@router.get("/tasks/{task_id}/events", response=list[TaskEventOut])
def get_task_events(
    request: AuthenticatedHttpRequest, task_id: int
) -> list[dict[str, Any]]:
    task = access.get_task_for_user(request.user, task_id)
    return [
        {
            "id": e.pk,
            "name": e.name,
            "actor": e.actor.get_username() if e.actor else None,
            "actor_label": e.actor_label,
            "data": e.data,
            "created_at": e.created_at,
        }
        for e in task.events.select_related("actor")
    ]


@router.post(
    "/tasks/{task_id}/submit", response={200: TaskOut, 403: ErrorOut, 409: ErrorOut}
)
def submit_task(
    request: AuthenticatedHttpRequest, task_id: int, body: SubmitIn
) -> Status[dict[str, Any]]:
    """With labeling jobs this submits the caller's one job's part; a member of
    several jobs names one with `POST /tasks/{id}/jobs/{job_id}/submit`."""
    task = access.get_task_for_user(request.user, task_id)
    try:
        task = task_submit(task, user=request.user, answer=body.answer)
    except TaskPermissionError as exc:  # e.g. in no labeling job of the project
        return Status(403, {"errors": {"__all__": [str(exc)]}})
    except TaskActionError as exc:
        return Status(409, {"errors": {"__all__": [str(exc)]}})
    task.refresh_from_db()
    return Status(200, task_out(task))


@router.post(
    "/tasks/{task_id}/review", response={200: TaskOut, 403: ErrorOut, 409: ErrorOut}
)
def review_task(
    request: AuthenticatedHttpRequest, task_id: int, body: ReviewIn
) -> Status[dict[str, Any]]:
    task = access.get_task_for_user(request.user, task_id)
    if body.verdict not in ("accept", "reject"):
        return Status(409, {"errors": {"verdict": ['Use "accept" or "reject".']}})
    try:
        task = task_review(
            task,
            user=request.user,
            accept=body.verdict == "accept",
            reason=body.reason,
        )
    except TaskPermissionError as exc:
        return Status(403, {"errors": {"__all__": [str(exc)]}})
    except TaskActionError as exc:
        return Status(409, {"errors": {"__all__": [str(exc)]}})
    task.refresh_from_db()
    return Status(200, task_out(task))
