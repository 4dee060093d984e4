"""Parallel labeling on pages whose views live elsewhere (the task page, the
project page): these tags read the signed-in user and ?job= from the request
in the context, so the same template shows the right job whichever view
renders it (web/job_state.py says what is shown)."""

from __future__ import annotations

from typing import Any

from django import template

from plugins_app.web.canvas import canvas_for_job
from plugins_app.web.job_state import TaskJobs, task_jobs, waiting_jobs_by_task
from plugins_app.workspace.models import Project, Task

register = template.Library()


def _request_user_and_job(context: template.Context) -> tuple[Any, object]:
    request = context.get("request")
    if request is None:
        return None, None
    return request.user, request.GET.get("job")


@register.simple_tag(takes_context=True)
def labeling_jobs(context: template.Context, task: Task) -> TaskJobs | None:
    """`{% labeling_jobs task as jobs %}`: None without labeling jobs."""
    user, requested = _request_user_and_job(context)
    if user is None:
        return None
    # The task page asks three times (canvas, panel, live section): computed
    # once per request.
    cache = context["request"].__dict__.setdefault("_labeling_jobs", {})
    key = (task.pk, task.stage, requested)
    if key not in cache:
        cache[key] = task_jobs(user, task, requested)
    return cache[key]


@register.simple_tag
def canvas_for_user(state: dict[str, Any], jobs: TaskJobs | None) -> dict[str, Any]:
    """`{% canvas_for_user canvas jobs as canvas %}`: the canvas as the user's
    current job labels it (unchanged without one)."""
    return canvas_for_job(state, jobs.current if jobs else None)


@register.filter
def drawable(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The labels the canvas draws with: boxes and polygons of the job."""
    return [t for t in tools if t.get("editable") and t.get("inJob", True)]


@register.simple_tag(takes_context=True)
def waiting_jobs(context: template.Context, project: Project) -> dict[int, list[str]]:
    """`{% waiting_jobs project as waiting %}`: task id → the user's jobs
    still to label on it."""
    user, _ = _request_user_and_job(context)
    return waiting_jobs_by_task(user, project) if user is not None else {}


@register.filter
def jobs_for(waiting: dict[int, list[str]], task_id: int) -> list[str]:
    return waiting.get(task_id, []) if isinstance(waiting, dict) else []
