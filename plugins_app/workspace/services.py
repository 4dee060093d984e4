"""Writes to workspace data: pre-labels imported by plugins."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from plugins_app.runs.validation import unwrap_import_record, validate_answer
from plugins_app.workspace.models import Asset, Project, Task


@dataclass
class ImportResult:
    labeled: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


def prelabels_import(
    *,
    project: Project,
    records: list[Any],
    mapping: list[dict[str, str]] | None,
    run_id: int | None,
) -> ImportResult:
    """Validate every record, then write all of them or none (To-Do status).
    Every asset sharing a record's externalId gets its labels."""
    external_ids = {unwrap_import_record(r)[0] for r in records} - {None}
    assets = {
        a.external_id: a
        for a in Asset.objects.filter(project=project, external_id__in=external_ids)
    }
    result = ImportResult()
    answers: dict[int, dict[str, Any]] = {}
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
        )
        if checked.ok:
            answers[asset.pk] = checked.answer
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
        tasks = list(Task.objects.filter(asset_id__in=answers))
        for task in tasks:
            task.answer = answers[task.asset_id]
            task.status = Task.Status.TODO
            task.prelabel_run_id = run_id
        Task.objects.bulk_update(
            tasks, ["answer", "status", "prelabel_run"], batch_size=500
        )
    result.labeled = len(tasks)
    return result
