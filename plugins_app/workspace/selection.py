"""A saved filter over a project's assets: what the asset table searches, what a
run started on a selection is scoped to (Run.selection), and what `POST
/api/runs` accepts as `selection`.

A selection is a small JSON object, never a list of every asset it matches:
`{"q", "batch", "stage", "status", "prelabel_plugin", "ids"}`, all optional.
The filters are ANDed; `ids` (the rows ticked on one page of the table) narrows
them further; an empty object is every asset of the project.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from plugins_app.workspace.models import Asset, Batch, Project, Task

# Ticked rows travel as ids; more than a few pages of them is what the
# "all N matching" filter is for.
MAX_IDS = 1000
MAX_TEXT = 300
FIELDS = ("q", "batch", "stage", "status", "prelabel_plugin", "ids")
STATUSES = tuple(Task.Status.values)


class SelectionError(ValueError):
    """A filter the hub cannot apply; the message says which field and why."""


@dataclass(frozen=True)
class Selection:
    q: str = ""  # part of the external ID, any case
    batch: int | None = None
    stage: str = ""
    status: str = ""  # a Task.Status value
    prelabel_plugin: int | None = None  # the current pre-label came from it
    ids: tuple[int, ...] = ()  # ticked rows; empty: every matching asset

    def as_json(self) -> dict[str, Any]:
        """The compact form stored on a run and carried by the Run dialog."""
        data: dict[str, Any] = {
            "q": self.q,
            "batch": self.batch,
            "stage": self.stage,
            "status": self.status,
            "prelabel_plugin": self.prelabel_plugin,
            "ids": list(self.ids),
        }
        return {k: v for k, v in data.items() if v not in ("", None, [])}

    def with_ids(self, ids: list[int]) -> Selection:
        return Selection(
            self.q,
            self.batch,
            self.stage,
            self.status,
            self.prelabel_plugin,
            tuple(ids),
        )


def parse(raw: Any, project: Project) -> Selection:
    """A selection from JSON (the API's `selection`, the dialog's hidden field,
    Run.selection); SelectionError names the first bad field."""
    if not isinstance(raw, Mapping):
        raise SelectionError("The selection must be a JSON object.")
    unknown = sorted(str(k) for k in raw if k not in FIELDS)
    if unknown:
        raise SelectionError(
            f"Unknown selection field(s): {', '.join(unknown)[:200]}. "
            f"Known: {', '.join(FIELDS)}."
        )
    batch = _optional_id(raw.get("batch"), "batch")
    if batch is not None and not project.batches.filter(pk=batch).exists():
        raise SelectionError(f"batch {batch} is not a batch of this project.")
    status = _text(raw.get("status"), "status").upper()
    if status and status not in STATUSES:
        raise SelectionError(f"status must be one of {', '.join(STATUSES)}.")
    ids = raw.get("ids") or []
    if not isinstance(ids, list):
        raise SelectionError("ids must be a list of asset ids.")
    if len(ids) > MAX_IDS:
        raise SelectionError(
            f"ids lists at most {MAX_IDS} assets; select all matching instead."
        )
    return Selection(
        q=_text(raw.get("q"), "q"),
        batch=batch,
        stage=_text(raw.get("stage"), "stage"),
        status=status,
        prelabel_plugin=_optional_id(raw.get("prelabel_plugin"), "prelabel_plugin"),
        ids=tuple(dict.fromkeys(_id(i, "ids") for i in ids)),
    )


def from_query(params: Mapping[str, str], project: Project) -> Selection:
    """The asset table's search form (GET parameters; `plugin` is the
    prelabel_plugin). Empty fields are no filter."""
    return parse(
        {
            "q": params.get("q", ""),
            "batch": params.get("batch") or None,
            "stage": params.get("stage", ""),
            "status": params.get("status", ""),
            "prelabel_plugin": params.get("plugin") or None,
        },
        project,
    )


def assets(project: Project, selection: Selection) -> QuerySet[Asset]:
    """The project's assets the selection matches, in external ID order."""
    found = Asset.objects.filter(project=project)
    if selection.q:
        found = found.filter(external_id__icontains=selection.q)
    if selection.batch is not None:
        found = found.filter(batches=selection.batch)
    if selection.stage:
        found = found.filter(task__stage=selection.stage)
    if selection.status:
        found = found.filter(task__status=selection.status)
    if selection.prelabel_plugin is not None:
        # The organization check keeps another tenant's plugin id matching
        # nothing, even if its runs somehow pointed here.
        found = found.filter(
            task__prelabel_run__plugin_id=selection.prelabel_plugin,
            task__prelabel_run__organization_id=project.organization_id,
        )
    if selection.ids:
        found = found.filter(pk__in=selection.ids)
    return found.order_by("external_id", "pk")


def describe(selection: Selection, project: Project) -> str:
    """The selection in words, for the Run dialog and the run page."""
    parts = []
    if selection.q:
        parts.append(f"external ID contains “{selection.q}”")
    if selection.batch is not None:
        batch = Batch.objects.filter(pk=selection.batch, project=project).first()
        parts.append(f"batch {batch.name if batch else selection.batch}")
    if selection.stage:
        parts.append(f"stage {selection.stage}")
    if selection.status:
        parts.append(f"status {Task.Status(selection.status).label}")
    if selection.prelabel_plugin is not None:
        parts.append(f"pre-label from plugin #{selection.prelabel_plugin}")
    if selection.ids:
        parts.append("the ticked rows")
    return ", ".join(parts) or "every asset of the project"


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SelectionError(f"{name} must be a string.")
    if len(value) > MAX_TEXT:
        raise SelectionError(f"{name} is longer than {MAX_TEXT} characters.")
    return value.strip()


def _optional_id(value: Any, name: str) -> int | None:
    if value in (None, ""):
        return None
    return _id(value, name)


def _id(value: Any, name: str) -> int:
    # bool is an int in Python, and int(1.5) is 1: neither is an id.
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SelectionError(f"{name} must be a positive integer id.")
    number = value
    if not 0 < number <= 2**31 - 1:
        raise SelectionError(f"{name} must be a positive integer id.")
    return number
