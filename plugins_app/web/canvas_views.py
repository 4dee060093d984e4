"""The review canvas's own endpoints: its state as JSON (read again when a run
from the editor has answered) and *Run from the editor*. Saving the canvas is
the task page's Submit (views.task_submit_view → lifecycle.task_submit): the
canvas only fills the form's answer, so it is checked and recorded like every
other answer."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from plugins_app.inputs import json_loads_bounded
from plugins_app.plugins.presets import suggested_mapping
from plugins_app.runs.creation import RunRequest, RunRequestError, run_create
from plugins_app.web import access
from plugins_app.web.canvas import (
    canvas_for_job,
    canvas_state,
    model_plugins,
    run_outcome,
)
from plugins_app.web.job_state import task_jobs
from plugins_app.web.request_types import AuthenticatedHttpRequest


@require_GET
@login_required
def canvas_state_view(
    request: AuthenticatedHttpRequest, project_id: int, task_id: int
) -> JsonResponse:
    """The canvas's state; with ?run=<id>, also how that run is doing. With
    labeling jobs, as the user's job (?job=<id> among theirs) sees it."""
    project = access.get_project_for_user(request.user, project_id)
    task = access.get_task_for_user(request.user, task_id, project)
    jobs = task_jobs(request.user, task, request.GET.get("job"))
    state = canvas_for_job(canvas_state(task), jobs.current if jobs else None)
    run_id = request.GET.get("run", "")
    if run_id:
        if not run_id.isdigit():
            return JsonResponse({"error": "run must be a run id."}, status=400)
        run = access.get_run_for_user(request.user, int(run_id))
        if run.project_id != project.pk:
            raise Http404("No such run")
        state["run"] = run_outcome(run, task)
    return JsonResponse(state)


@require_POST
@login_required
def canvas_run(
    request: AuthenticatedHttpRequest, project_id: int, task_id: int
) -> JsonResponse:
    """Run a Model plugin on this task's asset with a preset of the project
    (its saved mapping and config), a one-time mapping from the menu, or the
    mapping the Run dialog suggests: the same run_create, with the same
    checks, as the Run dialog."""
    project = access.get_project_for_user(request.user, project_id)
    task = access.get_task_for_user(request.user, task_id, project)
    plugin_id = request.POST.get("plugin", "")
    if not plugin_id.isdigit():
        return JsonResponse({"error": "Choose a plugin."}, status=400)
    plugin = model_plugins(task).filter(pk=int(plugin_id)).first()
    if plugin is None:
        return JsonResponse(
            {"error": "That is not a Model plugin of this project."}, status=400
        )
    preset = access.get_preset(project, plugin, request.POST.get("preset"))
    mapping = suggested_mapping(plugin, project)
    if "mapping" in request.POST:
        if preset is not None:
            return JsonResponse(
                {"error": "Choose a preset or a one-time mapping, not both."},
                status=400,
            )
        try:
            mapping = _one_time_mapping(request.POST["mapping"])
        except ValueError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
    try:
        run = run_create(
            RunRequest(
                plugin=plugin,
                project=project,
                user=request.user,
                class_mapping=preset.class_mapping if preset else mapping,
                config_json=preset.config_json if preset else plugin.default_config,
                external_ids=[task.asset.external_id],
                batch_ids=[],
            )
        )
    except RunRequestError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse({"run": run_outcome(run, task)}, status=201)


def _one_time_mapping(text: str) -> dict[str, str]:
    """The menu's one-time mapping, JSON {model class: schemaId or ""};
    run_create checks the classes and labels themselves."""
    value = json_loads_bounded(text, what="The mapping")
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(
            'The mapping must be a JSON object like {"face": "face-box"} '
            "(model class to label schemaId)."
        )
    return value
