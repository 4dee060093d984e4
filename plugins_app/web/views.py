"""Dashboard views: thin, each an access helper, a form, one service call and a
render. htmx requests get the named partial of the same template."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from plugins_app.exports.services import run_files
from plugins_app.plugins.models import Plugin, PluginInstance
from plugins_app.plugins.presets import PresetError, preset_problems, preset_save
from plugins_app.plugins.services import (
    PluginCredentials,
    plugin_create,
    plugin_rotate_secret,
)
from plugins_app.plugins.triggers import plugin_set_triggers
from plugins_app.runs import selectors
from plugins_app.runs.answer_ledger import run_writes, runs_touching_asset
from plugins_app.runs.creation import RunRequest, RunRequestError, run_create
from plugins_app.runs.gallery import run_gallery
from plugins_app.runs.ledger import RunActionError, run_cancel, run_retry
from plugins_app.runs.models import Run
from plugins_app.runs.tasks import probe_connector
from plugins_app.runs.undo import UndoPermissionError, UndoResult, may_undo, run_undo
from plugins_app.web import access, asset_table
from plugins_app.web.canvas import canvas_context
from plugins_app.web.dialogs import dialog_done, render_dialog
from plugins_app.web.files import asset_file_response, export_file_response
from plugins_app.web.forms import PluginForm, RunForm
from plugins_app.web.markdown import markdown_document
from plugins_app.web.request_types import AuthenticatedHttpRequest
from plugins_app.web.run_filters import unknown_status_message
from plugins_app.workspace.forms import StorageForm
from plugins_app.workspace.lifecycle import (
    TaskActionError,
    TaskPermissionError,
    may_review,
    task_review,
    task_submit,
)
from plugins_app.workspace.members import MemberError, member_set_role
from plugins_app.workspace.models import (
    Asset,
    Membership,
    Organization,
    Project,
    Storage,
    Task,
)

RUNS_PER_PAGE = 25


def _partial(request: HttpRequest, template: str, partial: str) -> str:
    return f"{template}#{partial}" if getattr(request, "htmx", False) else template


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


# --- plugins --------------------------------------------------------------------
@require_GET
@login_required
def plugin_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    plugins = selectors.plugins_with_liveness(access.visible_plugins(request.user))
    admin_org = access.admin_orgs(request.user).first()
    return render(
        request,
        _partial(request, "plugins/plugin_list.html", "plugin-table"),
        {"plugins": plugins, "can_manage": admin_org is not None},
    )


@require_http_methods(["GET", "POST"])
@login_required
def plugin_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    organization = access.admin_orgs(request.user).first()
    if organization is None:
        raise PermissionDenied("Only admins register plugins")
    form = PluginForm(request.POST or None, organization=organization)
    if request.method == "POST" and form.is_valid():
        try:
            credentials = _plugin_create_from(form, organization)
        except ValidationError as exc:
            # plugin_create checks again (Plugin.clean): a connector's DNS
            # answer may have changed since the form's check a moment ago.
            form.add_error(None, [m for ms in exc.message_dict.values() for m in ms])
        else:
            Plugin.objects.filter(pk=credentials.plugin.pk).update(
                concurrency=form.cleaned_data["concurrency"],
                max_attempts=form.cleaned_data["max_attempts"],
            )
            _save_triggers(credentials.plugin, form)
            return _secret_once(request, credentials.plugin, credentials.secret)
    return render_dialog(
        request,
        "plugins/plugin_list.html#plugin-form",
        {"form": form, "plugin": None},
        title="Register a plugin",
        back=reverse("web:plugin-list"),
    )


def _plugin_create_from(
    form: PluginForm, organization: Organization
) -> PluginCredentials:
    return plugin_create(
        organization=organization,
        name=form.cleaned_data["name"],
        type=form.cleaned_data["type"],
        description=form.cleaned_data["description"],
        class_names=form.cleaned_data["class_names_text"],
        default_config=form.cleaned_data["default_config"],
        timeout_seconds=form.cleaned_data["timeout_seconds"],
        projects=list(form.cleaned_data["projects"]),
        delivery=form.cleaned_data["delivery"],
        connector_url=form.cleaned_data["connector_url"],
        version=form.cleaned_data["version"],
    )


@require_http_methods(["GET", "POST"])
@login_required
def plugin_edit(request: AuthenticatedHttpRequest, plugin_id: int) -> HttpResponse:
    plugin = access.get_admin_plugin_for_user(request.user, plugin_id)
    form = PluginForm(
        request.POST or None, instance=plugin, organization=plugin.organization
    )
    if request.method == "POST" and form.is_valid():
        plugin = form.save(commit=False)
        plugin.class_names = form.cleaned_data["class_names_text"]
        plugin.save()
        form.save_m2m()
        _save_triggers(plugin, form)
        return dialog_done(request, reverse("web:plugin-detail", args=[plugin.pk]))
    return render_dialog(
        request,
        "plugins/plugin_list.html#plugin-form",
        {"form": form, "plugin": plugin},
        title=f"Edit {plugin.name}",
        back=reverse("web:plugin-detail", args=[plugin.pk]),
    )


def _save_triggers(plugin: Plugin, form: PluginForm) -> None:
    plugin_set_triggers(
        plugin,
        projects=list(form.cleaned_data["projects"]),
        event_names=form.cleaned_data["trigger_events"],
    )


@require_POST
@login_required
def plugin_rotate(request: AuthenticatedHttpRequest, plugin_id: int) -> HttpResponse:
    plugin = access.get_admin_plugin_for_user(request.user, plugin_id)
    credentials = plugin_rotate_secret(plugin=plugin)
    return _secret_once(request, plugin, credentials.secret)


def _secret_once(request: HttpRequest, plugin: Plugin, secret: str) -> HttpResponse:
    response = render_dialog(
        request,
        "plugins/plugin_list.html#secret-once",
        {"plugin": plugin, "secret": secret, "host": request.build_absolute_uri("/")},
        title=f"Credentials for {plugin.name}",
    )
    # Nothing may cache the only copy of a secret.
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@login_required
def plugin_probe(request: AuthenticatedHttpRequest, plugin_id: int) -> HttpResponse:
    """Probe a REST connector now (in Celery; the instances table refreshes)."""
    plugin = access.get_admin_plugin_for_user(request.user, plugin_id)
    probe_connector.delay(plugin.pk)
    return HttpResponse("Probe requested; the table below updates in a few seconds.")


@require_GET
@login_required
def plugin_detail(request: AuthenticatedHttpRequest, plugin_id: int) -> HttpResponse:
    plugin = access.get_plugin_for_user(request.user, plugin_id)
    is_admin = access.is_org_admin(request.user, plugin.organization_id)
    return render(
        request,
        _partial(request, "plugins/plugin_detail.html", "instances"),
        {
            "plugin": plugin,
            "is_admin": is_admin,
            "instances": PluginInstance.objects.live().filter(plugin=plugin),
            "failures": plugin.failures.all()[:20] if is_admin else [],
            "runs": plugin.runs.select_related("project", "created_by")[:10],
        },
    )


# --- cloud storages -------------------------------------------------------------
@require_GET
@login_required
def storage_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    # Members who are not admins see that storages exist only on project pages.
    return render(
        request,
        "storages/storage_list.html",
        {
            "storages": access.admin_storages(request.user),
            "can_manage": access.admin_orgs(request.user).exists(),
        },
    )


@require_http_methods(["GET", "POST"])
@login_required
def storage_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    organization = access.admin_orgs(request.user).first()
    if organization is None:
        raise PermissionDenied("Only admins manage storages")
    form = StorageForm(request.POST or None, organization=organization)
    if request.method == "POST" and form.is_valid():
        form.save()
        return dialog_done(request, reverse("web:storage-list"))
    return render_dialog(
        request,
        "storages/storage_list.html#storage-form",
        {"form": form},
        title="Add a cloud storage",
        back=reverse("web:storage-list"),
    )


@require_POST
@login_required
def storage_delete(request: AuthenticatedHttpRequest, storage_id: int) -> HttpResponse:
    access.get_admin_storage_for_user(request.user, storage_id).delete()
    return HttpResponseClientRedirect(reverse("web:storage-list"))


# --- members and roles ------------------------------------------------------------
@require_GET
@login_required
def member_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(request, "members/member_list.html", _members_context(request))


@require_POST
@login_required
def member_role(request: AuthenticatedHttpRequest, membership_id: int) -> HttpResponse:
    membership = access.get_admin_membership_for_user(request.user, membership_id)
    error = ""
    try:
        member_set_role(membership, request.POST.get("role", ""))
    except MemberError as exc:
        error = str(exc)
        membership.refresh_from_db()
    if not getattr(request, "htmx", False):
        if error:
            context = {**_members_context(request), "error": error}
            return render(request, "members/member_list.html", context, status=409)
        return redirect("web:member-list")
    context = {"membership": membership, "roles": Membership.Role.choices}
    return render(
        request,
        "members/member_list.html#member-row",
        {**context, "row_error": error, "row_saved": not error},
    )


def _members_context(request: AuthenticatedHttpRequest) -> dict[str, Any]:
    return {
        "memberships": access.admin_memberships(request.user),
        "mine": Membership.objects.filter(user=request.user).select_related(
            "organization"
        ),
        "roles": Membership.Role.choices,
    }


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
    template = _partial(request, "projects/task_detail.html", "task-live")
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


@require_GET
@login_required
def asset_image(
    request: AuthenticatedHttpRequest, project_id: int, asset_id: int
) -> HttpResponse:
    project = access.get_project_for_user(request.user, project_id)
    return asset_file_response(
        access.get_asset_for_user(request.user, project, asset_id)
    )


# --- runs -------------------------------------------------------------------------
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
        _partial(request, "runs/run_list.html", "run-table"),
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


@require_GET
def root_redirect(request: HttpRequest) -> HttpResponse:
    return redirect("web:home")
