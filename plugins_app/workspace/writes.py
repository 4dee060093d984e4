"""The one way a plugin's answer reaches a task.

The rule (Ango's): a plugin writes pre-labels only to tasks that hold no
person's work, i.e. still To-Do and never submitted with the answer they hold.
A task past that keeps its answer; the write ends *skipped* with the reason.
Exceptions, each an explicit choice: a run an admin started with *Replace
submitted answers*, a workflow Plugin stage (an admin placed it), an event
plugin writing for review on the very task whose event started it (the
consensus merge; every labeler's answer stays in its Submission), and the
merge of a task's labeling jobs, once (`task.jobs_complete`).

Every write and every skip lands, in the caller's transaction and in bulk, in
the task's history (TaskEvent) and in the run's ledger (AnswerWrite), which
keeps the answer it replaced: `restore.restore_run` gives it back.

Its parts: human_work.py decides which tasks hold a person's work and which
run may write over it; prelabel.py is the short path for a task that certainly
holds none; bulk.py has the prepared statements; restore.py the undo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from plugins_app.workspace import events, human_work
from plugins_app.workspace.bulk import insert_many, update_answers
from plugins_app.workspace.models import AnswerWrite, Project, Task, TaskEvent

if TYPE_CHECKING:
    from plugins_app.runs.models import Run

# How an answer came: shown in the history and the ledger.
VIA_MODEL = "model response"
VIA_IMPORT = "batch import"
VIA_WORKFLOW = "workflow stage"

TASK_FIELDS = ("id", "project_id", "asset_id", "stage", "status", "answer")
# An AnswerWrite row's columns, as both ways of writing one insert them.
LEDGER_FIELDS = (
    "run",
    "task",
    "outcome",
    "reason",
    "previous_answer",
    "previous_status",
    "previous_prelabel_run",
    "written_status",
    "created_at",
)
# A TaskEvent row's columns, as a plugin's write inserts them.
HISTORY_FIELDS = ("task", "name", "actor_label", "data", "created_at")


@dataclass
class WriteReport:
    written: list[int] = field(default_factory=list)  # task ids
    skipped: dict[int, str] = field(default_factory=dict)  # task id -> reason


def write_answers(
    run: Run,
    project: Project,
    tasks: Sequence[Task],
    answers: dict[int, Any],
    *,
    via: str,
    version: str = "",
) -> WriteReport:
    """Write `answers[task.pk]` to each task the rule allows, skip the others.
    `tasks` must carry TASK_FIELDS and prelabel_run_id; call inside a
    transaction (the answers, history and ledger commit together). `version`:
    the plugin version that answered (default: the run's), kept in the history."""
    refuse_dry_run(run)
    held = human_work.held_by_people(tasks)
    report = WriteReport()
    rows: list[tuple[int, Any, str, int | None]] = []
    plans: list[tuple[Task, bool, str]] = []  # task, written, reason
    for task in tasks:
        reason = held.get(task.pk, "")
        override = human_work.override(run, task) if reason else ""
        if reason and not override:
            reason = human_work.why_kept(run, reason)
            report.skipped[task.pk] = reason
            plans.append((task, False, reason))
            continue
        note = f"{override}: {human_work.replaced(reason)}" if override else ""
        status = human_work.status_in_stage(project, task)
        rows.append((task.pk, answers[task.pk], status, run.pk))
        report.written.append(task.pk)
        plans.append((task, True, note))
    update_answers(rows)
    now = timezone.now()
    label = f"plugin {run.plugin.name}"
    base = history_data(run, via=via, version=version)
    insert_many(
        TaskEvent,
        HISTORY_FIELDS,
        [
            (
                task.pk,
                events.ANSWER_WRITTEN if written else events.ANSWER_KEPT,
                label,
                base
                | ({"previousAnswer": task.answer or {}} if written else {})
                | ({"reason": reason} if reason else {}),
                now,
            )
            for task, written, reason in plans
        ],
    )
    statuses = {pk: status for pk, _, status, _ in rows}
    insert_many(
        AnswerWrite,
        LEDGER_FIELDS,
        [
            (
                run.pk,
                task.pk,
                AnswerWrite.Outcome.WRITTEN if written else AnswerWrite.Outcome.SKIPPED,
                reason,
                (task.answer or {}) if written else None,
                task.status,
                task.prelabel_run_id,
                statuses.get(task.pk, ""),
                now,
            )
            for task, written, reason in plans
        ],
    )
    return report


def refuse_dry_run(run: Run) -> None:
    # A preview keeps its answers in PreviewAnswer (runs/preview.py) and must
    # never reach a task: refuse loudly rather than write.
    if run.dry_run:
        raise RuntimeError(f"run {run.pk} is a dry run: it writes no answer")


def history_data(run: Run, *, via: str, version: str) -> dict[str, Any]:
    """What every history row of a plugin's write says of who wrote it."""
    return {
        "run": run.pk,
        "plugin": run.plugin.name,
        "pluginVersion": version or run.plugin_version,
        "via": via,
    }
