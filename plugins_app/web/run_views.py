"""Run pages: the Run dialog (with presets and the Preview), the run list, a
run's page and its actions (cancel, retry, undo) as htmx targets."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from plugins_app.exports.uploads import run_files
from plugins_app.plugins.models import Plugin
from plugins_app.plugins.presets import PresetError, preset_problems, preset_save
from plugins_app.runs import selectors
from plugins_app.runs.answer_ledger import run_writes
from plugins_app.runs.creation import RunRequest, RunRequestError, run_create
from plugins_app.runs.gallery import run_gallery
from plugins_app.runs.ledger import RunActionError, run_cancel, run_retry
from plugins_app.runs.models import Run
from plugins_app.runs.undo import UndoPermissionError, UndoResult, may_undo, run_undo
from plugins_app.web import access, asset_table
from plugins_app.web.dialogs import dialog_done, render_dialog
from plugins_app.web.files import export_file_response
from plugins_app.web.forms import RunForm
from plugins_app.web.partials import page_or_partial
from plugins_app.web.request_types import AuthenticatedHttpRequest
from plugins_app.web.run_filters import unknown_status_message
from plugins_app.workspace.models import Project

RUNS_PER_PAGE = 25


@require_http_methods(["GET", "POST"])
@login_required
def run_dialog(
    request: AuthenticatedHttpRequest, project_id: int, plugin_id: int
) -> HttpResponse:
    project = access.get_project_for_user(request.user, project_id)
    plugin = access.get_plugin_for_user(request.user, plugin_id)
    data = request.POST if request.method == "POST" else request.GET
    preset = access.get_preset(project, plugin, data.get("preset"))
    scope = data.get("external_ids") or request.GET.get("asset", "")
    # The asset table's saved filter travels as one small JSON field.
    initial = {"external_ids": scope, "selection": data.get("selection", "")}
    form = RunForm(
        request.POST or None,
        request.FILES or None,
        plugin=plugin,
        project=project,
        preset=preset,
        initial=initial,
        may_replace=access.is_org_admin(request.user, project.organization_id),
    )
    if request.method == "POST" and data.get("action") == "save_preset":
        return _save_preset(request, form, project, plugin, initial)
    if request.method == "POST" and data.get("action") == "preview":
        if not form.is_valid():
            return asset_table.preview_refused(request, form.errors)
        return asset_table.preview_start(
            request, _dialog_run_request(request, form, project, plugin)
        )
    if request.method == "POST" and form.is_valid():
        try:
            run = run_create(_dialog_run_request(request, form, project, plugin))
        except RunRequestError as exc:
            _add_errors(form, exc.errors)
        else:
            return dialog_done(request, reverse("web:run-detail", args=[run.pk]))
    return _render_run_dialog(request, form, project, plugin)


def _dialog_run_request(
    request: AuthenticatedHttpRequest, form: RunForm, project: Project, plugin: Plugin
) -> RunRequest:
    """What a valid Run dialog asks for (its Run and its Preview)."""
    return RunRequest(
        plugin=plugin,
        project=project,
        user=request.user,
        class_mapping=form.class_mapping(),
        config_json=form.cleaned_data["config_json"],
        external_ids=form.external_id_list(),
        batch_ids=[b.pk for b in form.cleaned_data.get("batches", [])],
        inputs=form.run_inputs(),
        replace_submitted=form.cleaned_data.get("replace_submitted", False),
        retry_timeouts=form.cleaned_data.get("retry_timeouts", False),
        selection=form.cleaned_data.get("selection"),
    )


def _save_preset(
    request: AuthenticatedHttpRequest,
    form: RunForm,
    project: Project,
    plugin: Plugin,
    initial: dict[str, Any],
) -> HttpResponse:
    """Save the dialog's mapping and config as a named preset, then show the
    dialog again with that preset chosen (what the user typed kept)."""
    if form.is_valid():
        try:
            preset = preset_save(
                project=project,
                plugin=plugin,
                name=form.cleaned_data.get("preset_name", ""),
                class_mapping=form.class_mapping(),
                config_json=form.cleaned_data["config_json"],
                user=request.user,
            )
        except PresetError as exc:
            form.add_error("preset_name", str(exc))
        else:
            fresh = RunForm(
                plugin=plugin,
                project=project,
                preset=preset,
                initial=initial,
                may_replace=form.may_replace,
            )
            notice = f"Saved preset “{preset.name}”."
            return _render_run_dialog(request, fresh, project, plugin, notice=notice)
    return _render_run_dialog(request, form, project, plugin)


def _render_run_dialog(
    request: HttpRequest,
    form: RunForm,
    project: Project,
    plugin: Plugin,
    *,
    notice: str = "",
) -> HttpResponse:
    problems = (
        preset_problems(form.chosen_preset, project) if form.chosen_preset else []
    )
    return render_dialog(
        request,
        "runs/run_dialog.html",
        {
            "form": form,
            "plugin": plugin,
            "project": project,
            "notice": notice,
            "preset_problems": problems,
        },
        title=f"Run {plugin.name}",
        back=reverse("web:project-detail", args=[project.pk]),
    )


def _add_errors(form: RunForm, errors: dict[str, list[str]]) -> None:
    for field, messages in errors.items():
        target = None if field in ("__all__", "mapping") else field
        for message in messages:
            form.add_error(target if target in form.fields else None, message)


@require_GET
@login_required
def run_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    runs = access.visible_runs(request.user).select_related(
        "plugin", "project", "created_by"
    )
    filters = selectors.RunFilters.from_query(request.GET)
    status_error = unknown_status_message(request.GET.get("status", ""))
    page = Paginator(filters.apply(runs), RUNS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context: dict[str, Any] = {
        "page": page,
        "filters": filters,
        "status_error": status_error,
        # An empty table then says "no runs match", with a way out.
        "run_filters_active": bool(filters.query_string() or status_error),
        "projects": access.visible_projects(request.user),
        "plugins": access.visible_plugins(request.user),
        "statuses": Run.Status.choices,
        "query": filters.query_string(),
    }
    return render(
        request,
        page_or_partial(request, "runs/run_list.html", "run-table"),
        context,
        status=400 if status_error else 200,
    )


@require_GET
@login_required
def run_detail(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    run = access.get_run_for_user(request.user, run_id)
    gallery = run_gallery(run, request.GET.get("page", 1))
    if getattr(request, "htmx", False) and "page" in request.GET:
        # The gallery's pager: just the asked page of assets.
        context = {"run": run, "gallery": gallery}
        return render(request, "runs/run_detail.html#run-gallery", context)
    lines = list(run.log_lines.all())
    return render(
        request,
        "runs/run_detail.html",
        {
            "run": run,
            "progress": selectors.run_progress(run),
            "lines": lines,
            # The websocket catches the page up on anything logged after these.
            "last_line_id": lines[-1].pk if lines else 0,
            "gallery": gallery,
            "export_files": run_files(run),
            "writes": run_writes(run),
            "may_undo": may_undo(request.user, run),
        },
    )


@require_GET
@login_required
def run_export_file(
    request: AuthenticatedHttpRequest, run_id: int, upload_id: int
) -> FileResponse:
    """An export plugin's file, for members of the run's organization only."""
    run = access.get_run_for_user(request.user, run_id)
    upload = get_object_or_404(
        run.uploads.filter(uploaded_at__isnull=False), pk=upload_id
    )
    return export_file_response(upload.file, filename=upload.name)


@require_POST
@login_required
def run_cancel_view(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    run = access.get_run_for_user(request.user, run_id)
    return _run_live(request, run_cancel(run, by=request.user))


@require_POST
@login_required
def run_retry_view(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    run = access.get_run_for_user(request.user, run_id)
    try:
        run = run_retry(run, by=request.user)
    except RunActionError as exc:
        # htmx swaps only 2xx answers: show the refusal in place.
        status = 200 if getattr(request, "htmx", False) else 409
        return _run_live(request, run, error=str(exc), status=status)
    return _run_live(request, run)


@require_POST
@login_required
def run_undo_view(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    """Undo the run's answer writes (admins; the button asks to confirm)."""
    run = access.get_run_for_user(request.user, run_id)
    try:
        result = run_undo(run, by=request.user)
    except UndoPermissionError as exc:
        raise PermissionDenied(str(exc)) from exc
    except RunActionError as exc:
        status = 200 if getattr(request, "htmx", False) else 409
        return _run_writes(request, run, error=str(exc), status=status)
    return _run_writes(request, result.run, undo=result)


