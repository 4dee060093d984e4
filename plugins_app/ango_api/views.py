"""The `/v2/...` endpoints that `imerit-ango` SDK calls make from plugin code.

Replies follow the shapes the SDK and the public samples read
(ango-plugin-protocol.md §4); query strings are parsed leniently because the SDK
sends them unencoded or as JSON.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signing
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from plugins_app.ango_api.auth import (
    api_key_required,
    fail,
    run_for_api_key,
    same_project,
)
from plugins_app.exports import services as exports
from plugins_app.exports.models import ExportSnapshot
from plugins_app.inputs import (
    DB_INT_MAX,
    json_loads_bounded,
    parse_count,
    parse_id,
    parse_ids,
)
from plugins_app.plugins.kinds import FILE_LINK_SALT, asset_file_link
from plugins_app.plugins.versions import served_version
from plugins_app.runs import logs as run_logs
from plugins_app.runs import preview
from plugins_app.runs.creation import assets_in_scope
from plugins_app.runs.dispatch.rest import connector_logs_ingest, connector_respond
from plugins_app.runs.models import Run, WorkItem
from plugins_app.runs.workflow import WorkflowAnswerError, workflow_answer
from plugins_app.web.files import asset_file_response, export_file_response
from plugins_app.workspace import lifecycle, workflow
from plugins_app.workspace.crypto import SecretUnreadable
from plugins_app.workspace.models import Asset, Storage, Task
from plugins_app.workspace.services import (
    assets_create_from_cloud,
    batches_create,
    prelabels_import,
)

MAX_PAGE_SIZE = 1000
FILE_LINK_MAX_AGE = 24 * 3600
EXPORT_POLL_SECONDS = 0.2


def ok(data: dict[str, Any]) -> JsonResponse:
    return JsonResponse({"status": "success", "data": data})


@require_GET
@api_key_required
def project_detail(request: HttpRequest, run: Run, project_id: str) -> JsonResponse:
    if not same_project(run, project_id):
        return fail("This apikey is not valid for that project.", 403)
    project = run.project
    return ok(
        {
            "project": {
                "_id": str(project.pk),
                "name": project.name,
                "description": project.description,
                "type": "image",
                "categorySchema": project.ontology,
                "batches": [
                    {"_id": str(b.pk), "name": b.name} for b in project.batches.all()
                ],
            }
        }
    )


@require_GET
@api_key_required
def project_assets(request: HttpRequest, run: Run, project_id: str) -> JsonResponse:
    if not same_project(run, project_id):
        return fail("This apikey is not valid for that project.", 403)
    page = parse_count(request.GET.get("page"), default=1, low=1, high=DB_INT_MAX)
    limit = parse_count(request.GET.get("limit"), default=10, low=1, high=MAX_PAGE_SIZE)
    if page is None or limit is None:
        return fail("page and limit must be integers.", 400)
    filters = _json_param(request.GET.get("filters"), default={})
    if not isinstance(filters, dict):
        return fail("filters must be a JSON object.", 400)
    # Older SDKs and hand-written scripts put `_id` / `externalId` in the query
    # string itself (`?externalId=a&externalId=b`); they narrow the same way.
    for key in ("_id", "externalId"):
        given = request.GET.getlist(key)
        if given and key not in filters:
            filters[key] = given
        elif given:
            return fail(
                f"Give {key} either in filters or as a parameter, not both.", 400
            )
    assets = _filtered_assets(run, filters).order_by("id")
    total = assets.count()
    chunk = assets.prefetch_related("batches")[(page - 1) * limit : page * limit]
    return ok(
        {
            "assets": [_asset_json(request, a) for a in chunk],
            "total": total,
            "page": page,
            "limit": limit,
        }
    )


def _filtered_assets(run: Run, filters: dict[str, Any]) -> QuerySet[Asset]:
    # A run started on a selection (or a preview's few assets) sees only those.
    assets = (
        assets_in_scope(run)
        if run.selection is not None
        else Asset.objects.filter(project=run.project)
    )
    if "_id" in filters:
        # Scripts use `_id` with either the internal id or the external id.
        ids = _as_list(filters["_id"])
        numeric = parse_ids(map(str, ids))
        assets = assets.filter(Q(pk__in=numeric) | Q(external_id__in=map(str, ids)))
    if "externalId" in filters:
        assets = assets.filter(
            external_id__in=map(str, _as_list(filters["externalId"]))
        )
    if "batches" in filters:
        wanted = [str(b) for b in _as_list(filters["batches"])]
        numeric = parse_ids(wanted)
        assets = assets.filter(
            Q(batches__pk__in=numeric) | Q(batches__name__in=wanted)
        ).distinct()
    return assets


def _asset_json(request: HttpRequest, asset: Asset) -> dict[str, Any]:
    return {
        "_id": str(asset.pk),
        "externalId": asset.external_id,
        "data": request.build_absolute_uri(asset_file_link(asset.pk)),
        "batches": [str(b.pk) for b in asset.batches.all()],
        "metadata": {"width": asset.width, "height": asset.height},
    }


def _sending_version(run: Run) -> str:
    """The version of the plugin instance whose job is importing (a Batch
    Model run has one job; its holder may declare another version than the
    plugin had when the run was created)."""
    held = (
        run.items.filter(state=WorkItem.State.LEASED).select_related("instance").first()
    )
    return served_version(run.plugin, held.instance if held else None)


@require_POST
@api_key_required
def import_labels(request: HttpRequest, run: Run) -> JsonResponse:
    body = _bulk_json_body(request, "send it in smaller calls; nothing was imported")
    if isinstance(body, JsonResponse):
        return body
    if not isinstance(body, dict):
        return fail("The body must be a JSON object.", 400)
    records = body.get("jsonContent", body.get("labels"))
    if not isinstance(records, list):
        return fail("Send the labels as a list in jsonContent (or labels).", 400)
    if not same_project(run, body.get("project", run.project_id)):
        return fail("This apikey is not valid for that project.", 403)
    if run.dry_run:
        return _held_for_preview(run, records)
    result = prelabels_import(
        project=run.project,
        records=records,
        mapping=run.class_mapping,
        run=run,
        version=_sending_version(run),
    )
    if result.errors:
        return _refused(run, result.errors, len(records), "records", "imported")
    run_logs.run_count_labeled(run, result.labeled)
    if result.skipped:
        # Tasks holding a person's work keep it; the others were written.
        run_logs.run_log_import_skips(run, result.skipped)
    kept = f" ({len(result.skipped)} kept: a person's work)" if result.skipped else ""
    message = f"{result.labeled} / {len(records)} tasks are labeled{kept}."
    return ok(
        {"project": message}
        | ({"skipped": result.skipped[:1000]} if result.skipped else {})
    )


def _held_for_preview(run: Run, records: list[Any]) -> JsonResponse:
    """A dry run's import: checked and kept for the Preview, nothing written;
    the plugin is told so in the reply it logs."""
    held = preview.hold_import(run, records)
    outside = (
        f"; {len(held.outside)} record(s) for assets outside the preview ignored"
        if held.outside
        else ""
    )
    return ok(
        {
            "project": f"Preview: {held.held} / {len(records)} records held for "
            f"review{outside}; nothing was written.",
            "errors": held.errors[:1000],
        }
    )


def _refused(
    run: Run, errors: list[dict[str, Any]], total: int, what: str, verb: str
) -> JsonResponse:
    """An all-or-nothing write refused: the per-record errors go to the plugin
    and to the run log."""
    run_logs.run_log_import_errors(run, errors, total=total)
    return JsonResponse(
        {
            "status": "fail",
            "message": f"{len(errors)} of {total} {what} are invalid; "
            f"nothing was {verb}.",
            "errors": errors[:1000],
        },
        status=400,
    )


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
    body = _json_body(request.body)
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
    body = _json_body(request.body)
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
        tasks = tasks.filter(pk__in=parse_ids(map(str, _as_list(filters["taskIds"]))))
    if filters.get("assetIds"):
        ids = parse_ids(map(str, _as_list(filters["assetIds"])))
        tasks = tasks.filter(asset_id__in=ids)
    if filters.get("externalIds"):
        tasks = tasks.filter(
            asset__external_id__in=map(str, _as_list(filters["externalIds"]))
        )
    if filters.get("fromStageIds"):
        tasks = tasks.filter(stage__in=map(str, _as_list(filters["fromStageIds"])))
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
    body = _json_body(request.body)
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
            run=run, task=task, body=_json_body(request.body), next_stage=next_stage
        )
    except WorkflowAnswerError as exc:
        return fail(str(exc), exc.status)
    return ok(data)


@require_GET
def asset_file(request: HttpRequest, token: str) -> HttpResponse:
    """An asset's image for a plugin: the signed token is the credential."""
    try:
        asset_id = signing.TimestampSigner(salt=FILE_LINK_SALT).unsign(
            token, max_age=FILE_LINK_MAX_AGE
        )
    except signing.BadSignature:
        raise Http404("Invalid or expired link") from None
    asset = Asset.objects.filter(pk=asset_id).first()
    if asset is None:
        raise Http404("No such asset")
    return asset_file_response(asset)


