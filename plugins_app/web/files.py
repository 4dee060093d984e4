from __future__ import annotations

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse

from plugins_app.workspace.models import Asset


def asset_file_response(asset: Asset) -> HttpResponse:
    path = (settings.MEDIA_ROOT / asset.file).resolve()
    if settings.MEDIA_ROOT.resolve() not in path.parents or not path.is_file():
        raise Http404("The asset's file is missing")
    # Demo and uploaded images are small (≤ 1024 px); reading them whole keeps the
    # response async-friendly under ASGI.
    response = HttpResponse(path.read_bytes(), content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response


def export_file_response(
    name: str, *, filename: str, content_type: str | None = None
) -> FileResponse:
    """A file of the exports storage (built exports, plugins' uploads) as a
    streamed download: never read whole, whatever its size."""
    from plugins_app.exports.services import export_storage

    return FileResponse(
        export_storage().open(name, "rb"),
        as_attachment=True,
        filename=filename,
        content_type=content_type,
    )