@require_GET
@login_required
def run_writes_view(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    """The run's answers section on its own: the run page asks for it while the
    run works, so what it wrote shows up without a reload."""
    run = access.get_run_for_user(request.user, run_id)
    if not getattr(request, "htmx", False):
        return redirect("web:run-detail", run_id=run.pk)
    return _run_writes(request, run)


def _run_writes(
    request: AuthenticatedHttpRequest,
    run: Run,
    *,
    error: str = "",
    status: int = 200,
    undo: UndoResult | None = None,
) -> HttpResponse:
    """The run's answers section (what it wrote, skipped, undid), as the Undo
    button's htmx target; a plain form post goes back to the run page."""
    if not getattr(request, "htmx", False) and not error:
        return redirect("web:run-detail", run_id=run.pk)
    context = {
        "run": run,
        "writes": run_writes(run),
        "may_undo": may_undo(request.user, run),
        "undo": undo,
        "undo_error": error,
    }
    return render(request, "runs/run_detail.html#run-writes", context, status=status)


def _run_live(
    request: HttpRequest, run: Run, *, error: str = "", status: int = 200
) -> HttpResponse:
    """The run's live section, as the buttons' htmx target; a plain form post
    goes back to the run page."""
    if not getattr(request, "htmx", False) and not error:
        return redirect("web:run-detail", run_id=run.pk)
    context = {
        "run": run,
        "progress": selectors.run_progress(run),
        "action_error": error,
        "export_files": run_files(run),
    }
    return render(request, "runs/run_detail.html#run-live", context, status=status)
