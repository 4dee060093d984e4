"""Runs in the JSON API: start one, follow it (status, writes, previews,
logs), cancel, retry, undo."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.http import Http404
from ninja import Router, Schema, Status
from ninja.errors import HttpError
from pydantic import Field

from plugins_app import protocol
from plugins_app.runs import selectors
from plugins_app.runs.answer_ledger import RunWrites, run_writes
from plugins_app.runs.creation import RunRequest, RunRequestError, run_create_items
from plugins_app.runs.ledger import RunActionError, run_cancel, run_retry
from plugins_app.runs.models import Run, WorkItem
from plugins_app.runs.undo import UndoPermissionError, run_undo
from plugins_app.web import access
from plugins_app.web.api.auth import AsyncTokenAuth, TokenAccess, session_auth
from plugins_app.web.api.fields import (
    DbId,
    ErrorOut,
    JsonObject,
    PageNumber,
    page_slice,
)
from plugins_app.web.request_types import AuthenticatedHttpRequest
from plugins_app.web.run_filters import unknown_status_message

router = Router()


class RunIn(Schema):
    plugin_id: DbId
    project_id: DbId
    class_mapping: dict[str, str] = {}
    config_json: str | None = None
    external_ids: list[str] = []
    batch_ids: list[DbId] = []
    # File Explorer: {"storage_id", "folder", "files", "upload"}; Markdown:
    # {"csv_name", "csv_base64", "markdown_text"}; Export: {"stages": [...]}
    # (checked like the Run dialog's).
    inputs: JsonObject = {}
    # Model and Batch Model, admins only: write over answers people submitted
    # or reviewed too (off: those tasks keep their answer and are skipped).
    replace_submitted: bool = False
    # Try a job again after a timeout (off: the first timeout fails it, with
    # the known causes; another instance of the plugin would wait the same).
    retry_timeouts: bool = False
    # Model and Batch Model: the asset table's saved filter instead of
    # external_ids / batch_ids, e.g. {"status": "TODO", "batch": 3} (keys q,
    # batch, stage, status, prelabel_plugin, ids; workspace/selection.py). Any
    # JSON is taken here so that a bad one is a 400 saying what is wrong.
    selection: Any = None
    # Preview: run on the first preview_limit assets of the scope and keep the
    # answers for review (GET /api/runs/{id} `previews`); nothing is written.
    dry_run: bool = False
    preview_limit: int = Field(default=3, ge=1, le=10)


class PreviewOut(Schema):
    external_id: str
    via: str
    answer: dict[str, Any]
    problems: list[str]


class WriteOut(Schema):
    task_id: int
    external_id: str
    outcome: str  # written, skipped, undone, kept (= not undone)
    reason: str


class RunOut(Schema):
    id: int
    status: str
    plugin_id: int
    # The plugin's version when the run was created (plugins/versions.py).
    plugin_version: str
    project_id: int
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str
    items_total: int
    items_done: int
    items_failed: int
    progress_percent: int
    progress_label: str
    reported_progress: int | None
    reported_total: int | None
    assets_total: int
    assets_labeled: int
    items_skipped: int
    replace_submitted: bool
    retry_timeouts: bool
    undone_at: datetime | None
    undone_by: str | None
    # Per task: what the run did to its answer (at most 200 rows, kept first).
    write_counts: dict[str, int]
    writes: list[WriteOut]
    selection: dict[str, Any] | None
    dry_run: bool
    # A dry run's answers, checked and never written (at most 50).
    previews: list[PreviewOut]


class UndoOut(Schema):
    run: RunOut
    message: str
    restored_task_ids: list[int]
    not_undone: list[WriteOut]


class LogLineOut(Schema):
    id: int
    level: str
    message: str
    extra: dict[str, Any]
    created_at: datetime


def run_out(run: Run) -> dict[str, Any]:
    return _run_body(run, selectors.run_progress(run), run_writes(run))


def created_run_out(run: Run, items: list[WorkItem]) -> dict[str, Any]:
    """run_out of a run just created, from what the create holds: its items
    (none answered yet, no answer written) instead of two reads. A Batch
    Model's progress counts labeled tasks and a preview has previews to list:
    those read back as run_out does."""
    if run.dry_run or (run.plugin.type == "batch_model" and run.assets_total):
        return run_out(run)
    rows = [
        (
            item.state,
            item.attempts,
            item.error,
            item.asset.external_id if item.asset else None,
            item.failure,
            item.plugin_version,
        )
        for item in items
    ]
    return _run_body(run, selectors.progress_of(run, rows), RunWrites({}, ()))


def _run_body(
    run: Run, progress: selectors.RunProgress, writes: RunWrites
) -> dict[str, Any]:
    return {
        "id": run.pk,
        "status": run.status,
        "plugin_id": run.plugin_id,
        "plugin_version": run.plugin_version,
        "project_id": run.project_id,
        "created_by": run.created_by.get_username() if run.created_by else None,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "error": run.error,
        "items_total": progress.total,
        "items_done": progress.done,
        "items_failed": progress.failed,
        "progress_percent": progress.percent,
        "progress_label": progress.label,
        "reported_progress": run.reported_progress,
        "reported_total": run.reported_total,
        "assets_total": run.assets_total,
        "assets_labeled": run.assets_labeled,
        "items_skipped": progress.skipped,
        "replace_submitted": run.replace_submitted,
        "retry_timeouts": bool((run.inputs or {}).get("retry_timeouts")),
        "undone_at": run.undone_at,
        "undone_by": run.undone_by.get_username() if run.undone_by else None,
        "write_counts": writes.counts,
        "writes": [
            {
                "task_id": w.task_id,
                "external_id": w.external_id,
                "outcome": w.outcome,
                "reason": w.reason,
            }
            for w in writes.rows
        ],
        "selection": run.selection,
        "dry_run": run.dry_run,
        "previews": [
            {
                "external_id": p.asset.external_id,
                "via": p.via,
                "answer": p.answer,
                "problems": p.problems,
            }
            for p in (run.previews.select_related("asset")[:50] if run.dry_run else [])
        ],
    }


@router.post(
    "/runs",
    response={201: RunOut, 400: ErrorOut, 403: ErrorOut},
    auth=[AsyncTokenAuth(), session_auth],
)
async def create_run(
    request: AuthenticatedHttpRequest, body: RunIn
) -> Status[dict[str, Any]]:
    """Async: the hot route of scripts. Its database work runs on a pool thread
    that keeps its connection (protocol.in_pool), not on a thread made for the
    request that opens one and closes it."""
    return await protocol.in_pool(create_run_as, request.user, body)


def create_run_as(
    user: User, body: RunIn, seen: TokenAccess | None = None
) -> Status[dict[str, Any]]:
    """The create itself, for an authenticated user: this route's view and its
    faster door for token calls (fast_create.py) both call it. Raises Http404
    for a plugin or project the user cannot see. `seen`: the plugin and
    project as the door read them with the token (auth.token_access), the
    same rule as web/access.py's in the same order, in one statement."""
    if seen is None:
        plugin = access.get_plugin_for_user(user, body.plugin_id)
        project = access.get_project_for_user(user, body.project_id)
    elif seen.plugin is None:
        raise Http404(access.NO_PLUGIN)
    elif seen.project is None:
        raise Http404(access.NO_PROJECT)
    else:
        plugin, project = seen.plugin, seen.project
    if body.replace_submitted and not access.is_org_admin(
        user, project.organization_id
    ):
        message = "Only admins of this organization can replace submitted answers."
        return Status(403, {"errors": {"replace_submitted": [message]}})
    try:
        run, items = run_create_items(
            RunRequest(
                plugin=plugin,
                project=project,
                user=user,
                class_mapping=body.class_mapping,
                config_json=(
                    plugin.default_config
                    if body.config_json is None
                    else body.config_json
                ),
                external_ids=body.external_ids,
                batch_ids=body.batch_ids,
                inputs=body.inputs,
                replace_submitted=body.replace_submitted,
                retry_timeouts=body.retry_timeouts,
                selection=body.selection,
                dry_run=body.dry_run,
                preview_limit=body.preview_limit,
            )
        )
    except RunRequestError as exc:
        return Status(400, {"errors": exc.errors})
    return Status(201, created_run_out(run, items))


