"""The lines of the v3 NDJSON export (ango-plugin-protocol.md §5): one per task,
read in chunks as plain rows, with its batches, its stage history from the
task's events and which plugin wrote its pre-label."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby, islice
from operator import itemgetter
from typing import Any

from django.db.models import QuerySet

from plugins_app.exports.models import ExportSnapshot
from plugins_app.exports.prelabels import PRELABEL_FIELDS, prelabel_blocks
from plugins_app.plugins.kinds import asset_file_link
from plugins_app.workspace import events
from plugins_app.workspace.models import Asset, Task, TaskEvent

CHUNK_SIZE = 1000  # tasks read per query while streaming an export

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


def ontology_titles(ontology: dict[str, Any]) -> dict[str, str]:
    titles: dict[str, str] = {}
    for key in ("tools", "classifications", "relations"):
        for entry in ontology.get(key, []):
            if isinstance(entry, dict) and entry.get("schemaId"):
                titles[str(entry["schemaId"])] = str(entry.get("title", ""))
    return titles
