"""Writes to workspace data: pre-labels imported by plugins, assets and batches
created by them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import transaction

from plugins_app.answers import unwrap_import_record, validate_answer
from plugins_app.inputs import answer_limits
from plugins_app.workspace import writes
from plugins_app.workspace.models import Asset, Batch, Project, Storage, Task

if TYPE_CHECKING:
    from plugins_app.runs.models import Run


@dataclass
class ImportResult:
    labeled: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    # Records whose task holds a person's work: kept, not written (writes.py).
    skipped: list[dict[str, Any]] = field(default_factory=list)


def prelabels_import(
    *,
    project: Project,
    records: list[Any],
    mapping: list[dict[str, str]] | None,
    run: Run,
    version: str = "",
) -> ImportResult:
    """Validate every record, then write all of them or none, except the tasks
    that hold a person's work: those are skipped with the reason (writes.py).
    Every asset sharing a record's externalId gets its labels. `version`: the
    plugin version that sends them (the run's when not given)."""
    external_ids = {unwrap_import_record(r)[0] for r in records} - {None}
    assets = {
        a.external_id: a
        for a in Asset.objects.filter(project=project, external_id__in=external_ids)
    }
    result = ImportResult()
    answers: dict[int, dict[str, Any]] = {}
    records_of: dict[int, tuple[int, str]] = {}
    for index, record in enumerate(records):
        external_id, raw = unwrap_import_record(record)
        asset = assets.get(external_id) if external_id else None
        if asset is None:
            problem = (
                f"no asset with externalId {external_id!r} in this project"
                if external_id
                else "the record has no externalId"
            )
            result.errors.append(
                {"index": index, "externalId": external_id, "problems": [problem]}
            )
            continue
        checked = validate_answer(
            raw,
            ontology=project.ontology,
            mapping=mapping,
            image_size=(asset.width, asset.height),
            **answer_limits(),
        )
        if checked.ok:
            answers[asset.pk] = checked.answer
            records_of[asset.pk] = (index, asset.external_id)
        else:
            result.errors.append(
                {
                    "index": index,
                    "externalId": external_id,
                    "problems": checked.problems,
                }
            )
    if result.errors:
        return result
    with transaction.atomic():
        tasks = list(
            Task.objects.select_for_update()
            .filter(asset_id__in=answers)
            .only(*writes.TASK_FIELDS, "prelabel_run_id")
        )
        report = writes.write_answers(
            run,
            project,
            tasks,
            {t.pk: answers[t.asset_id] for t in tasks},
            via=writes.VIA_IMPORT,
            version=version,
        )
    asset_of = {t.pk: t.asset_id for t in tasks}
    result.labeled = len(report.written)
    result.skipped = [
        {
            "index": records_of[asset_of[task_id]][0],
            "externalId": records_of[asset_of[task_id]][1],
            "reason": reason,
        }
        for task_id, reason in report.skipped.items()
    ]
    return result


# --- assets created by plugins (POST /v2/project/{id}/cloud) -------------------
MAX_CLOUD_RECORDS = 10_000
MAX_MARKDOWN_CHARS = 1_000_000


@dataclass
class CloudImportResult:
    created: list[Asset] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def assets_create_from_cloud(
    *,
    project: Project,
    records: list[Any],
    batch_ids: list[Any],
    run_id: int | None,
) -> CloudImportResult:
    """Create one asset (and its task) per record `{"data", "externalId",
    "storage"?, "batches"?}`: `data` is a URL (a bucket object) or raw markdown.
    Every record is checked first; any bad one writes nothing."""
    result = CloudImportResult()
    if len(records) > MAX_CLOUD_RECORDS:
        result.errors.append(
            {"index": None, "problems": [f"at most {MAX_CLOUD_RECORDS} per call"]}
        )
        return result
    batches = _batches_by_ref(project)
    storages = {str(s.pk): s for s in Storage.usable_by(project)}
    common_problems: list[str] = []
    common = _batch_refs(batch_ids, batches, common_problems)
    if common_problems:
        result.errors.append({"index": None, "problems": common_problems})
    existing = set(
        Asset.objects.filter(
            project=project,
            external_id__in=[r.get("externalId") for r in records if _is_dict(r)],
        ).values_list("external_id", flat=True)
    )
    planned: list[tuple[Asset, list[Batch]]] = []
    seen: set[str] = set()
    for index, record in enumerate(records):
        problems: list[str] = []
        asset = _cloud_asset(project, record, storages, problems)
        record_batches = _batch_refs(
            record.get("batches", []) if _is_dict(record) else [], batches, problems
        )
        if asset is not None and asset.external_id in existing | seen:
            problems.append(
                f"an asset with externalId {asset.external_id!r} already exists"
            )
        if problems or asset is None:
            external_id = record.get("externalId") if _is_dict(record) else None
            result.errors.append(
                {"index": index, "externalId": external_id, "problems": problems}
            )
            continue
        seen.add(asset.external_id)
        asset.created_by_run_id = run_id
        planned.append((asset, common + record_batches))
    if result.errors:
        return result
    with transaction.atomic():
        created = Asset.objects.bulk_create([a for a, _ in planned], batch_size=500)
        Task.objects.bulk_create(
            [Task(project=project, asset=a) for a in created], batch_size=500
        )
        links = [
            Asset.batches.through(asset_id=a.pk, batch_id=b.pk)
            for a, (_, bs) in zip(created, planned, strict=True)
            for b in {b.pk: b for b in bs}.values()
        ]
        Asset.batches.through.objects.bulk_create(links, batch_size=1000)
    result.created = created
    return result


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _cloud_asset(
    project: Project,
    record: Any,
    storages: dict[str, Storage],
    problems: list[str],
) -> Asset | None:
    if not isinstance(record, dict):
        problems.append("the record is not an object")
        return None
    data, external_id = record.get("data"), record.get("externalId")
    if not isinstance(data, str) or not data.strip():
        problems.append("data must be a non-empty string (a URL or markdown text)")
        return None
    is_url = data.startswith(("http://", "https://")) and "\n" not in data
    if external_id is None and is_url:
        external_id = data.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    if not isinstance(external_id, str) or not external_id.strip():
        problems.append("externalId must be a non-empty string")
        return None
    if len(external_id) > 300:
        problems.append("externalId is longer than 300 characters")
    if is_url and len(data) > 2000:
        problems.append("the URL is longer than 2000 characters")
    if not is_url and len(data) > MAX_MARKDOWN_CHARS:
        problems.append(f"markdown longer than {MAX_MARKDOWN_CHARS:,} characters")
    storage = None
    if record.get("storage") not in (None, ""):
        storage = storages.get(str(record["storage"]))
        if storage is None:
            problems.append(f"storage {record['storage']!r} is not usable here")
    return Asset(
        project=project,
        external_id=external_id.strip(),
        kind=Asset.Kind.URL if is_url else Asset.Kind.MARKDOWN,
        url=data if is_url else "",
        content="" if is_url else data,
        storage=storage,
    )


def _batches_by_ref(project: Project) -> dict[str, Batch]:
    refs: dict[str, Batch] = {}
    for batch in project.batches.all():
        refs.setdefault(batch.name, batch)
        refs[str(batch.pk)] = batch
    return refs


def _batch_refs(
    refs: Any, batches: dict[str, Batch], problems: list[str]
) -> list[Batch]:
    """Batch ids (what the SDK sends after its name lookup) or names."""
    if not isinstance(refs, list):
        problems.append("batches must be a list")
        return []
    unknown = [str(r) for r in refs if str(r) not in batches]
    if unknown:
        problems.append("unknown batches: " + ", ".join(unknown[:10]))
    return [batches[str(r)] for r in refs if str(r) in batches]


def batches_create(*, project: Project, names: list[str]) -> list[Batch]:
    """Create the named batches that do not exist yet; returns every named one.
    Idempotent: a retried plugin call creates nothing twice."""
    names = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    existing = {b.name: b for b in project.batches.filter(name__in=names)}
    with transaction.atomic():
        for name in names:
            if name not in existing:
                existing[name], _ = Batch.objects.get_or_create(
                    project=project, name=name
                )
    return [existing[n] for n in names]