def _json_param(value: str | None, *, default: Any) -> Any:
    if not value:
        return default
    try:
        return json_loads_bounded(value, what="The parameter")
    except ValueError:
        return value


def _bulk_json_body(request: HttpRequest, advice: str) -> Any:
    """The JSON body of a bulk write (imports, cloud assets), or a 413 naming
    HUB_IMPORT_MAX_BYTES. read(), not .body: DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)
    is for forms; a 10,000-record import is bigger and has its own limit."""
    limit = settings.HUB_IMPORT_MAX_BYTES
    declared = int(request.headers.get("Content-Length") or 0)
    raw = b"" if declared > limit else request.read(limit + 1)
    if declared > limit or len(raw) > limit:
        return fail(
            f"The body is over the hub's limit of {limit:,} bytes "
            f"(HUB_IMPORT_MAX_BYTES): {advice}.",
            413,
        )
    return _json_body(raw)


def _json_body(raw: bytes) -> Any:
    """The parsed body, or None (each caller then says what it expects) when
    it is not JSON or nests deeper than HUB_MAX_JSON_DEPTH (stored or shown,
    such a value would recurse past Python's limit)."""
    try:
        # Bulk imports have their own byte limit (HUB_IMPORT_MAX_BYTES), and
        # walking all of a 256 MB body would cost more than its checks do.
        small = len(raw) <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return json_loads_bounded(raw or b"null", max_bytes=len(raw), walk=small)
    except ValueError:
        return None


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, dict) and "$in" in value:
        value = value["$in"]
    return list(value) if isinstance(value, list) else [value]


