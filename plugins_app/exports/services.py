"""Export runs: building the v3 NDJSON export a plugin downloads, and storing
the file it uploads back (ango-plugin-protocol.md §2 Export, §4, §5, §7.10).

Every file goes through the `exports` storage (settings.STORAGES): the local
filesystem below MEDIA_ROOT by default, an S3-compatible bucket when configured.
"""

from __future__ import annotations

import json
import logging
import tempfile
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from itertools import groupby, islice
from operator import itemgetter
from pathlib import PurePosixPath
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from plugins_app.exports.models import ExportSnapshot, ExportUpload
from plugins_app.exports.prelabels import PRELABEL_FIELDS, prelabel_blocks
from plugins_app.inputs import parse_ids
from plugins_app.plugins.kinds import asset_file_link
from plugins_app.plugins.secrets import new_token, token_hash
from plugins_app.runs.logs import run_note
from plugins_app.runs.models import Run
from plugins_app.workspace import events
from plugins_app.workspace.models import Asset, Task, TaskEvent

log = logging.getLogger(__name__)

CHUNK_SIZE = 1000  # tasks read per query while streaming an export
COPY_BUFFER = 1024 * 1024


class Readable(Protocol):
    """What an upload's body needs: a file, or the HttpRequest of the PUT."""

    def read(self, size: int, /) -> bytes: ...


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
    titles = _titles(project.ontology or {})
    count = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        member = f"{project.name or 'project'}-{project.pk}.ndjson".replace("/", "_")
        with archive.open(member, "w", force_zip64=True) as stream:
            for line in export_lines(snapshot, titles):
                # 1.3.22 counts b"\n": every line ends with one.
                stream.write(line.encode() + b"\n")
                count += 1
    return count


TASK_FIELDS = (
    "pk",
    "stage",
    "status",
    "answer",
    "updated_at",
    "asset_id",
    "asset__external_id",
    "asset__width",
    "asset__height",
    *PRELABEL_FIELDS,
)


def export_tasks(snapshot: ExportSnapshot) -> QuerySet[Task, dict[str, Any]]:
    """The rows to export, as plain dicts: model instances would tie tasks and
    assets into reference cycles that outlive each chunk until a full GC."""
    tasks = Task.objects.filter(project_id=snapshot.run.project_id)
    if snapshot.stages:
        tasks = tasks.filter(stage__in=snapshot.stages)
    if snapshot.batch_ids:
        tasks = tasks.filter(asset__batches__in=snapshot.batch_ids).distinct()
    return tasks.order_by("pk").values(*TASK_FIELDS)


def export_lines(snapshot: ExportSnapshot, titles: dict[str, str]) -> Iterator[str]:
    rows = export_tasks(snapshot).iterator(chunk_size=CHUNK_SIZE)
    while chunk := list(islice(rows, CHUNK_SIZE)):
        batches = _batch_names({row["asset_id"] for row in chunk})
        histories = _histories({row["pk"] for row in chunk}, titles)
        prelabels = prelabel_blocks(chunk)
        for row in chunk:
            line = export_line(
                row,
                batches.get(row["asset_id"], []),
                titles,
                snapshot.base_url,
                histories.get(row["pk"], _NO_HISTORY),
            )
            # Not Ango's: which plugin, version and run wrote the pre-label, and
            # whether a person changed it since (None: no plugin wrote it).
            line["prelabel"] = prelabels.get(row["pk"])
            yield json.dumps(line)


@dataclass(frozen=True)
class TaskHistory:
    updated_by: str  # who last gave the answer: a labeler, or a stage's plugin
    stage_history: list[dict[str, Any]]  # Ango's stageHistory, oldest first


_NO_HISTORY = TaskHistory("", [])
# The events a task's history is read from: leaving a stage, and the answers
# people (or a Plugin stage's plugin) gave along the way.
_HISTORY_EVENTS = (
    events.TASK_STAGE_ENTERED,
    events.LABEL_SUBMITTED,
    events.LABEL_REVIEWED,
)


