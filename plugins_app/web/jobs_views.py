"""Parallel labeling in the browser (workspace/jobs.py): the project's Jobs
page, where an org admin splits the ontology into jobs and assigns members
(members see it read-only), and the task page's Submit of one job's part.

The page is one form of every job plus an empty row to add one: saving it
makes the project's jobs exactly what the form says (project_set_jobs) and
their members what is ticked (job_set_members), all or nothing. A refusal is
shown above the form with what the admin typed kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh

from plugins_app.inputs import parse_ids
from plugins_app.runs import selectors
from plugins_app.web import access
from plugins_app.web.canvas import canvas_context
from plugins_app.web.partials import page_or_partial
from plugins_app.web.request_types import AuthenticatedHttpRequest
from plugins_app.workspace.jobs import (
    MAX_JOBS,
    JobSpecError,
    job_set_members,
    project_set_jobs,
)
from plugins_app.workspace.lifecycle import (
    TaskActionError,
    TaskPermissionError,
    may_review,
    task_submit,
)
from plugins_app.workspace.models import Asset, Project, Task

PAGE = "projects/jobs.html"


@dataclass
class JobRow:
    """One job as the form holds it (from the database or as posted)."""

    name: str = ""
    tools: list[str] = field(default_factory=list)
    classifications: list[str] = field(default_factory=list)
    members: list[int] = field(default_factory=list)

    def spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tools": self.tools,
            "classifications": self.classifications,
        }


@require_http_methods(["GET", "POST"])
@login_required
def project_jobs(request: AuthenticatedHttpRequest, project_id: int) -> HttpResponse:
    project = access.get_project_for_user(request.user, project_id)
    if request.method == "GET":
        return _page(request, project, _saved_rows(project))
    if not access.is_org_admin(request.user, project.organization_id):
        raise PermissionDenied("Only admins edit the labeling jobs")
    try:
        rows = _posted_rows(request.POST)
    except JobSpecError as exc:
        saved = _saved_rows(project)
        return _page(request, project, saved, error=str(exc), status=400)
    try:
        _save(project, rows)
    except JobSpecError as exc:
        return _page(request, project, rows, error=str(exc), status=400)
    count = len(rows)
    notice = f"Saved {count} job(s)." if count else "No jobs: tasks label as before."
    return _page(request, project, _saved_rows(project), notice=notice)


def _save(project: Project, rows: list[JobRow]) -> None:
    """The jobs and their members, all or nothing."""
    with transaction.atomic():
        jobs = project_set_jobs(project, [row.spec() for row in rows])
        for job, row in zip(jobs, rows, strict=True):
            users = list(
                User.objects.filter(
                    pk__in=row.members,
                    memberships__organization_id=project.organization_id,
                )
            )
            if len(users) != len(set(row.members)):
                raise JobSpecError(
                    f"Job “{row.name}”: only members of this organization can "
                    "be assigned."
                )
            job_set_members(job, users)


def _saved_rows(project: Project) -> list[JobRow]:
    return [
        JobRow(
            name=job.name,
            tools=list(job.tools or []),
            classifications=list(job.classifications or []),
            members=[u.pk for u in job.members.all()],
        )
        for job in project.jobs.prefetch_related("members")
    ]


def _posted_rows(post: QueryDict) -> list[JobRow]:
    """The form's rows (name-N, tools-N, classifications-N, members-N,
    delete-N for N < rows); ticked Delete and blank rows are left out."""
    # The form always says how many rows it has: without a valid count the
    # post is refused, not read as "no jobs" (which would delete them all).
    text = post.get("rows", "")
    valid = text.isascii() and text.isdigit() and len(text) <= 3
    if not valid or int(text) > MAX_JOBS + 1:
        raise JobSpecError(
            f"The form must say how many rows it has (rows, 0 to {MAX_JOBS + 1})."
        )
    count = int(text)
    rows = []
    for i in range(count):
        row = JobRow(
            name=post.get(f"name-{i}", "").strip(),
            tools=post.getlist(f"tools-{i}"),
            classifications=post.getlist(f"classifications-{i}"),
            members=parse_ids(post.getlist(f"members-{i}")),
        )
        if len(row.members) != len(post.getlist(f"members-{i}")):
            raise JobSpecError(f"Row {i + 1}: members are given by their user ids.")
        if post.get(f"delete-{i}") or not (
            row.name or row.tools or row.classifications
        ):
            continue
        rows.append(row)
    return rows


def _page(
    request: HttpRequest,
    project: Project,
    rows: list[JobRow],
    *,
    notice: str = "",
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    is_admin = access.is_org_admin(request.user, project.organization_id)
    shown = rows + [JobRow()] if is_admin and len(rows) < MAX_JOBS else rows
    ontology = project.ontology or {}
    owners = {
        schema_id: row.name
        for row in rows
        for schema_id in row.tools + row.classifications
    }
    members = (
        User.objects.filter(memberships__organization_id=project.organization_id)
        .order_by("username")
        .distinct()
    )
    context = {
        "project": project,
        "is_admin": is_admin,
        "rows": [
            {
                "index": i,
                "name": row.name,
                "tools": _choices(ontology.get("tools"), row.tools, row.name, owners),
                "classifications": _choices(
                    ontology.get("classifications"),
                    row.classifications,
                    row.name,
                    owners,
                ),
                "members": [
                    {
                        "value": u.pk,
                        "label": u.get_username(),
                        "checked": u.pk in row.members,
                    }
                    for u in members
                ],
            }
            for i, row in enumerate(shown)
        ],
        "row_count": len(shown),
        "notice": notice,
        "error": error,
    }
    template = page_or_partial(request, PAGE, "jobs-section")
    # htmx swaps only 2xx answers: a refusal it shows in place comes as 200.
    if getattr(request, "htmx", False):
        status = 200
    return render(request, template, context, status=status)


def _choices(
    entries: Any, chosen: list[str], job: str, owners: dict[str, str]
) -> list[dict[str, Any]]:
    """Checkboxes of ontology entries for one job's row: ticked when the job
    has the entry; marked taken (and disabled) when another job has it."""
    choices = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("schemaId"), str):
            continue
        schema_id = entry["schemaId"]
        owner = owners.get(schema_id, "")
        choices.append(
            {
                "value": schema_id,
                "label": entry.get("title") or schema_id,
                "kind": entry.get("tool", ""),
                "color": entry.get("color", ""),
                "checked": schema_id in chosen,
                "taken_by": owner if owner and owner != job else "",
            }
        )
    return choices


# --- the task page: Submit one job's part ------------------------------------------
@require_POST
@login_required
def task_job_submit(
    request: AuthenticatedHttpRequest, project_id: int, task_id: int, job_id: int
) -> HttpResponse:
    """Submit the job's part of the canvas (lifecycle.task_submit keeps only
    the job's tools and classifications and refuses users outside the job).
    Done, the whole page loads again: the canvas then shows the job's part as
    submitted, or the next job of the user's that waits."""
    project = access.get_project_for_user(request.user, project_id)
    task = access.get_task_for_user(request.user, task_id, project)
    job = project.jobs.filter(pk=job_id).first()
    if job is None:
        raise Http404("No such labeling job")
    try:
        answer = selectors.answer_from_text(request.POST.get("answer", ""))
        task_submit(task, user=request.user, answer=answer, job=job)
    except TaskPermissionError as exc:
        return _refused(request, task, str(exc), status=403)
    except TaskActionError as exc:
        return _refused(request, task, str(exc), status=409)
    if getattr(request, "htmx", False):
        return HttpResponseClientRefresh()
    return redirect("web:task-detail", project_id=project.pk, task_id=task.pk)


def _refused(
    request: AuthenticatedHttpRequest, task: Task, error: str, *, status: int
) -> HttpResponse:
    """The task panel with the refusal (htmx swaps it in place, so 200), or
    the whole task page with the refusal's status."""
    task.refresh_from_db()
    context = {
        **selectors.task_page(task),
        "action_error": error,
        "may_review": may_review(request.user, task.project.organization_id),
    }
    if getattr(request, "htmx", False):
        return render(request, "projects/task_detail.html#task-panel", context)
    if task.asset.kind == Asset.Kind.IMAGE:
        context |= canvas_context(task)
    return render(request, "projects/task_detail.html", context, status=status)
