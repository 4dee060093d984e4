"""An export plugin's upload: getUploadUrl grants a one-shot PUT, the body is
stored once in the `exports` storage, getSignedUrl links to it
(ango-plugin-protocol.md §7.10); the run page lists the files."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePosixPath
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.core.files import File
from django.urls import reverse
from django.utils import timezone

from plugins_app.exports.models import ExportUpload
from plugins_app.exports.services import ExportError, export_storage
from plugins_app.plugins.secrets import new_token, token_hash
from plugins_app.runs.logs import run_note
from plugins_app.runs.models import Run

COPY_BUFFER = 1024 * 1024


class Readable(Protocol):
    """What an upload's body needs: a file, or the HttpRequest of the PUT."""

    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True)
class UploadGrant:
    upload: ExportUpload
    token: str


def upload_grant(run: Run, *, name: str, file_type: str) -> UploadGrant:
    """getUploadUrl: a one-shot, expiring capability to PUT one export file."""
    if file_type != "exports":
        raise ExportError(
            f"Upload type {file_type!r} is not served by this hub; only 'exports'."
        )
    clean = PurePosixPath(name.replace("\\", "/")).name.strip()
    if not clean or clean in (".", ".."):
        raise ExportError("Give the file a name (name=...).")
    token = new_token()
    upload = ExportUpload.objects.create(
        run=run,
        token_hash=token_hash(token),
        name=clean[:255],
        expires_at=timezone.now() + timedelta(seconds=settings.HUB_UPLOAD_URL_SECONDS),
    )
    return UploadGrant(upload, token)


def upload_path(token: str) -> str:
    # The token is the last path segment and there is no query: getSignedUrl
    # receives this URL unencoded in its own query string.
    return reverse("ango_api:upload", args=[token])


def upload_of_url(run: Run, upload_url: str) -> ExportUpload | None:
    """getSignedUrl: the upload a URL from getUploadUrl names, if it is this run's."""
    token = PurePosixPath(urlsplit(upload_url).path).name
    if not token:
        return None
    return ExportUpload.objects.filter(token_hash=token_hash(token), run=run).first()


SIGNED_URL_SALT = "plugins_app.export-upload"


def signed_path(upload: ExportUpload) -> str:
    """getSignedUrl's answer: a capability link to the uploaded file. Whoever
    gets the plugin's result (a person, a script, Ango-style tooling) fetches
    it without the apikey, so the expiring signature in the path is the
    credential. Members also download the file from the run page, behind login."""
    token = signing.TimestampSigner(salt=SIGNED_URL_SALT).sign(str(upload.pk))
    return reverse("ango_api:signed-file", args=[token])


def upload_for_signed_token(token: str) -> ExportUpload | None:
    """The stored upload a signed link names, while the link is valid."""
    try:
        upload_id = signing.TimestampSigner(salt=SIGNED_URL_SALT).unsign(
            token, max_age=settings.HUB_SIGNED_URL_SECONDS
        )
    except signing.BadSignature:
        return None
    return (
        ExportUpload.objects.filter(pk=int(upload_id), uploaded_at__isnull=False)
        .select_related("run")
        .first()
    )


def upload_store(token: str, body: Readable, *, declared: int | None) -> ExportUpload:
    """The PUT: store the body once, before the URL expires, while the run lasts."""
    upload = (
        ExportUpload.objects.select_related("run")
        .filter(token_hash=token_hash(token))
        .first()
    )
    limit = settings.HUB_EXPORT_MAX_UPLOAD_BYTES
    if upload is None:
        raise ExportError("Unknown upload URL.", 404)
    if upload.uploaded_at is not None:
        raise ExportError("This upload URL was used already; ask for a new one.", 409)
    if upload.expires_at <= timezone.now():
        raise ExportError("This upload URL expired; ask for a new one.", 410)
    if upload.run.is_finished:
        raise ExportError("The run this upload URL belongs to has ended.", 410)
    if declared is not None and declared > limit:
        raise ExportError(_too_big(limit), 413)
    with tempfile.SpooledTemporaryFile(max_size=COPY_BUFFER) as tmp:
        size = _copy_limited(body, tmp, limit)
        tmp.seek(0)
        name = export_storage().save(
            f"uploads/run-{upload.run_id}/{upload.pk}-{upload.name}", File(tmp)
        )
    stored = ExportUpload.objects.filter(pk=upload.pk, uploaded_at__isnull=True).update(
        file=name, size=size, uploaded_at=timezone.now()
    )
    if stored != 1:  # a second PUT raced this one and won
        export_storage().delete(name)
        raise ExportError("This upload URL was used already; ask for a new one.", 409)
    upload.refresh_from_db()
    run_note(upload.run, f"Stored the uploaded file {upload.name} ({size:,} bytes).")
    return upload


def _copy_limited(source: Readable, target: IO[bytes], limit: int) -> int:
    size = 0
    while chunk := source.read(COPY_BUFFER):
        size += len(chunk)
        if size > limit:
            raise ExportError(_too_big(limit), 413)
        target.write(chunk)
    return size


def _too_big(limit: int) -> str:
    return (
        f"The file is over the hub's limit of {limit:,} bytes "
        "(HUB_EXPORT_MAX_UPLOAD_BYTES)."
    )


def uploaded_file(run: Run, signed_url: Any) -> ExportUpload | None:
    """The run's stored upload that the plugin's `response` (a signedUrl) names."""
    if not isinstance(signed_url, str):
        return None
    token = PurePosixPath(urlsplit(signed_url).path).name
    upload = upload_for_signed_token(token) if token else None
    return upload if upload is not None and upload.run_id == run.pk else None


def run_files(run: Run) -> list[ExportUpload]:
    """The files an Export run's plugin uploaded (none for other types, without
    a query: run pages of every type ask)."""
    if run.plugin.type != "export":
        return []
    return list(run.uploads.filter(uploaded_at__isnull=False))
