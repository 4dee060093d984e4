"""The run page's gallery: every asset of one run, page by page, each drawn with
the answer *this run* wrote (runs/run_answers.py reads it from the history),
not the task's current one, or marked with why nothing was written (skipped,
failed, still waiting). An older run's page keeps showing its own output after
newer runs, and so does an undone run's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Min, QuerySet

from plugins_app.runs.models import Run, WorkItem
from plugins_app.runs.run_answers import WROTE, run_answers
from plugins_app.runs.selectors import answer_drawing
from plugins_app.workspace.models import AnswerWrite, Asset

GALLERY_PAGE_SIZE = 12


@dataclass(frozen=True)
class GalleryEntry:
    asset: Asset
    task_id: int | None
    # written, skipped, undone, kept (= not undone), or the job's state
    # (pending, leased, failed, cancelled, done) when the ledger has no row.
    outcome: str
    outcome_label: str
    reason: str
    shapes: list[dict[str, Any]]
    classifications: list[str]
    total_objects: int = 0
    # What happened to the run's answer on the task since ("" = still there).
    since: str = ""

    @property
    def capped(self) -> bool:
        return self.total_objects > len(self.shapes)

    @property
    def drawn(self) -> bool:
        return self.outcome in WROTE


@dataclass(frozen=True)
class Gallery:
    entries: list[GalleryEntry]
    page: Page


def run_gallery(run: Run, page: Any = 1, per_page: int = GALLERY_PAGE_SIZE) -> Gallery:
    """One page of the run's assets: a Model run's in job order, any other run's
    (Batch Model imports, event and workflow writes) in the order it wrote them."""
    found = Paginator(_asset_ids(run), per_page).get_page(page)
    ids = list(found.object_list)
    assets = {a.pk: a for a in Asset.objects.filter(pk__in=ids).select_related("task")}
    tasks = {a.task.pk: a for a in assets.values() if _task_id(a) is not None}
    ledger = _last_outcomes(run, list(tasks))
    items = _item_states(run, ids)
    written = [t for t, (outcome, _) in ledger.items() if outcome in WROTE]
    answers = run_answers(run, written)
    ontology = run.project.ontology
    entries = []
    for asset_id in ids:
        asset = assets.get(asset_id)
        if asset is None:
            continue
        task_id = _task_id(asset)
        outcome, reason = ledger.get(task_id, ("", "")) if task_id else ("", "")
        if not outcome:
            state, error = items.get(asset_id, (WorkItem.State.DONE, ""))
            outcome, label = state, WorkItem.State(state).label
            reason = error if state != WorkItem.State.DONE else "no answer written"
        else:
            label = AnswerWrite.Outcome(outcome).label
        answer, since = answers.get(task_id, ({}, "")) if task_id else ({}, "")
        shapes, classes, total = answer_drawing(answer, ontology)
        entries.append(
            GalleryEntry(
                asset, task_id, outcome, label, reason, shapes, classes, total, since
            )
        )
    return Gallery(entries, found)


def _task_id(asset: Asset) -> int | None:
    try:
        return asset.task.pk
    except Asset.task.RelatedObjectDoesNotExist:
        return None


def _asset_ids(run: Run) -> QuerySet[Any]:
    jobs = run.items.filter(asset__isnull=False)
    if jobs.exists():
        return jobs.order_by("id").values_list("asset_id", flat=True)
    # Ordered by each task's first write: a page is stable while the run goes on.
    return (
        run.answer_writes.values("task__asset_id")
        .annotate(first=Min("id"))
        .order_by("first")
        .values_list("task__asset_id", flat=True)
    )


def _last_outcomes(run: Run, task_ids: list[int]) -> dict[int, tuple[str, str]]:
    """Per task, the outcome and reason of this run's last ledger row (a Batch
    Model run may import the same asset twice)."""
    rows = (
        AnswerWrite.objects.filter(run=run, task_id__in=task_ids)
        .order_by("id")
        .values_list("task_id", "outcome", "reason")
    )
    return {task_id: (outcome, reason) for task_id, outcome, reason in rows}


def _item_states(run: Run, asset_ids: list[int]) -> dict[int, tuple[str, str]]:
    rows = run.items.filter(asset_id__in=asset_ids).values_list(
        "asset_id", "state", "error"
    )
    return {asset_id: (state, error) for asset_id, state, error in rows}
