"""The JSON API: everything the dashboard does, for scripts. OpenAPI schema at
/api/openapi.json, interactive docs at /api/docs.

Authentication: the browser session (with CSRF) or `Authorization: Bearer <token>`
with a personal token from `manage.py create_api_token`.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import HttpRequest
from ninja import File, Form, NinjaAPI, Schema, Status, UploadedFile
from ninja.errors import HttpError
from ninja.security import HttpBearer, django_auth
from pydantic import AfterValidator, Field

from plugins_app import protocol
from plugins_app.inputs import DB_ID_MAX, DB_INT_MAX, check_json
from plugins_app.plugins.models import (
    MAX_ATTEMPTS,
    MAX_CONCURRENCY,
    MAX_TIMEOUT_SECONDS,
    Delivery,
    PluginInstance,
    PluginType,
)
from plugins_app.plugins.secrets import token_hash
from plugins_app.plugins.services import default_config_errors, plugin_create
from plugins_app.plugins.triggers import plugin_set_triggers, plugin_trigger_events
from plugins_app.runs import selectors
from plugins_app.runs.answer_ledger import run_writes
from plugins_app.runs.creation import RunRequest, RunRequestError, run_create
from plugins_app.runs.ledger import RunActionError, run_cancel, run_retry
from plugins_app.runs.models import Run
from plugins_app.runs.undo import UndoPermissionError, run_undo
from plugins_app.web import access
from plugins_app.web.request_types import AuthenticatedHttpRequest
from plugins_app.web.run_filters import unknown_status_message
from plugins_app.workspace import workflow
from plugins_app.workspace.lifecycle import (
    TaskActionError,
    TaskPermissionError,
    task_review,
    task_submit,
)
from plugins_app.workspace.models import ApiToken, Task


class TokenAuth(HttpBearer):
    """A personal token, looked up on every request: deleting the token or
    deactivating its user refuses it at once, in every process (a cache of
    accepted tokens could not be told, across processes, of a revocation).
    What is kept is the SQL: one prepared SELECT of the token's user, built
    into a User without the ORM's query compiler (~5× the CPU of the query)."""

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        user = _token_user(token_hash(token))
        if user is None:
            return None
        request.user = user
        return user


class AsyncTokenAuth(TokenAuth):
    """TokenAuth for async views: the same lookup, on protocol.in_pool's
    thread (a sync authenticator would get a thread of its own per request)."""

    async def authenticate(self, request: HttpRequest, token: str) -> Any:
        user = await protocol.in_pool(_token_user, token_hash(token))
        if user is None:
            return None
        request.user = user
        return user


@functools.cache
def _token_user_sql() -> str:
    """The SELECT of a token's active user; only quoted names from the models
    are formatted in, the key hash goes as a parameter."""
    quote = connection.ops.quote_name
    user, token = get_user_model()._meta, ApiToken._meta

    def col(meta: Any, name: str) -> str:
        return quote(meta.get_field(name).column)

    return (
        f"SELECT u.* FROM {quote(token.db_table)} t "  # noqa: S608
        f"JOIN {quote(user.db_table)} u "
        f"ON u.{col(user, 'id')} = t.{col(token, 'user')} "
        f"WHERE t.{col(token, 'key_hash')} = %s AND u.{col(user, 'is_active')}"
    )


def _token_user(key_hash: str) -> Any:
    """The active user of a token (None: no such token, or its user is not
    active). A raw query: the backend's converters apply, the compiler does not."""
    found = get_user_model().objects.raw(_token_user_sql(), [key_hash])
    return next(iter(found), None)


api = NinjaAPI(
    title="Plugin Hub API",
    version="1",
    description="Register plugins, start runs and follow them.",
    # Token first: django_auth checks CSRF before it looks for a session.
    auth=[TokenAuth(), django_auth],
    urls_namespace="api",
)


# Bounds in the schema itself, so an out-of-range number is a 422 naming the
# field (and the OpenAPI schema says so) instead of a database overflow.
DbId = Annotated[int, Field(ge=1, le=DB_ID_MAX)]
PageNumber = Annotated[int, Field(le=DB_INT_MAX)]
TimeoutSeconds = Annotated[int, Field(ge=1, le=MAX_TIMEOUT_SECONDS)]
Concurrency = Annotated[int, Field(ge=1, le=MAX_CONCURRENCY)]
Attempts = Annotated[int, Field(ge=1, le=MAX_ATTEMPTS)]


