"""What a run wrote on each task, read from what is stored rather than kept
twice: every change of a task's answer records the answer it replaced
(`previousAnswer` in the task's history: later runs' writes, undos, a
labeler's submit, a send-back without the answer). So a run's answer on a task
is the `previousAnswer` of the first such change after the run's own last
write there, or the task's current answer when nothing changed it since.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Max

from plugins_app.runs.models import Run
from plugins_app.workspace import events
from plugins_app.workspace.models import AnswerWrite, Task, TaskEvent

# The ledger's outcomes for which the run's answer was on the task at some point.
WROTE = (
    AnswerWrite.Outcome.WRITTEN,
    AnswerWrite.Outcome.UNDONE,
    AnswerWrite.Outcome.KEPT,
)
# History events that replace a task's answer and record the one they replaced.
REPLACING = (
    events.ANSWER_WRITTEN,
    events.ANSWER_RESTORED,
    events.LABEL_SUBMITTED,
    events.TASK_SENT_BACK,
)


def run_answers(run: Run, task_ids: list[int]) -> dict[int, tuple[Any, str]]:
    """Per task, the answer this run wrote there and what replaced it since
    ("" when the task still holds it). Tasks the run never wrote are absent."""
    own = dict(
        TaskEvent.objects.filter(
            task_id__in=task_ids, name=events.ANSWER_WRITTEN, data__run=run.pk
        )
        .values("task_id")
        .annotate(last=Max("id"))
        .values_list("task_id", "last")
    )
    if not own:
        return {}
    later = (
        TaskEvent.objects.filter(
            task_id__in=list(own),
            id__gt=min(own.values()),
            name__in=REPLACING,
            data__has_key="previousAnswer",
        )
        .order_by("id")
        # Only the two keys read: a submit's data also holds its answer and
        # every label's, decoding them tripled the cost (bench/compare.py).
        .values_list(
            "task_id",
            "id",
            "name",
            "actor__username",
            "data__previousAnswer",
            "data__run",
        )
    )
    result: dict[int, tuple[Any, str]] = {}
    for task_id, event_id, name, who, previous, by_run in later:
        if task_id in result or event_id <= own[task_id]:
            continue  # already found, or a change before this run's last write
        result[task_id] = (previous or {}, _since(name, who, {"run": by_run}))
    rest = [t for t in own if t not in result]
    current = Task.objects.filter(pk__in=rest).values_list("id", "answer")
    result.update({task_id: (answer, "") for task_id, answer in current})
    return result


def _since(name: str, who: str | None, data: dict[str, Any]) -> str:
    if name == events.ANSWER_WRITTEN:
        return f"replaced since by run #{data.get('run')}"
    if name == events.ANSWER_RESTORED:
        return f"undone since (run #{data.get('run')})"
    if name == events.LABEL_SUBMITTED:
        return f"changed since: submitted by {who or 'someone'}"
    return "removed since: the task was sent back without its answer"


def nothing_written(run: Run) -> bool:
    """True when the run put no object or classification on any task: no write
    at all (every task skipped, nothing imported), or only empty answers (the
    plugin returned nothing the mapping could keep). Read for finished runs;
    stops at the first non-empty answer, a chunk of tasks at a time."""
    # Most often the tasks still hold the run's answer, untouched since it
    # ended: one query decides.
    if run.finished_at is not None:
        held = Task.objects.filter(
            prelabel_run=run, updated_at__lte=run.finished_at
        ).values_list("answer", flat=True)
        if any(_non_empty(answer) for answer in held[:20]):
            return False
    written = (
        run.answer_writes.filter(outcome__in=WROTE)
        .order_by("task_id")
        .values_list("task_id", flat=True)
        .distinct()
    )
    # A few tasks first: a run that wrote anything has it on its first tasks
    # almost always, and the runs list asks this for every finished run.
    start, size = 0, 20
    while chunk := list(written[start : start + size]):
        if any(_non_empty(answer) for answer, _ in run_answers(run, chunk).values()):
            return False
        start, size = start + size, 500
    return True


def _non_empty(answer: Any) -> bool:
    return isinstance(answer, dict) and bool(
        answer.get("tools") or answer.get("classifications")
    )
