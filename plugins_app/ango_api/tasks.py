"""A task through the run's key: read it; act on it as event plugins do
(issues, requeue, metadata); a workflow job's answer (annotate)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from plugins_app.ango_api.auth import api_key_required, fail, same_project
from plugins_app.ango_api.messages import as_list, json_body, ok
from plugins_app.inputs import parse_id, parse_ids
from plugins_app.runs.models import Run
from plugins_app.runs.workflow import WorkflowAnswerError, workflow_answer
from plugins_app.workspace import lifecycle, workflow
from plugins_app.workspace.models import Task


@require_GET
@api_key_required
def task_detail(request: HttpRequest, run: Run, task_id: str) -> JsonResponse:
    task = _task_of_run_project(run, task_id)
    if task is None:
        return fail("No such task in this project.", 404)
    answer = task.answer or {}
    return ok(
        {
            "task": {
                "_id": str(task.pk),
                "project": str(task.project_id),
                "asset": str(task.asset_id),
                "externalId": task.asset.external_id,
                "stage": task.stage,
                "status": task.status,
                "answer": {
                    "tools": answer.get("tools", []),
                    "classifications": answer.get("classifications", []),
                    "relations": answer.get("relations", []),
                },
                "brushDataUrl": None,
                "metadata": task.metadata,
            }
        }
    )


# --- acting on tasks: issues, requeue, metadata (event plugins) -----------------
def _plugin_label(run: Run) -> str:
    return f"plugin {run.plugin.name}"


def _task_of_run_project(run: Run, task_id: Any) -> Task | None:
    pk = parse_id(str(task_id or ""))
    if pk is None:
        return None
    return Task.objects.filter(pk=pk, project=run.project).first()


@require_POST
@api_key_required
def issue_create(request: HttpRequest, run: Run) -> JsonResponse:
    """`SDK.create_issue`: {"content", "labelTask", "position"?, "objectId"?,
    "page"?, ...} (1.3.22 always sends position as a string, 1.4.x only when
    given). Everything but content and labelTask is kept as the position."""
    body = json_body(request.body)
    if not isinstance(body, dict):
        return fail("The body must be a JSON object.", 400)
    task = _task_of_run_project(run, body.get("labelTask"))
    if task is None:
        return fail("labelTask must be the id of a task of this project.", 404)
    where = {k: v for k, v in body.items() if k not in ("content", "labelTask")}
    try:
        issue = lifecycle.issue_create(
            task,
            content=str(body.get("content") or ""),
            position=where,
            actor_label=_plugin_label(run),
        )
    except lifecycle.TaskActionError as exc:
        return fail(str(exc), 400)
    return ok(
        {
            "issue": {
                "_id": str(issue.pk),
                "content": issue.content,
                "labelTask": str(task.pk),
                "status": issue.status,
                **where,
            }
        }
    )


REQUEUE_FILTERS = ("taskIds", "externalIds", "assetIds", "fromStageIds")
# The SDK's requeue options. The hub has no assignees, and keeps every task's
# history (it is the audit trail): those two are accepted, reported as ignored.
REQUEUE_OPTIONS = ("removeAnnotations", "removeAssignee", "removeStageHistory")
REQUEUE_OPTIONS_IGNORED = ("removeAssignee", "removeStageHistory")


@require_POST
@api_key_required
def requeue_tasks(request: HttpRequest, run: Run, project_id: str) -> JsonResponse:
    """`SDK.requeue_tasks` (1.4.x; under 1.3.22 `sdk.make_request` with the same
    body): {"toStageId", "filters": {taskIds, externalIds, assetIds,
    fromStageIds}, "options"}. Each matching task is sent back to `toStageId`
    (a stage name or id) or, if it is empty, to the first Label stage. At least
    one filter is required: nothing requeues a whole project by accident."""
    if not same_project(run, project_id):
        return fail("This apikey is not valid for that project.", 403)
    body = json_body(request.body)
    if not isinstance(body, dict):
        return fail("The body must be a JSON object.", 400)
    filters = body.get("filters") or {}
    if not isinstance(filters, dict) or not any(
        filters.get(k) for k in REQUEUE_FILTERS
    ):
        return fail(
            "Give at least one filter: " + ", ".join(REQUEUE_FILTERS) + ".", 400
        )
    target = _requeue_stage(run, body.get("toStageId"))
    if target is None:
        return fail(f"No stage {body.get('toStageId')!r} in this project.", 400)
    options = body.get("options") or {}
    if not isinstance(options, dict):
        return fail("options must be an object.", 400)
    if unknown := sorted(set(options) - set(REQUEUE_OPTIONS)):
        known = ", ".join(REQUEUE_OPTIONS)
        return fail(f"Unknown option(s) {', '.join(unknown)}: use {known}.", 400)
    tasks = _requeue_scope(run, filters)
    requeued = []
    with transaction.atomic():  # all the matching tasks, or none
        for task in tasks:
            lifecycle.task_send_back(
                task,
                actor_label=_plugin_label(run),
                reason=str(body.get("reason") or f"Requeued by {_plugin_label(run)}"),
                to_stage=target,
                clear_answer=options.get("removeAnnotations") is True,
                run_id=run.pk,
            )
            requeued.append(str(task.pk))
    ignored = [o for o in REQUEUE_OPTIONS_IGNORED if options.get(o)]
    return ok(
        {"requeued": len(requeued), "tasks": requeued, "toStage": target}
        | ({"ignoredOptions": ignored} if ignored else {})
    )


def _requeue_stage(run: Run, wanted: Any) -> str | None:
    stages = workflow.stages(run.project.workflow)
    if not wanted:
        first = workflow.first_stage_of_type(stages, workflow.LABEL)
        return first["name"] if first else None
    found = next(
        (s for s in stages if str(wanted) in (s.get("name"), str(s.get("id", "")))),
        None,
    )
    return found["name"] if found else None


def _requeue_scope(run: Run, filters: dict[str, Any]) -> QuerySet[Task]:
    tasks = Task.objects.filter(project=run.project).select_related("project")
    if filters.get("taskIds"):
        tasks = tasks.filter(pk__in=parse_ids(map(str, as_list(filters["taskIds"]))))
    if filters.get("assetIds"):
        ids = parse_ids(map(str, as_list(filters["assetIds"])))
        tasks = tasks.filter(asset_id__in=ids)
    if filters.get("externalIds"):
        tasks = tasks.filter(
            asset__external_id__in=map(str, as_list(filters["externalIds"]))
        )
    if filters.get("fromStageIds"):
        tasks = tasks.filter(stage__in=map(str, as_list(filters["fromStageIds"])))
    return tasks.order_by("id")


@require_POST
@api_key_required
def task_metadata(request: HttpRequest, run: Run, task_id: str) -> JsonResponse:
    """A hub endpoint (the SDK has no method for it; call it with
    `sdk.make_request("POST", f"/v2/task/{task_id}/metadata", {"metadata": {...}})`):
    merges the keys into the task's metadata, a key set to null is removed."""
    task = _task_of_run_project(run, task_id)
    if task is None:
        return fail("No such task in this project.", 404)
    body = json_body(request.body)
    values = body.get("metadata") if isinstance(body, dict) else None
    if not isinstance(values, dict):
        return fail('Send {"metadata": {...}}: a JSON object of keys to set.', 400)
    task = lifecycle.task_metadata_update(task, values)
    return ok({"task": {"_id": str(task.pk), "metadata": task.metadata}})


@require_POST
@api_key_required
def annotate(request: HttpRequest, run: Run, task_id: str) -> JsonResponse:
    """The answer of a workflow job (the SDK sends no socket response for those):
    `?nextStage=true&isPlugin=true` (1.4.x) or `?nextStage=true` (1.3.22), body
    `{"answer": {...}, "duration": 0, ...}`."""
    task = _task_of_run_project(run, task_id)
    if task is None:
        return fail("No such task in this project.", 404)
    next_stage = request.GET.get("nextStage", "true").lower() in ("true", "1")
    try:
        data = workflow_answer(
            run=run, task=task, body=json_body(request.body), next_stage=next_stage
        )
    except WorkflowAnswerError as exc:
        return fail(str(exc), exc.status)
    return ok(data)