def _not_too_deep(value: Any) -> Any:
    check_json(value, what="The value")  # its ValueError becomes a 422
    return value


# A JSON object of any shape, nested at most HUB_MAX_JSON_DEPTH levels.
JsonObject = Annotated[dict[str, Any], AfterValidator(_not_too_deep)]


class ProjectOut(Schema):
    id: int
    name: str
    organization: str
    ontology: dict[str, Any]
    batches: list[dict[str, Any]]
    labels_per_asset: int
    workflow: list[dict[str, Any]]


class PluginIn(Schema):
    name: str
    type: PluginType = PluginType.MODEL
    description: str = ""
    class_names: list[str] = []
    default_config: str = "{}"
    timeout_seconds: TimeoutSeconds = 300
    project_ids: list[DbId] = []
    trigger_events: list[str] = []
    delivery: Delivery = Delivery.SOCKET
    # REST delivery: checked like the dialog's (Plugin.clean, ops/egress.py).
    connector_url: str = ""
    # Used when no script declares one and the plugin is not hosted.
    version: str = ""


class InstanceOut(Schema):
    address: str
    # What the script declared (plugins/versions.py); "" when nothing.
    version: str
    connected_at: datetime
    last_heartbeat: datetime


class PluginOut(Schema):
    id: int
    public_id: str
    name: str
    description: str
    type: str
    class_names: list[str]
    default_config: str
    timeout_seconds: int
    concurrency: int
    max_attempts: int
    live_instances: int
    instances: list[InstanceOut]
    project_ids: list[int]
    trigger_events: list[str]
    delivery: str
    connector_url: str
    # The admin's version, and a hosted plugin's code hash.
    version: str
    code_version: str


class PluginPatch(Schema):
    name: str | None = None
    description: str | None = None
    class_names: list[str] | None = None
    default_config: str | None = None
    timeout_seconds: TimeoutSeconds | None = None
    concurrency: Concurrency | None = None
    max_attempts: Attempts | None = None
    project_ids: list[DbId] | None = None
    trigger_events: list[str] | None = None
    connector_url: str | None = None
    version: str | None = None


class PluginCreated(PluginOut):
    secret: str


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


class ErrorOut(Schema):
    errors: dict[str, list[str]]


def _plugin_out(plugin: Any) -> dict[str, Any]:
    instances = list(PluginInstance.objects.live().filter(plugin=plugin))
    return {
        "id": plugin.pk,
        "public_id": plugin.public_id,
        "name": plugin.name,
        "description": plugin.description,
        "type": plugin.type,
        "class_names": plugin.class_names,
        "default_config": plugin.default_config,
        "timeout_seconds": plugin.timeout_seconds,
        "concurrency": plugin.concurrency,
        "max_attempts": plugin.max_attempts,
        "live_instances": len(instances),
        "instances": instances,
        "project_ids": list(plugin.projects.values_list("pk", flat=True)),
        "trigger_events": plugin_trigger_events(plugin),
        "delivery": plugin.delivery,
        "connector_url": plugin.connector_url,
        "version": plugin.version,
        "code_version": plugin.code_version,
    }


def run_out(run: Run) -> dict[str, Any]:
    progress = selectors.run_progress(run)
    writes = run_writes(run)
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


@api.get("/projects", response=list[ProjectOut])
def list_projects(request: AuthenticatedHttpRequest) -> list[dict[str, Any]]:
    return [
        {
            "id": p.pk,
            "name": p.name,
            "organization": p.organization.name,
            "ontology": p.ontology,
            "batches": [{"id": b.pk, "name": b.name} for b in p.batches.all()],
            "labels_per_asset": p.labels_per_asset,
            "workflow": workflow.stages(p.workflow),
        }
        for p in access.visible_projects(request.user).select_related("organization")
    ]


@api.get("/plugins", response=list[PluginOut])
def list_plugins(request: AuthenticatedHttpRequest) -> list[dict[str, Any]]:
    return [_plugin_out(p) for p in access.visible_plugins(request.user)]


@api.get("/plugins/{plugin_id}", response=PluginOut)
def get_plugin(request: AuthenticatedHttpRequest, plugin_id: int) -> dict[str, Any]:
    return _plugin_out(access.get_plugin_for_user(request.user, plugin_id))


