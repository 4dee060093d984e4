"""The project a run's key opens: its details, assets and batches, the assets
and storages of File Explorer and Markdown plugins."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from plugins_app.ango_api.auth import api_key_required, fail, same_project
from plugins_app.ango_api.messages import (
    as_list,
    bulk_json_body,
    json_body,
    json_param,
    ok,
    refused,
)
from plugins_app.inputs import DB_INT_MAX, parse_count, parse_id, parse_ids
from plugins_app.plugins.kinds import asset_file_link
from plugins_app.runs import logs as run_logs
from plugins_app.runs.creation import assets_in_scope
from plugins_app.runs.models import Run
from plugins_app.workspace.crypto import SecretUnreadable
from plugins_app.workspace.models import Asset, Storage
from plugins_app.workspace.services import assets_create_from_cloud, batches_create

MAX_PAGE_SIZE = 1000


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
    filters = json_param(request.GET.get("filters"), default={})
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
        ids = as_list(filters["_id"])
        numeric = parse_ids(map(str, ids))
        assets = assets.filter(Q(pk__in=numeric) | Q(external_id__in=map(str, ids)))
    if "externalId" in filters:
        assets = assets.filter(external_id__in=map(str, as_list(filters["externalId"])))
    if "batches" in filters:
        wanted = [str(b) for b in as_list(filters["batches"])]
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


# --- File Explorer and Markdown plugins -------------------------------------------
@require_POST
@api_key_required
def project_cloud(request: HttpRequest, run: Run, project_id: str) -> JsonResponse:
    """Create assets from cloud/URL records or raw markdown. The SDK reads
    `status` (and `message` on failure) without checking the HTTP status."""
    if not same_project(run, project_id):
        return fail("This apikey is not valid for that project.", 403)
    body = bulk_json_body(request, "send fewer assets per call; nothing was created")
    if isinstance(body, JsonResponse):
        return body
    if not isinstance(body, dict) or not isinstance(body.get("assets"), list):
        return fail('Send {"assets": [{"data", "externalId"}, ...]}.', 400)
    batch_ids = json_param(request.GET.get("batches"), default=[])
    result = assets_create_from_cloud(
        project=run.project,
        records=body["assets"],
        batch_ids=batch_ids if isinstance(batch_ids, list) else [batch_ids],
        run_id=run.pk,
    )
    if result.errors:
        return refused(run, result.errors, len(body["assets"]), "assets", "created")
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
    body = json_body(request.body)
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