def _histories(task_ids: set[int], titles: dict[str, str]) -> dict[int, TaskHistory]:
    """The history of a chunk of tasks, from their events in one query."""
    rows = (
        TaskEvent.objects.filter(task_id__in=task_ids, name__in=_HISTORY_EVENTS)
        .order_by("task_id", "id")
        .values_list(
            "task_id", "name", "actor__username", "actor_label", "data", "created_at"
        )
    )
    return {
        task_id: _history(of_task, titles)
        for task_id, of_task in groupby(rows.iterator(), key=itemgetter(0))
    }


def _history(rows: Iterable[tuple[Any, ...]], titles: dict[str, str]) -> TaskHistory:
    """One entry per stage the task left: when, by whom (the person or plugin
    that moved it on), after how long (ms since it entered), with the answer as
    it stood then."""
    entered_at = None
    answer: dict[str, Any] = {}
    updated_by = ""
    entries = []
    for _task_id, name, username, actor_label, data, at in rows:
        who = username or actor_label
        if name == events.LABEL_SUBMITTED or (
            name == events.TASK_STAGE_ENTERED and "answer" in data
        ):
            updated_by = who  # a labeler, or a Plugin stage's plugin
        answer = data.get("answer") or answer
        if name != events.TASK_STAGE_ENTERED:
            continue
        since = entered_at or at
        entries.append(
            {
                "stage": data.get("from", ""),
                "stageId": data.get("from", ""),
                "duration": int((at - since).total_seconds() * 1000),
                "completedAt": at.isoformat(),
                "completedBy": who,
                **_answer_fields(answer, titles, None),
            }
        )
        entered_at = at
    return TaskHistory(updated_by, entries)


def _batch_names(asset_ids: set[int]) -> dict[int, list[str]]:
    through = Asset.batches.through.objects.filter(asset_id__in=asset_ids)
    names: dict[int, list[str]] = {}
    for asset_id, name in through.values_list("asset_id", "batch__name"):
        names.setdefault(asset_id, []).append(name)
    return names


def export_line(
    row: dict[str, Any],
    batches: list[str],
    titles: dict[str, str],
    base_url: str,
    history: TaskHistory = _NO_HISTORY,
) -> dict[str, Any]:
    """One v3 export line (ango-plugin-protocol.md §5): `tools`, not `objects`,
    each with its `title`."""
    task_id = row["pk"]
    return {
        "asset": base_url + asset_file_link(row["asset_id"]),
        "assetId": str(row["asset_id"]),
        "externalId": row["asset__external_id"],
        "metadata": {"width": row["asset__width"], "height": row["asset__height"]},
        "batches": sorted(batches),
        "task": {
            "taskId": str(task_id),
            "stage": row["stage"],
            "stageId": row["stage"],
            "status": row["status"],
            "updatedAt": row["updated_at"].isoformat(),
            "updatedBy": history.updated_by,
            **_answer_fields(row["answer"] or {}, titles, task_id),
            "brushDataUrl": None,
            "medicalBrushDataUrl": None,
            "stageHistory": history.stage_history,
        },
    }


def _answer_fields(
    answer: dict[str, Any], titles: dict[str, str], task_id: int | None
) -> dict[str, Any]:
    """tools (with title, and objectId for the task's own), classifications and
    relations of an answer."""
    return {
        "tools": [
            _titled(t, titles, f"{task_id}-{i}" if task_id is not None else None)
            for i, t in enumerate(answer.get("tools", []))
        ],
        "classifications": [
            _titled(c, titles, None) for c in answer.get("classifications", [])
        ],
        "relations": list(answer.get("relations", [])),
    }


def _titled(entry: Any, titles: dict[str, str], object_id: str | None) -> Any:
    if not isinstance(entry, dict):
        return entry
    out = dict(entry)
    out.setdefault("title", titles.get(str(out.get("schemaId")), ""))
    if object_id is not None:
        out.setdefault("objectId", object_id)
    return out


def _titles(ontology: dict[str, Any]) -> dict[str, str]:
    titles: dict[str, str] = {}
    for key in ("tools", "classifications", "relations"):
        for entry in ontology.get(key, []):
            if isinstance(entry, dict) and entry.get("schemaId"):
                titles[str(entry["schemaId"])] = str(entry.get("title", ""))
    return titles


# --- the plugin's upload ---------------------------------------------------------
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