@api.post("/plugins", response={201: PluginCreated, 400: ErrorOut})
def create_plugin(
    request: AuthenticatedHttpRequest, body: PluginIn
) -> Status[dict[str, Any]]:
    organization = access.admin_orgs(request.user).first()
    if organization is None:
        raise HttpError(403, "Only admins register plugins")
    try:
        credentials = plugin_create(
            organization=organization,
            name=body.name,
            type=body.type,
            description=body.description,
            class_names=body.class_names,
            default_config=body.default_config,
            timeout_seconds=body.timeout_seconds,
            projects=list(organization.projects.filter(pk__in=body.project_ids)),
            delivery=body.delivery,
            connector_url=body.connector_url,
            version=body.version,
        )
    except ValidationError as exc:
        return Status(400, {"errors": exc.message_dict})
    if errors := _set_triggers(credentials.plugin, body.trigger_events):
        credentials.plugin.delete()
        return Status(400, errors)
    return Status(
        201, {**_plugin_out(credentials.plugin), "secret": credentials.secret}
    )


def _set_triggers(plugin: Any, event_names: list[str]) -> dict[str, Any] | None:
    try:
        plugin_set_triggers(
            plugin, projects=list(plugin.projects.all()), event_names=event_names
        )
    except ValueError as exc:
        return {"errors": {"trigger_events": [str(exc)]}}
    return None


@api.patch("/plugins/{plugin_id}", response={200: PluginOut, 400: ErrorOut})
def update_plugin(
    request: AuthenticatedHttpRequest, plugin_id: int, body: PluginPatch
) -> Status[dict[str, Any]]:
    plugin = access.get_admin_plugin_for_user(request.user, plugin_id)
    changes = body.dict(exclude_unset=True)
    # Every field may be left out; none may be null (the columns are not).
    if nulls := sorted(field for field, value in changes.items() if value is None):
        message = "May not be null: leave the field out to keep its value."
        return Status(400, {"errors": {field: [message] for field in nulls}})
    if "default_config" in changes and (
        errors := default_config_errors(changes["default_config"])
    ):
        return Status(400, {"errors": {"default_config": errors}})
    project_ids = changes.pop("project_ids", None)
    trigger_events = changes.pop("trigger_events", None)
    for field, value in changes.items():
        setattr(plugin, field, value)
    try:
        plugin.full_clean()
    except ValidationError as exc:
        return Status(400, {"errors": exc.message_dict})
    plugin.save()
    if project_ids is not None:
        plugin.projects.set(plugin.organization.projects.filter(pk__in=project_ids))
    if project_ids is not None or trigger_events is not None:
        names = (
            plugin_trigger_events(plugin) if trigger_events is None else trigger_events
        )
        if trigger_errors := _set_triggers(plugin, names):
            return Status(400, trigger_errors)
    return Status(200, _plugin_out(plugin))


@api.post("/plugins/{plugin_id}/rotate-secret", response=PluginCreated)
def rotate_secret(request: AuthenticatedHttpRequest, plugin_id: int) -> dict[str, Any]:
    from plugins_app.plugins.services import plugin_rotate_secret

    plugin = access.get_admin_plugin_for_user(request.user, plugin_id)
    credentials = plugin_rotate_secret(plugin=plugin)
    return {**_plugin_out(plugin), "secret": credentials.secret}


# --- hosted code (plugins_app/hosted/) ---------------------------------------------
class HostedCodeOut(Schema):
    plugin_id: int
    # none (nothing uploaded), building, active or failed
    status: str
    filename: str = ""
    version: int = 0
    handler: str = ""
    requirements: str = ""
    memory_limit_mb: int = 0
    build_log: str = ""
    uploaded_at: datetime | None = None
    built_at: datetime | None = None


def _code_out(plugin: Any) -> dict[str, Any]:
    from plugins_app.hosted.models import HostedCode

    code = HostedCode.objects.filter(plugin=plugin).first()
    if code is None:
        return {"plugin_id": plugin.pk, "status": "none"}
    return {
        "plugin_id": plugin.pk,
        "status": code.status,
        "filename": code.filename,
        "version": code.version,
        "handler": code.handler_name,
        "requirements": code.requirements,
        "memory_limit_mb": code.memory_limit_mb,
        "build_log": code.build_log,
        "uploaded_at": code.uploaded_at,
        "built_at": code.built_at,
    }