@router.get("/runs", response=list[RunOut])
def list_runs(
    request: AuthenticatedHttpRequest,
    project: DbId | None = None,
    plugin: DbId | None = None,
    status: str = "",
    page: PageNumber = 1,
    per_page: int = 25,
) -> list[dict[str, Any]]:
    if message := unknown_status_message(status):
        raise HttpError(400, message)
    filters = selectors.RunFilters(project=project, plugin=plugin, status=status)
    runs = filters.apply(
        access.visible_runs(request.user).select_related("created_by", "plugin")
    )
    return [run_out(r) for r in runs[page_slice(page, per_page, most=200)]]


@router.get("/runs/{run_id}", response=RunOut)
def get_run(request: AuthenticatedHttpRequest, run_id: int) -> dict[str, Any]:
    return run_out(access.get_run_for_user(request.user, run_id))


@router.post("/runs/{run_id}/cancel", response=RunOut)
def cancel_run(request: AuthenticatedHttpRequest, run_id: int) -> dict[str, Any]:
    run = access.get_run_for_user(request.user, run_id)
    return run_out(run_cancel(run, by=request.user))


@router.post("/runs/{run_id}/retry", response={200: RunOut, 409: ErrorOut})
def retry_run(request: AuthenticatedHttpRequest, run_id: int) -> Status[dict[str, Any]]:
    run = access.get_run_for_user(request.user, run_id)
    try:
        run = run_retry(run, by=request.user)
    except RunActionError as exc:
        return Status(409, {"errors": {"__all__": [str(exc)]}})
    return Status(200, run_out(run))


@router.post(
    "/runs/{run_id}/undo", response={200: UndoOut, 403: ErrorOut, 409: ErrorOut}
)
def undo_run(request: AuthenticatedHttpRequest, run_id: int) -> Status[dict[str, Any]]:
    """Give every task the run wrote its answer back, except those changed
    since (listed in not_undone with why). Admins only; a second call changes
    nothing."""
    run = access.get_run_for_user(request.user, run_id)
    try:
        result = run_undo(run, by=request.user)
    except UndoPermissionError as exc:
        return Status(403, {"errors": {"__all__": [str(exc)]}})
    except RunActionError as exc:
        return Status(409, {"errors": {"__all__": [str(exc)]}})
    return Status(
        200,
        {
            "run": run_out(result.run),
            "message": result.message,
            "restored_task_ids": result.restored,
            "not_undone": [
                {
                    "task_id": n.task_id,
                    "external_id": n.external_id,
                    "outcome": "kept",
                    "reason": n.reason,
                }
                for n in result.not_undone
            ],
        },
    )


@router.get("/runs/{run_id}/logs", response=list[LogLineOut])
def get_run_logs(
    request: AuthenticatedHttpRequest, run_id: int, after: int = 0, limit: int = 1000
) -> list[Any]:
    run = access.get_run_for_user(request.user, run_id)
    return list(run.log_lines.filter(id__gt=after)[: max(1, min(limit, 10_000))])
