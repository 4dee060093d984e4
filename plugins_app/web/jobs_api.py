"""Parallel labeling in the JSON API (workspace/jobs.py): a project's labeling
jobs and their members, a task's jobs, and submitting one job's part. A Router
mounted on the hub's NinjaAPI in plugins_app/urls.py.

Members of the project's organization read; its admins change the jobs.
Bad specs are a 400 naming the problem, never a 500."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Prefetch
from ninja import Router, Schema, Status

from plugins_app.inputs import JsonInputError, check_json
from plugins_app.web import access
from plugins_app.web.api import DbId
from plugins_app.web.request_types import AuthenticatedHttpRequest
from plugins_app.workspace.jobs import (
    job_json,
    job_set_members,
    project_set_jobs,
    task_jobs_state,
)
from plugins_app.workspace.lifecycle import (
    TaskActionError,
    TaskPermissionError,
    task_submit,
)
from plugins_app.workspace.models import LabelingJob, Project

router = Router(tags=["labeling jobs"])

MAX_MEMBERS = 1000


class ErrorBody(Schema):
    errors: dict[str, list[str]]


class JobOut(Schema):
    id: int
    name: str
    position: int
    tools: list[str]
    classifications: list[str]
    members: list[str]


class JobsIn(Schema):
    # Checked by project_set_jobs, not by the schema: every bad spec gets the
    # same clear 400 ("…is in both X and Y…"), not a validation dump.
    jobs: list[Any]


class MembersIn(Schema):
    users: list[str]  # usernames


class JobStateOut(Schema):
    job: str
    job_id: int
    submitted: bool
    submitted_by: str
    submitted_at: datetime | None


class TaskJobsOut(Schema):
    task: int
    stage: str
    status: str
    answer: dict[str, Any]
    jobs: list[JobStateOut]


class SubmitPartIn(Schema):
    # None: submit the job's part of the task's current labels.
    answer: dict[str, Any] | None = None


def _error(code: int, message: str) -> Status[dict[str, Any]]:
    return Status(code, {"errors": {"__all__": [message]}})


def _jobs_out(project: Project) -> list[dict[str, Any]]:
    users = Prefetch("members", queryset=User.objects.order_by("username"))
    return [
        job_json(job) | {"members": [u.get_username() for u in job.members.all()]}
        for job in project.jobs.order_by("position", "id").prefetch_related(users)
    ]


@router.get("/projects/{project_id}/jobs", response=list[JobOut])
def list_jobs(
    request: AuthenticatedHttpRequest, project_id: DbId
) -> list[dict[str, Any]]:
    project = access.get_project_for_user(request.user, project_id)
    return _jobs_out(project)


@router.put(
    "/projects/{project_id}/jobs",
    response={200: list[JobOut], 400: ErrorBody, 403: ErrorBody},
)
def set_jobs(
    request: AuthenticatedHttpRequest, project_id: DbId, body: JobsIn
) -> Status[Any]:
    project = access.get_project_for_user(request.user, project_id)
    if not access.is_org_admin(request.user, project.organization_id):
        return _error(403, "Only admins of this organization set labeling jobs.")
    try:
        project_set_jobs(project, body.jobs)
    except TaskActionError as exc:
        return _error(400, str(exc))
    return Status(200, _jobs_out(project))


@router.put(
    "/projects/{project_id}/jobs/{job_id}/members",
    response={200: JobOut, 400: ErrorBody, 403: ErrorBody, 404: ErrorBody},
)
def set_job_members(
    request: AuthenticatedHttpRequest, project_id: DbId, job_id: DbId, body: MembersIn
) -> Status[Any]:
    project = access.get_project_for_user(request.user, project_id)
    if not access.is_org_admin(request.user, project.organization_id):
        return _error(403, "Only admins of this organization assign labeling jobs.")
    job = LabelingJob.objects.filter(project=project, pk=job_id).first()
    if job is None:
        return _error(404, f"Job {job_id} is not a labeling job of this project.")
    names = list(dict.fromkeys(body.users))
    if len(names) > MAX_MEMBERS:
        return _error(400, f"At most {MAX_MEMBERS} members per job.")
    found = {u.get_username(): u for u in User.objects.filter(username__in=names)}
    unknown = [n for n in names if n not in found]
    if unknown:
        # The same words as an outsider's: no hint of who exists elsewhere.
        return _error(
            400, f"Not members of this organization: {', '.join(sorted(unknown))}."
        )
    try:
        job_set_members(job, [found[n] for n in names])
    except TaskActionError as exc:
        return _error(400, str(exc))
    out = next(j for j in _jobs_out(project) if j["id"] == job.pk)
    return Status(200, out)


def _task_jobs_out(task: Any) -> dict[str, Any]:
    return {
        "task": task.pk,
        "stage": task.stage,
        "status": task.status,
        "answer": task.answer or {},
        "jobs": [
            {
                "job": s["job"].name,
                "job_id": s["job"].pk,
                "submitted": s["submitted"],
                "submitted_by": s["submittedBy"],
                "submitted_at": s["submittedAt"],
            }
            for s in task_jobs_state(task)
        ],
    }


@router.get("/tasks/{task_id}/jobs", response=TaskJobsOut)
def task_jobs(request: AuthenticatedHttpRequest, task_id: DbId) -> dict[str, Any]:
    task = access.get_task_for_user(request.user, task_id)
    return _task_jobs_out(task)


@router.post(
    "/tasks/{task_id}/jobs/{job_id}/submit",
    response={
        200: TaskJobsOut,
        400: ErrorBody,
        403: ErrorBody,
        404: ErrorBody,
        409: ErrorBody,
    },
)
def submit_job_part(
    request: AuthenticatedHttpRequest, task_id: DbId, job_id: DbId, body: SubmitPartIn
) -> Status[Any]:
    """Submit `job`'s part of the answer (the rest of it is dropped)."""
    task = access.get_task_for_user(request.user, task_id)
    job = LabelingJob.objects.filter(project_id=task.project_id, pk=job_id).first()
    if job is None:
        return _error(404, f"Job {job_id} is not a labeling job of this project.")
    try:
        check_json(body.answer, what="The answer")
    except JsonInputError as exc:
        return _error(400, str(exc))
    try:
        task = task_submit(task, user=request.user, answer=body.answer, job=job)
    except TaskPermissionError as exc:
        return _error(403, str(exc))
    except TaskActionError as exc:
        return _error(409, str(exc))
    task.refresh_from_db()
    return Status(200, _task_jobs_out(task))