@api.get("/plugins/{plugin_id}/code", response=HostedCodeOut)
def get_code(request: AuthenticatedHttpRequest, plugin_id: int) -> dict[str, Any]:
    """The hosted code's build: poll `status` until active or failed."""
    return _code_out(access.get_plugin_for_user(request.user, plugin_id))


@api.post("/plugins/{plugin_id}/code", response={202: HostedCodeOut, 400: ErrorOut})
def upload_code(
    request: AuthenticatedHttpRequest,
    plugin_id: int,
    code: UploadedFile = File(...),  # noqa: B008 - ninja's parameter declaration
    memory_limit_mb: int = Form(512),  # noqa: B008
) -> Status[dict[str, Any]]:
    """Upload main.py or a zip (main.py + requirements.txt): the plugin becomes
    hosted and its build starts (multipart form: `code`, `memory_limit_mb`)."""
    from plugins_app.hosted.archive import ArchiveError
    from plugins_app.hosted.forms import CodeUploadForm
    from plugins_app.hosted.services import code_upload

    plugin = access.get_admin_plugin_for_user(request.user, plugin_id)
    form = CodeUploadForm({"memory_limit_mb": memory_limit_mb}, {"code": code})
    if not form.is_valid():
        return Status(400, {"errors": dict(form.errors)})
    try:
        code_upload(
            plugin,
            filename=code.name or "main.py",
            data=code.read(),
            memory_limit_mb=form.cleaned_data["memory_limit_mb"],
            user=request.user,
        )
    except ArchiveError as exc:
        return Status(400, {"errors": {"code": [str(exc)]}})
    return Status(202, _code_out(plugin))


@api.post(
    "/runs",
    response={201: RunOut, 400: ErrorOut, 403: ErrorOut},
    auth=[AsyncTokenAuth(), django_auth],
)
async def create_run(
    request: AuthenticatedHttpRequest, body: RunIn
) -> Status[dict[str, Any]]:
    """Async: the hot route of scripts. Its database work runs on a pool thread
    that keeps its connection (protocol.in_pool), not on a thread made for the
    request that opens one and closes it."""
    return await protocol.in_pool(_create_run, request, body)