# --- File Explorer and Markdown plugins -------------------------------------------
@require_POST
@api_key_required
def project_cloud(request: HttpRequest, run: Run, project_id: str) -> JsonResponse:
    """Create assets from cloud/URL records or raw markdown. The SDK reads
    `status` (and `message` on failure) without checking the HTTP status."""
    if not same_project(run, project_id):
        return fail("This apikey is not valid for that project.", 403)
    body = _bulk_json_body(request, "send fewer assets per call; nothing was created")
    if isinstance(body, JsonResponse):
        return body
    if not isinstance(body, dict) or not isinstance(body.get("assets"), list):
        return fail('Send {"assets": [{"data", "externalId"}, ...]}.', 400)
    batch_ids = _json_param(request.GET.get("batches"), default=[])
    result = assets_create_from_cloud(
        project=run.project,
        records=body["assets"],
        batch_ids=batch_ids if isinstance(batch_ids, list) else [batch_ids],
        run_id=run.pk,
    )
    if result.errors:
        return _refused(run, result.errors, len(body["assets"]), "assets", "created")
    run_logs.run_note(run, f"Created {len(result.created)} asset(s) in the project.")
    return ok(
        {
            "assets": [
                {"_id": str(a.pk), "externalId": a.external_id} for a in result.created
            ]
        }
    )


