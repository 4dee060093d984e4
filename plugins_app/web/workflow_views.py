"""The project's workflow section (its Plugin stages, the tasks in them and
their runs) and its plugin setting presets. The project page loads the section
with htmx; every action answers with the section re-rendered."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from plugins_app.inputs import parse_id
from plugins_app.plugins import stages
from plugins_app.plugins.models import PluginType, Preset
from plugins_app.plugins.presets import PresetPermissionError, presets_with_problems
from plugins_app.plugins.presets import preset_delete as preset_delete_service
from plugins_app.runs import selectors
from plugins_app.runs.ledger import RunActionError
from plugins_app.runs.workflow import workflow_stage_retry
from plugins_app.web import access
from plugins_app.web.dialogs import render_dialog
from plugins_app.web.request_types import AuthenticatedHttpRequest
from plugins_app.workspace import lifecycle
from plugins_app.workspace.models import Project

SECTION = "projects/workflow.html"


@require_GET
@login_required
def project_workflow(
    request: AuthenticatedHttpRequest, project_id: int
) -> HttpResponse:
    project = access.get_project_for_user(request.user, project_id)
    return _section(request, project)


@require_POST
@login_required
def workflow_stage_add(
    request: AuthenticatedHttpRequest, project_id: int
) -> HttpResponse:
    project = _admin_project(request, project_id)
    try:
        stages.workflow_plugin_stage_add(
            project,
            name=request.POST.get("name", ""),
            plugin_id=_int(request.POST.get("plugin")),
            preset_id=_int(request.POST.get("preset")),
            overwrite=request.POST.get("overwrite") == "on",
        )
    except lifecycle.TaskActionError as exc:
        return _section(request, project, error=str(exc))
    return _section(request, project, notice="Plugin stage added.")


@require_POST
@login_required
def labels_per_asset_set(
    request: AuthenticatedHttpRequest, project_id: int
) -> HttpResponse:
    project = _admin_project(request, project_id)
    try:
        lifecycle.project_set_labels_per_asset(
            project, request.POST.get("labels_per_asset", "")
        )
    except lifecycle.TaskActionError as exc:
        return _section(request, project, error=str(exc))
    n = project.labels_per_asset
    return _section(request, project, notice=f"Each asset now needs {n} label(s).")


@require_POST
@login_required
def workflow_stage_remove(
    request: AuthenticatedHttpRequest, project_id: int
) -> HttpResponse:
    project = _admin_project(request, project_id)
    try:
        lifecycle.workflow_stage_remove(project, name=request.POST.get("stage", ""))
    except lifecycle.TaskActionError as exc:
        return _section(request, project, error=str(exc))
    return _section(request, project, notice="Stage removed.")


@require_POST
@login_required
def workflow_stage_retry_view(
    request: AuthenticatedHttpRequest, project_id: int
) -> HttpResponse:
    """Retry one task, every failed task of a stage, or (mode=all) every task in
    the stage with no run in flight."""
    project = access.get_project_for_user(request.user, project_id)
    task = _int(request.POST.get("task"))
    try:
        count = workflow_stage_retry(
            project,
            request.POST.get("stage", ""),
            task_ids=[task] if task else None,
            only_failed=request.POST.get("mode") != "all",
        )
    except RunActionError as exc:
        return _section(request, project, error=str(exc))
    notice = f"Sent {count} task(s) to the plugin again." if count else ""
    error = "" if count else "No task to send: none failed, or all are in flight."
    return _section(request, project, notice=notice, error=error)


@require_POST
@login_required
def preset_delete(
    request: AuthenticatedHttpRequest, project_id: int, preset_id: int
) -> HttpResponse:
    project = access.get_project_for_user(request.user, project_id)
    preset = Preset.objects.filter(pk=preset_id, project=project).first()
    if preset is None:
        return _section(request, project, error="No such preset.", status=404)
    try:
        preset_delete_service(preset=preset, user=request.user)
    except PresetPermissionError as exc:
        return _section(request, project, error=str(exc), status=403)
    return _section(request, project, notice=f"Deleted preset “{preset.name}”.")


def _admin_project(request: HttpRequest, project_id: int) -> Project:
    project = access.get_project_for_user(request.user, project_id)
    if not access.is_org_admin(request.user, project.organization_id):
        raise PermissionDenied("Only admins edit the workflow")
    return project


def _int(value: str | None) -> int | None:
    return parse_id(value)


def _section(
    request: HttpRequest,
    project: Project,
    *,
    notice: str = "",
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    if request.method == "POST" and not getattr(request, "htmx", False):
        back = request.POST.get("next", "")
        if back and url_has_allowed_host_and_scheme(back, allowed_hosts=None):
            return redirect(back)  # the task page's Retry
        return redirect("web:project-detail", project_id=project.pk)
    presets = Preset.objects.filter(project=project).select_related(
        "plugin", "created_by"
    )
    model_plugins = project.plugins.filter(
        organization=project.organization, type=PluginType.MODEL
    )
    context = {
        "project": project,
        "stages": selectors.workflow_overview(project),
        "presets": presets_with_problems(presets),
        "model_plugins": selectors.plugins_with_liveness(model_plugins),
        "is_admin": access.is_org_admin(request.user, project.organization_id),
        "notice": notice,
        "error": error,
    }
    # Opened by its URL, the section is a page in the layout, not a fragment.
    return render_dialog(
        request,
        SECTION,
        context,
        title=f"Workflow of {project.name}",
        back=reverse("web:project-detail", args=[project.pk]),
        status=status,
    )