def _create_run(
    request: AuthenticatedHttpRequest, body: RunIn
) -> Status[dict[str, Any]]:
    plugin = access.get_plugin_for_user(request.user, body.plugin_id)
    project = access.get_project_for_user(request.user, body.project_id)
    if body.replace_submitted and not access.is_org_admin(
        request.user, project.organization_id
    ):
        message = "Only admins of this organization can replace submitted answers."
        return Status(403, {"errors": {"replace_submitted": [message]}})
    try:
        run = run_create(
            RunRequest(
                plugin=plugin,
                project=project,
                user=request.user,
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
    return Status(201, run_out(run))


@api.get("/runs", response=list[RunOut])
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
    per_page = max(1, min(per_page, 200))
    start = (max(page, 1) - 1) * per_page
    return [run_out(r) for r in runs[start : start + per_page]]


@api.get("/runs/{run_id}", response=RunOut)
def get_run(request: AuthenticatedHttpRequest, run_id: int) -> dict[str, Any]:
    return run_out(access.get_run_for_user(request.user, run_id))


@api.post("/runs/{run_id}/cancel", response=RunOut)
def cancel_run(request: AuthenticatedHttpRequest, run_id: int) -> dict[str, Any]:
    run = access.get_run_for_user(request.user, run_id)
    return run_out(run_cancel(run, by=request.user))


@api.post("/runs/{run_id}/retry", response={200: RunOut, 409: ErrorOut})
def retry_run(request: AuthenticatedHttpRequest, run_id: int) -> Status[dict[str, Any]]:
    run = access.get_run_for_user(request.user, run_id)
    try:
        run = run_retry(run, by=request.user)
    except RunActionError as exc:
        return Status(409, {"errors": {"__all__": [str(exc)]}})
    return Status(200, run_out(run))


@api.post("/runs/{run_id}/undo", response={200: UndoOut, 403: ErrorOut, 409: ErrorOut})
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


@api.get("/runs/{run_id}/logs", response=list[LogLineOut])
def get_run_logs(
    request: AuthenticatedHttpRequest, run_id: int, after: int = 0, limit: int = 1000
) -> list[Any]:
    run = access.get_run_for_user(request.user, run_id)
    return list(run.log_lines.filter(id__gt=after)[: max(1, min(limit, 10_000))])


# --- tasks: submit and review ---------------------------------------------------
class TaskOut(Schema):
    id: int
    project_id: int
    asset_id: int
    external_id: str
    stage: str
    status: str
    answer: dict[str, Any]
    metadata: dict[str, Any]
    open_issues: list[dict[str, Any]]
    labels_submitted: int
    labels_per_asset: int


class TaskEventOut(Schema):
    id: int
    name: str
    actor: str | None
    actor_label: str
    data: dict[str, Any]
    created_at: datetime


class SubmitIn(Schema):
    # None: submit the task's current labels (e.g. an accepted pre-label).
    answer: JsonObject | None = None


class ReviewIn(Schema):
    verdict: str  # "accept" or "reject"
    reason: str = ""


def task_out(task: Task) -> dict[str, Any]:
    return {
        "id": task.pk,
        "project_id": task.project_id,
        "asset_id": task.asset_id,
        "external_id": task.asset.external_id,
        "stage": task.stage,
        "status": task.status,
        "answer": task.answer or {},
        "metadata": task.metadata or {},
        "open_issues": [
            {
                "id": i.pk,
                "content": i.content,
                "created_by": i.created_by.get_username()
                if i.created_by
                else i.created_by_label,
                "created_at": i.created_at.isoformat(),
            }
            for i in task.issues.filter(status="open").select_related("created_by")
        ],
        "labels_submitted": task.submissions.filter(active=True).count(),
        "labels_per_asset": task.project.labels_per_asset,
    }


@api.get("/projects/{project_id}/tasks", response=list[TaskOut])
def list_tasks(
    request: AuthenticatedHttpRequest,
    project_id: int,
    stage: str = "",
    page: PageNumber = 1,
    per_page: int = 100,
) -> list[dict[str, Any]]:
    """The project's tasks by id, optionally only those in one stage."""
    project = access.get_project_for_user(request.user, project_id)
    tasks = project.tasks.select_related("asset", "project").order_by("id")
    if stage:
        tasks = tasks.filter(stage=stage)
    per_page = max(1, min(per_page, 500))
    start = (max(page, 1) - 1) * per_page
    return [task_out(t) for t in tasks[start : start + per_page]]


@api.get("/tasks/{task_id}", response=TaskOut)
def get_task(request: AuthenticatedHttpRequest, task_id: int) -> dict[str, Any]:
    return task_out(access.get_task_for_user(request.user, task_id))


@api.get("/tasks/{task_id}/events", response=list[TaskEventOut])
def get_task_events(
    request: AuthenticatedHttpRequest, task_id: int
) -> list[dict[str, Any]]:
    task = access.get_task_for_user(request.user, task_id)
    return [
        {
            "id": e.pk,
            "name": e.name,
            "actor": e.actor.get_username() if e.actor else None,
            "actor_label": e.actor_label,
            "data": e.data,
            "created_at": e.created_at,
        }
        for e in task.events.select_related("actor")
    ]


@api.post("/tasks/{task_id}/submit", response={200: TaskOut, 409: ErrorOut})
def submit_task(
    request: AuthenticatedHttpRequest, task_id: int, body: SubmitIn
) -> Status[dict[str, Any]]:
    task = access.get_task_for_user(request.user, task_id)
    try:
        task = task_submit(task, user=request.user, answer=body.answer)
    except TaskActionError as exc:
        return Status(409, {"errors": {"__all__": [str(exc)]}})
    task.refresh_from_db()
    return Status(200, task_out(task))


@api.post(
    "/tasks/{task_id}/review", response={200: TaskOut, 403: ErrorOut, 409: ErrorOut}
)
def review_task(
    request: AuthenticatedHttpRequest, task_id: int, body: ReviewIn
) -> Status[dict[str, Any]]:
    task = access.get_task_for_user(request.user, task_id)
    if body.verdict not in ("accept", "reject"):
        return Status(409, {"errors": {"verdict": ['Use "accept" or "reject".']}})
    try:
        task = task_review(
            task,
            user=request.user,
            accept=body.verdict == "accept",
            reason=body.reason,
        )
    except TaskPermissionError as exc:
        return Status(403, {"errors": {"__all__": [str(exc)]}})
    except TaskActionError as exc:
        return Status(409, {"errors": {"__all__": [str(exc)]}})
    task.refresh_from_db()
    return Status(200, task_out(task))
