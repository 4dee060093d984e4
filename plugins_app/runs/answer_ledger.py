"""Reads of the answer ledger (workspace.AnswerWrite) for the pages and the
JSON API: what a run wrote, skipped and undid, and every run that touched a
task or an asset."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from plugins_app.runs.models import Run
from plugins_app.workspace.models import AnswerWrite, Asset, Task

MAX_WRITE_ROWS = 200
# What matters most first: kept tasks and their reasons.
_ORDER: dict[str, int] = {
    AnswerWrite.Outcome.SKIPPED: 0,
    AnswerWrite.Outcome.KEPT: 1,
    AnswerWrite.Outcome.WRITTEN: 2,
    AnswerWrite.Outcome.UNDONE: 3,
}


@dataclass(frozen=True)
class WriteRow:
    task_id: int
    asset_id: int
    project_id: int
    external_id: str
    outcome: str
    outcome_label: str
    reason: str


@dataclass(frozen=True)
class RunWrites:
    counts: dict[str, int]
    rows: tuple[WriteRow, ...]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def undoable(self) -> int:
        return self.counts.get(AnswerWrite.Outcome.WRITTEN, 0)


def run_writes(run: Run, limit: int = MAX_WRITE_ROWS) -> RunWrites:
    counts: dict[str, int] = dict(
        run.answer_writes.values("outcome")
        .annotate(n=Count("id"))
        .values_list("outcome", "n")
    )
    rows: list[WriteRow] = []
    for outcome in sorted(counts, key=lambda o: _ORDER.get(o, 9)):
        if len(rows) >= limit:
            break
        found = (
            run.answer_writes.filter(outcome=outcome)
            .order_by("id")
            .values_list(
                "task_id",
                "task__asset_id",
                "task__project_id",
                "task__asset__external_id",
                "reason",
            )[: limit - len(rows)]
        )
        label = AnswerWrite.Outcome(outcome).label
        rows += [WriteRow(t, a, p, e, outcome, label, r) for t, a, p, e, r in found]
    return RunWrites(counts, tuple(rows))


def runs_touching_task(task: Task, run_ids: set[int]) -> QuerySet[Run]:
    """Runs about the task, named in its history, or that wrote (or were kept
    from writing) its answer: event, workflow, Model and Batch Model runs."""
    touched = Q(task=task) | Q(pk__in=run_ids) | Q(answer_writes__task=task)
    touched |= Q(items__asset_id=task.asset_id)
    return _runs(touched)


def runs_touching_asset(asset: Asset) -> QuerySet[Run]:
    """Model runs over the asset and every run that wrote its task's answer
    (Batch Model imports have no item per asset)."""
    return _runs(Q(items__asset=asset) | Q(answer_writes__task__asset=asset))


def _runs(condition: Q) -> QuerySet[Run]:
    ids = Run.objects.filter(condition).values("pk")
    return (
        Run.objects.filter(pk__in=ids)
        .select_related("plugin", "project", "created_by")
        .order_by("-created_at", "-id")
    )
