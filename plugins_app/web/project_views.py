"""The home page, a project's page, an asset's, and a task's page with its
submit and review actions."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from plugins_app.runs import selectors
from plugins_app.runs.answer_ledger import runs_touching_asset
from plugins_app.web import access
from plugins_app.web.canvas import canvas_context
from plugins_app.web.files import asset_file_response
from plugins_app.web.markdown import markdown_document
from plugins_app.web.partials import page_or_partial
from plugins_app.web.request_types import AuthenticatedHttpRequest
from plugins_app.workspace.lifecycle import (
    TaskActionError,
    TaskPermissionError,
    may_review,
    task_review,
    task_submit,
)
from plugins_app.workspace.models import Asset, Storage, Task


@require_GET
@login_required
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(
        request,
        "web/home.html",
        {
            "projects": access.visible_projects(request.user).select_related(
                "organization"
            ),
            "recent_runs": access.visible_runs(request.user).select_related(
                "plugin", "project", "created_by"
            )[:10],
        },
    )


# --- projects and assets --------------------------------------------------------
@require_GET
@login_required
def project_detail(request: AuthenticatedHttpRequest, project_id: int) -> HttpResponse:
    project = access.get_project_for_user(request.user, project_id)
    return render(
        request,
        "projects/project_detail.html",
        {
            "project": project,
            "assets": project.assets.select_related("task").prefetch_related("batches"),
            "batches": project.batches.annotate(size=Count("assets")),
            "storages": Storage.usable_by(project),
            "plugins": selectors.plugins_with_liveness(
                project.plugins.filter(organization=project.organization)
            ),
            "triggers": project.plugin_triggers.select_related("plugin"),
        },
    )


@require_GET
@login_required
def asset_detail(
    request: AuthenticatedHttpRequest, project_id: int, asset_id: int
) -> HttpResponse:
    project = access.get_project_for_user(request.user, project_id)
    asset = access.get_asset_for_user(request.user, project, asset_id)
    return render(
        request,
        "projects/asset_detail.html",
        {
            "project": project,
            "asset": asset,
            "markdown_doc": markdown_document(asset.content)
            if asset.kind == Asset.Kind.MARKDOWN
            else "",
            "plugins": selectors.plugins_with_liveness(
                project.plugins.filter(type="model")
            ),
            "runs": runs_touching_asset(asset)[:10],
            **_canvas(asset.task),
        },
    )


@require_GET
@login_required
def asset_image(
    request: AuthenticatedHttpRequest, project_id: int, asset_id: int
) -> HttpResponse:
    project = access.get_project_for_user(request.user, project_id)
    return asset_file_response(
        access.get_asset_for_user(request.user, project, asset_id)
    )


# --- tasks: submit and review ---------------------------------------------------
@require_GET
@login_required
def task_detail(
    request: AuthenticatedHttpRequest, project_id: int, task_id: int
) -> HttpResponse:
    project = access.get_project_for_user(request.user, project_id)
    task = access.get_task_for_user(request.user, task_id, project)
    context = _task_context(request, task)
    # The live section's poll names the stage it shows: if the task moved
    # since, the action panel comes along (out of band).
    seen_stage = request.GET.get("stage")
    context["panel_oob"] = (
        getattr(request, "htmx", False)
        and seen_stage is not None
        and seen_stage != task.stage
    )
    if not getattr(request, "htmx", False):
        # The canvas is on the full page only, not in the polled partials.
        context.update(_canvas(task))
    template = page_or_partial(request, "projects/task_detail.html", "task-live")
    return render(request, template, context)


@require_POST
@login_required
def task_submit_view(
    request: AuthenticatedHttpRequest, project_id: int, task_id: int
) -> HttpResponse:
    project = access.get_project_for_user(request.user, project_id)
    task = access.get_task_for_user(request.user, task_id, project)
    try:
        answer = selectors.answer_from_text(request.POST.get("answer", ""))
        task = task_submit(task, user=request.user, answer=answer)
    except TaskActionError as exc:
        return _task_panel(request, task, error=str(exc))
    return _task_panel(request, task)


@require_POST
@login_required
def task_review_view(
    request: AuthenticatedHttpRequest, project_id: int, task_id: int
) -> HttpResponse:
    project = access.get_project_for_user(request.user, project_id)
    task = access.get_task_for_user(request.user, task_id, project)
    verdict = request.POST.get("verdict", "")
    try:
        if verdict not in ("accept", "reject"):
            raise TaskActionError("Choose Accept or Reject.")
        task = task_review(
            task,
            user=request.user,
            accept=verdict == "accept",
            reason=request.POST.get("reason", ""),
        )
    except TaskPermissionError as exc:
        return _task_panel(request, task, error=str(exc), refused_status=403)
    except TaskActionError as exc:
        return _task_panel(request, task, error=str(exc))
    return _task_panel(request, task)


def _task_context(
    request: AuthenticatedHttpRequest, task: Task, *, error: str = ""
) -> dict[str, Any]:
    return {
        **selectors.task_page(task),
        "action_error": error,
        "may_review": may_review(request.user, task.project.organization_id),
    }


def _canvas(task: Task) -> dict[str, Any]:
    """The review canvas's context: images only (other assets keep the JSON box)."""
    return canvas_context(task) if task.asset.kind == Asset.Kind.IMAGE else {}


def _task_panel(
    request: AuthenticatedHttpRequest,
    task: Task,
    *,
    error: str = "",
    refused_status: int = 409,
) -> HttpResponse:
    """The task's panel for htmx (a refusal shown in place, as 200 so htmx swaps
    it); a plain form post goes back to the task page, or gets the refusal's
    status (409, or 403 for a role that may not act)."""
    task.refresh_from_db()
    if not getattr(request, "htmx", False):
        if not error:
            return redirect(
                "web:task-detail", project_id=task.project_id, task_id=task.pk
            )
        context = _task_context(request, task, error=error) | _canvas(task)
        return render(
            request, "projects/task_detail.html", context, status=refused_status
        )
    context = {**_task_context(request, task, error=error), "live_oob": True}
    return render(request, "projects/task_detail.html#task-panel", context)
