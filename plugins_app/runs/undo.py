"""Undo a whole run: every task it wrote gets back the answer it had before,
unless someone changed it since (workspace/restore.py decides, per task).
Admins of the run's organization only; idempotent; recorded in the run's log
and in each restored task's history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from django.contrib.auth.models import AbstractBaseUser, User
from django.db import transaction
from django.utils import timezone

from plugins_app.runs.ledger import RunActionError
from plugins_app.runs.logs import run_note
from plugins_app.runs.models import Run
from plugins_app.workspace import restore
from plugins_app.workspace.lifecycle import is_org_admin
from plugins_app.workspace.models import AnswerWrite, Task


class UndoPermissionError(RunActionError):
    """Only admins of the run's organization undo runs."""


@dataclass(frozen=True)
class NotUndone:
    task_id: int
    external_id: str
    reason: str


@dataclass
class UndoResult:
    run: Run
    restored: list[int] = field(default_factory=list)  # task ids, by this call
    # Every task of the run left as it was, with why (this call's and earlier).
    not_undone: list[NotUndone] = field(default_factory=list)

    @property
    def message(self) -> str:
        kept = len(self.not_undone)
        if not self.restored and not kept:
            return "Nothing to undo: this run changed no task's answer."
        if not self.restored:
            return f"Nothing left to undo; {kept} task(s) were not undone (see why)."
        tail = f"; {kept} task(s) not undone, changed since" if kept else ""
        return f"Undone: {len(self.restored)} task(s) got their answer back{tail}."


def may_undo(user: AbstractBaseUser, run: Run) -> bool:
    return is_org_admin(cast(User, user), run.organization_id)


def run_undo(run: Run, *, by: AbstractBaseUser) -> UndoResult:
    if not may_undo(by, run):
        raise UndoPermissionError("Only admins of this organization can undo a run.")
    with transaction.atomic():
        run = Run.objects.select_for_update().select_related("plugin").get(pk=run.pk)
        if not run.is_finished:
            raise RunActionError(
                f"Run #{run.pk} is still {run.get_status_display().lower()}: cancel "
                "it or let it finish before undoing it."
            )
        report = restore.restore_run(run, by=cast(User, by))
        if report.restored or report.kept:
            # A Batch Model run's progress counts the tasks holding its labels.
            labeled = Task.objects.filter(prelabel_run=run).count()
            Run.objects.filter(pk=run.pk).update(assets_labeled=labeled)
            if run.undone_at is None:
                Run.objects.filter(pk=run.pk).update(
                    undone_at=timezone.now(), undone_by=by
                )
            result = UndoResult(run, report.restored, _not_undone(run))
            reasons = "".join(f"\n{n.reason}" for n in result.not_undone[:20])
            run_note(
                run, f"{by.get_username()} undid this run. {result.message}{reasons}"
            )
        else:
            result = UndoResult(run, [], _not_undone(run))
    run.refresh_from_db()
    result.run = run
    return result


def _not_undone(run: Run) -> list[NotUndone]:
    rows = (
        AnswerWrite.objects.filter(run=run, outcome=AnswerWrite.Outcome.KEPT)
        .order_by("id")
        .values_list("task_id", "task__asset__external_id", "reason")
    )
    return [NotUndone(*row) for row in rows]
