"""The undo of a plugin run's writes (writes.py): each task it wrote gets the
answer and status it had before, from the run's ledger (AnswerWrite), unless
someone changed it since, which the task's history (TaskEvent) tells."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.db.models import Min
from django.utils import timezone

from plugins_app.workspace import events
from plugins_app.workspace.bulk import insert_many, update_answers
from plugins_app.workspace.human_work import CHANGES, when
from plugins_app.workspace.models import AnswerWrite, Task, TaskEvent

if TYPE_CHECKING:
    from plugins_app.runs.models import Run


@dataclass
class RestoreReport:
    restored: list[int] = field(default_factory=list)  # task ids
    kept: dict[int, str] = field(default_factory=dict)  # task id -> why not


def restore_run(run: Run, *, by: User) -> RestoreReport:
    """Give each task this run wrote the answer (and status) it had before,
    unless someone changed it since; call inside a transaction. Only rows still
    *written* are looked at, so a second call changes nothing."""
    writes = list(
        AnswerWrite.objects.filter(run=run, outcome=AnswerWrite.Outcome.WRITTEN)
        .select_for_update()
        .order_by("id")
    )
    report = RestoreReport()
    if not writes:
        return report
    first: dict[int, AnswerWrite] = {}
    for write in writes:
        first.setdefault(write.task_id, write)  # what the task held before the run
    ids = list(first)
    now = timezone.now()
    # In chunks: a run may have written more tasks than a query takes ids.
    for start in range(0, len(ids), UNDO_CHUNK):
        chunk = {i: first[i] for i in ids[start : start + UNDO_CHUNK]}
        _restore_chunk(run, chunk, by=by, now=now, report=report)
    # The kept ones are few; every other written row was restored.
    AnswerWrite.objects.filter(run=run, outcome=AnswerWrite.Outcome.WRITTEN).exclude(
        task_id__in=list(report.kept)
    ).update(outcome=AnswerWrite.Outcome.UNDONE, undone_at=now)
    for task_id, reason in report.kept.items():
        AnswerWrite.objects.filter(
            run=run, outcome=AnswerWrite.Outcome.WRITTEN, task_id=task_id
        ).update(outcome=AnswerWrite.Outcome.KEPT, reason=reason)
    return report


UNDO_CHUNK = 5_000


def _restore_chunk(
    run: Run,
    first: dict[int, AnswerWrite],
    *,
    by: User,
    now: Any,
    report: RestoreReport,
) -> None:
    since = _changes_since(run, first)
    tasks = {
        t.pk: t
        for t in Task.objects.select_for_update()
        .filter(pk__in=list(first))
        .only("id", "status", "answer")
    }
    rows: list[tuple[int, Any, str, int | None]] = []
    history: list[tuple] = []
    for task_id, write in first.items():
        task = tasks.get(task_id)
        if task is None:
            continue
        if task_id in since:
            report.kept[task_id] = f"task {task_id} was {since[task_id]}; not undone"
            continue
        # The status goes back only if it is still the one the write left (a
        # workflow stage moved the task on: the stage's status stays).
        status = (
            write.previous_status
            if write.previous_status and task.status == write.written_status
            else task.status
        )
        previous = write.previous_answer or {}
        rows.append((task_id, previous, status, write.previous_prelabel_run_id))
        data = {
            "run": run.pk,
            "plugin": run.plugin.name,
            "previousAnswer": task.answer or {},
        }
        history.append((task_id, events.ANSWER_RESTORED, by.pk, "", data, now))
        report.restored.append(task_id)
    update_answers(rows)
    insert_many(
        TaskEvent,
        ("task", "name", "actor", "actor_label", "data", "created_at"),
        history,
    )


def _changes_since(run: Run, first: dict[int, AnswerWrite]) -> dict[int, str]:
    """Per task, the first change by someone else after this run wrote it:
    'changed by bob on … (submitted)'. Read from the history, which holds every
    answer change whoever made it."""
    own = TaskEvent.objects.filter(
        task_id__in=list(first), name=events.ANSWER_WRITTEN, data__run=run.pk
    )
    floor = own.aggregate(first=Min("id"))["first"]
    if floor is None:
        return {}
    rows = (
        TaskEvent.objects.filter(
            task_id__in=list(first), id__gte=floor, name__in=CHANGES
        )
        .order_by("id")
        .values_list(
            "task_id", "name", "actor__username", "actor_label", "data", "created_at"
        )
    )
    wrote: set[int] = set()
    found: dict[int, str] = {}
    for task_id, name, who, label, data, at in rows:
        data = data or {}
        if name == events.ANSWER_WRITTEN and data.get("run") == run.pk:
            wrote.add(task_id)  # this run's own write (a later one changes nothing)
            continue
        if task_id not in wrote or task_id in found:
            continue  # before this run wrote it, or already known
        if name == events.TASK_SENT_BACK and not data.get("answerRemoved"):
            continue  # sent back with its answer: the answer is unchanged
        found[task_id] = _change_text(name, who or label or "someone", data, at)
    return found


def _change_text(name: str, who: str, data: dict[str, Any], at: Any) -> str:
    what = {
        events.LABEL_SUBMITTED: "submitted",
        events.LABEL_REVIEWED: f"{data.get('verdict') or 'reviewed'} in review",
        events.ANSWER_WRITTEN: f"written by run #{data.get('run')}",
        events.ANSWER_RESTORED: f"undo of run #{data.get('run')}",
        events.TASK_SENT_BACK: "sent back without its answer",
    }.get(name, name)
    return f"changed by {who} on {when(at)} ({what})"