@require_POST
@api_key_required
def project_batches(request: HttpRequest, run: Run, project_id: str) -> JsonResponse:
    """1.4.x create_batch sends {"name"}; 1.3.22 create_batch and 1.4.x
    create_batches send the whole list {"batches": [{"_id"?, "name"}]}. Batches
    are only ever added here, never removed."""
    if not same_project(run, project_id):
        return fail("This apikey is not valid for that project.", 403)
    body = _json_body(request.body)
    single = isinstance(body, dict) and isinstance(body.get("name"), str)
    listed = isinstance(body, dict) and isinstance(body.get("batches"), list)
    if not (single or listed):
        return fail('Send {"name"} or {"batches": [{"name"}, ...]}.', 400)
    wanted = (
        [body["name"]]
        if single
        else [b.get("name") for b in body["batches"] if isinstance(b, dict)]
    )
    names = [n for n in wanted if isinstance(n, str) and n.strip()]
    if len(names) != len(wanted) or any(len(n) > 200 for n in names):
        return fail("Every batch needs a name (at most 200 characters).", 400)
    before = set(run.project.batches.values_list("pk", flat=True))
    created = batches_create(project=run.project, names=names)
    # 1.3.22 posts every batch the project has plus the new one: the note names
    # only those this call added.
    added = [b.name for b in created if b.pk not in before]
    if added:
        shown = ", ".join(added[:10]) + (
            f" and {len(added) - 10} more" if len(added) > 10 else ""
        )
        run_logs.run_note(run, f"Created {len(added)} batch(es): {shown}")
    if single:
        return ok({"project": {"_id": str(created[0].pk), "name": created[0].name}})
    return ok({"project": {"_id": str(run.project_id), "batches": _batches_json(run)}})


def _batches_json(run: Run) -> list[dict[str, str]]:
    return [{"_id": str(b.pk), "name": b.name} for b in run.project.batches.all()]


# --- Export plugins ---------------------------------------------------------------
async def export(request: HttpRequest) -> JsonResponse:
    """`GET /v2/export` (1.4.x) and `/v2/exportV3` (1.3.x): queue the build of the
    v3 NDJSON export (a Celery task) and answer with its link once it is ready.
    Async, so waiting for the worker holds no thread."""
    if request.method != "GET":
        return fail("Use GET.", 405)
    run = await sync_to_async(run_for_api_key)(request)
    if run is None:
        return fail("Missing, unknown or expired apikey.", 401)
    if not same_project(run, request.GET.get("project", "")):
        return fail("This apikey is not valid for that project.", 403)
    try:
        snapshot, token = await sync_to_async(exports.snapshot_request)(
            run,
            stages=_str_list(request.GET.get("stage")),
            batch_ids=_str_list(request.GET.get("batches")),
            base_url=request.build_absolute_uri("/"),
            path=request.path,
        )
    except exports.ExportError as exc:
        return fail(str(exc), exc.status)
    started = time.monotonic()
    while True:
        state, error = await sync_to_async(exports.snapshot_state)(snapshot.pk)
        if state == ExportSnapshot.State.READY:
            link = reverse("ango_api:export-file", args=[token])
            return ok({"exportPath": request.build_absolute_uri(link)})
        if state == ExportSnapshot.State.FAILED:
            return fail(f"The export could not be built: {error}", 500)
        waited = time.monotonic() - started
        if waited > settings.HUB_EXPORT_WAIT_SECONDS:
            wait = settings.HUB_EXPORT_WAIT_SECONDS
            return fail(f"The export was not built within {wait} s.", 504)
        if (
            state == ExportSnapshot.State.PENDING
            and waited >= settings.HUB_EXPORT_BUILD_HERE_AFTER_SECONDS
        ):
            # No worker took it: every one may be holding a REST connector job
            # of the very plugin asking. Build it here rather than wait forever.
            await _build_here(snapshot.pk, waited)
            continue
        await asyncio.sleep(EXPORT_POLL_SECONDS)


@sync_to_async(thread_sensitive=False)  # not on the consumers' database thread
def _build_here(snapshot_id: int, waited: float) -> None:
    try:
        exports.snapshot_build(
            snapshot_id,
            where=f"by the web process (no Celery worker took it in {waited:.0f} s)",
        )
    finally:
        connection.close()  # this pool thread's own connection


# Async, so not wrapped by api_key_required; marked for test_api_key_scope.
export.requires_api_key = True  # type: ignore[attr-defined]


@require_GET
def export_file(request: HttpRequest, token: str) -> FileResponse:
    """The export zip; the SDK fetches it with urllib, without its apikey, so
    the token in the path is the credential (expiring)."""
    snapshot = exports.snapshot_for_token(token)
    if snapshot is None:
        raise Http404("Unknown or expired export link")
    return export_file_response(
        snapshot.file,
        filename=f"export-{snapshot.run.project_id}.zip",
        content_type="application/zip",
    )


