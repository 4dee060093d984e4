"""Files behind expiring links, the link being the credential: asset images,
export zips, and export plugins' uploads (getUploadUrl, PUT, getSignedUrl)."""

from __future__ import annotations

from django.core import signing
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from plugins_app.ango_api.auth import api_key_required, fail, same_project
from plugins_app.ango_api.messages import ok
from plugins_app.exports import services as exports
from plugins_app.exports import uploads
from plugins_app.plugins.kinds import FILE_LINK_SALT
from plugins_app.runs.models import Run
from plugins_app.web.files import asset_file_response, export_file_response
from plugins_app.workspace.models import Asset

FILE_LINK_MAX_AGE = 24 * 3600


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
    upload = uploads.upload_for_signed_token(token)
    if upload is None:
        raise Http404("Unknown or expired link, or the file is not uploaded yet")
    return export_file_response(upload.file, filename=upload.name)


@require_GET
@api_key_required
def get_upload_url(request: HttpRequest, run: Run) -> JsonResponse:
    if not same_project(run, request.GET.get("project", "")):
        return fail("This apikey is not valid for that project.", 403)
    try:
        grant = uploads.upload_grant(
            run,
            name=request.GET.get("name", ""),
            file_type=request.GET.get("type", ""),
        )
    except exports.ExportError as exc:
        return fail(str(exc), exc.status)
    url = request.build_absolute_uri(uploads.upload_path(grant.token))
    return ok({"uploadUrl": url})


@require_GET
@api_key_required
def get_signed_url(request: HttpRequest, run: Run) -> JsonResponse:
    if not same_project(run, request.GET.get("project", "")):
        return fail("This apikey is not valid for that project.", 403)
    # `name` is the upload URL, sent unencoded; it has no query of its own.
    upload = uploads.upload_of_url(run, request.GET.get("name", ""))
    if upload is None:
        return fail("That is not an upload URL of this run.", 404)
    url = request.build_absolute_uri(uploads.signed_path(upload))
    return ok({"signedUrl": url})


@csrf_exempt
@require_http_methods(["PUT"])
def upload(request: HttpRequest, token: str) -> JsonResponse:
    """The SDK PUTs the export file here with no header at all: the one-shot,
    expiring token in the path is the credential."""
    declared = request.headers.get("Content-Length")
    try:
        stored = uploads.upload_store(
            token, request, declared=int(declared) if declared else None
        )
    except exports.ExportError as exc:
        return fail(str(exc), exc.status)
    return ok({"name": stored.name, "size": stored.size})
