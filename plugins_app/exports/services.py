"""Export runs: building the v3 NDJSON export a plugin downloads, as a snapshot
recorded, built once (by a Celery worker), served by token and expired
(ango-plugin-protocol.md §2 Export, §4, §7.10). What its lines hold:
lines.py; the file the plugin uploads back: uploads.py.

Every file goes through the `exports` storage (settings.STORAGES): the local
filesystem below MEDIA_ROOT by default, an S3-compatible bucket when configured.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
import zipfile
from datetime import timedelta
from typing import IO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import transaction
from django.utils import timezone

from plugins_app.exports.lines import export_lines, ontology_titles
from plugins_app.exports.models import ExportSnapshot
from plugins_app.inputs import parse_ids
from plugins_app.plugins.secrets import new_token, token_hash
from plugins_app.runs.logs import run_note
from plugins_app.runs.models import Run

log = logging.getLogger(__name__)


class ExportError(Exception):
    """Bad input for an export or upload; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def export_storage() -> Storage:
    return storages["exports"]


# --- the v3 NDJSON export ----------------------------------------------------------
def snapshot_request(
    run: Run, *, stages: list[str], batch_ids: list[str], base_url: str, path: str
) -> tuple[ExportSnapshot, str]:
    """Record an export of the run's project and queue its build (Celery).
    Returns the snapshot and the token of its download link."""
    wanted = [str(b) for b in batch_ids]
    known = {
        str(pk)
        for pk in run.project.batches.filter(pk__in=parse_ids(wanted)).values_list(
            "pk", flat=True
        )
    }
    unknown = [b for b in wanted if b not in known]
    if unknown:
        raise ExportError("Not batches of this project: " + ", ".join(unknown[:20]))
    token = new_token()
    snapshot = ExportSnapshot.objects.create(
        run=run,
        token_hash=token_hash(token),
        stages=[str(s) for s in stages],
        batch_ids=[int(b) for b in wanted],
        base_url=base_url.rstrip("/"),
        expires_at=timezone.now() + timedelta(seconds=settings.HUB_EXPORT_LINK_SECONDS),
    )
    from plugins_app.exports.tasks import build_export

    run_note(
        run,
        f"Export requested ({path}): stages {', '.join(stages) or 'all'}; "
        f"batches {', '.join(wanted) or 'all'}. Building it in the background.",
    )
    pk = snapshot.pk
    transaction.on_commit(lambda: build_export.delay(pk))
    return snapshot, token


def snapshot_state(snapshot_id: int) -> tuple[str, str]:
    state, error = ExportSnapshot.objects.values_list("state", "error").get(
        pk=snapshot_id
    )
    return state, error


def snapshot_for_token(token: str) -> ExportSnapshot | None:
    return ExportSnapshot.objects.filter(
        token_hash=token_hash(token),
        state=ExportSnapshot.State.READY,
        expires_at__gt=timezone.now(),
    ).first()


def snapshots_expire() -> int:
    """Delete the stored zips of exports whose link expired (a plugin fetches
    its export once, right after asking); returns how many were deleted."""
    expired = ExportSnapshot.objects.filter(
        expires_at__lte=timezone.now(), state=ExportSnapshot.State.READY
    ).exclude(file="")
    deleted = 0
    for pk, name in expired.values_list("pk", "file"):
        export_storage().delete(name)
        deleted += ExportSnapshot.objects.filter(pk=pk, file=name).update(file="")
    return deleted


def snapshot_build(snapshot_id: int, *, where: str = "") -> bool:
    """Stream the export into a zip (one NDJSON member) on a temporary file,
    then hand it to the storage: memory stays flat whatever the task count.
    Built once: the first caller (a Celery worker, or the web process tired of
    waiting for one) claims it; returns False for any later one."""
    claimed = ExportSnapshot.objects.transition(
        snapshot_id, ExportSnapshot.State.PENDING, ExportSnapshot.State.BUILDING
    )
    if not claimed:
        return False
    snapshot = ExportSnapshot.objects.select_related("run__project").get(pk=snapshot_id)
    if where:
        run_note(snapshot.run, f"Export build started {where}.")
    try:
        with tempfile.TemporaryFile() as tmp:
            lines = write_export_zip(snapshot, tmp)
            tmp.seek(0)
            name = export_storage().save(
                f"snapshots/run-{snapshot.run_id}/{uuid.uuid4().hex}.zip", File(tmp)
            )
            size = export_storage().size(name)
    except Exception as exc:  # the plugin must hear why, not wait forever
        log.exception("export %s failed", snapshot_id)
        error = f"{type(exc).__name__}: {exc}"
        ExportSnapshot.objects.transition(
            snapshot_id,
            ExportSnapshot.State.BUILDING,
            ExportSnapshot.State.FAILED,
            error=error,
            finished_at=timezone.now(),
        )
        run_note(snapshot.run, f"Export failed: {error}", error=True)
        return True
    ExportSnapshot.objects.transition(
        snapshot_id,
        ExportSnapshot.State.BUILDING,
        ExportSnapshot.State.READY,
        file=name,
        size=size,
        lines=lines,
        finished_at=timezone.now(),
    )
    run_note(snapshot.run, f"Export built: {lines:,} task(s), {size:,} bytes zipped.")
    return True


def write_export_zip(snapshot: ExportSnapshot, out: IO[bytes]) -> int:
    """Write the zip to `out`; returns the number of NDJSON lines (tasks)."""
    project = snapshot.run.project
    titles = ontology_titles(project.ontology or {})
    count = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        member = f"{project.name or 'project'}-{project.pk}.ndjson".replace("/", "_")
        with archive.open(member, "w", force_zip64=True) as stream:
            for line in export_lines(snapshot, titles):
                # 1.3.22 counts b"\n": every line ends with one.
                stream.write(line.encode() + b"\n")
                count += 1
    return count