@require_GET
def signed_file(request: HttpRequest, token: str) -> FileResponse:
    """An export plugin's uploaded file behind getSignedUrl's link: fetched
    without credentials, so the expiring signature is the credential."""
    upload = exports.upload_for_signed_token(token)
    if upload is None:
        raise Http404("Unknown or expired link, or the file is not uploaded yet")
    return export_file_response(upload.file, filename=upload.name)


@require_GET
@api_key_required
def storages(request: HttpRequest, run: Run) -> JsonResponse:
    """The storages the run's project may use, with their decrypted keys (the
    File Explorer sample reads region, publicKey and privateKey and talks to the
    bucket itself). Another project's storages do not exist for this key."""
    found = Storage.usable_by(run.project)
    if wanted := request.GET.get("_id"):
        pk = parse_id(wanted)
        found = found.filter(pk=pk) if pk is not None else found.none()
    items = []
    for storage in found:
        try:
            keys = storage.credentials()
        except SecretUnreadable as exc:
            return fail(f"Storage “{storage.name}”: {exc}", 500)
        items.append(
            {
                "_id": str(storage.pk),
                "name": storage.name,
                "provider": storage.provider,
                "bucket": storage.bucket,
                "region": storage.region,
                "endpointUrl": storage.endpoint_url or None,
                "publicKey": keys.get("publicKey", ""),
                "privateKey": keys.get("privateKey", ""),
            }
        )
    if wanted and items:
        run_logs.run_note(run, f"Credentials of storage “{items[0]['name']}” read.")
    return ok({"storages": items})


# --- REST connector mode (CONNECTOR=REST) ---------------------------------------
@require_POST
@api_key_required
def plugin_log(request: HttpRequest, run: Run) -> JsonResponse:
    """The SDK's REST-mode logger posts each record here with the job's apikey
    (the same dict as the socket `log` event)."""
    if not connector_logs_ingest(run, _json_body(request.body)):
        return fail("A log record needs the session of a job of this apikey.", 400)
    return ok({})


@require_POST
@api_key_required
def plugin_response(request: HttpRequest, run: Run) -> JsonResponse:
    """Results the SDK sends outside the /plugin reply (export links, errors of
    exports), applied once like a socket `response`."""
    outcome = connector_respond(run, _json_body(request.body))
    if outcome == "unknown-session":
        return fail("The response needs the session of a job of this apikey.", 400)
    return ok({"result": outcome})


@require_GET
@api_key_required
def get_upload_url(request: HttpRequest, run: Run) -> JsonResponse:
    if not same_project(run, request.GET.get("project", "")):
        return fail("This apikey is not valid for that project.", 403)
    try:
        grant = exports.upload_grant(
            run,
            name=request.GET.get("name", ""),
            file_type=request.GET.get("type", ""),
        )
    except exports.ExportError as exc:
        return fail(str(exc), exc.status)
    url = request.build_absolute_uri(exports.upload_path(grant.token))
    return ok({"uploadUrl": url})


@require_GET
@api_key_required
def get_signed_url(request: HttpRequest, run: Run) -> JsonResponse:
    if not same_project(run, request.GET.get("project", "")):
        return fail("This apikey is not valid for that project.", 403)
    # `name` is the upload URL, sent unencoded; it has no query of its own.
    upload = exports.upload_of_url(run, request.GET.get("name", ""))
    if upload is None:
        return fail("That is not an upload URL of this run.", 404)
    url = request.build_absolute_uri(exports.signed_path(upload))
    return ok({"signedUrl": url})


@csrf_exempt
@require_http_methods(["PUT"])
def upload(request: HttpRequest, token: str) -> JsonResponse:
    """The SDK PUTs the export file here with no header at all: the one-shot,
    expiring token in the path is the credential."""
    declared = request.headers.get("Content-Length")
    try:
        stored = exports.upload_store(
            token, request, declared=int(declared) if declared else None
        )
    except exports.ExportError as exc:
        return fail(str(exc), exc.status)
    return ok({"name": stored.name, "size": stored.size})


def _str_list(value: str | None) -> list[str]:
    """`stage=["Complete"]`, `stage=Complete` or nothing."""
    parsed = _json_param(value, default=[])
    items = parsed if isinstance(parsed, list) else [parsed]
    return [str(i) for i in items if i not in (None, "")]
