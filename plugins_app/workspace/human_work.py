"""Which tasks hold a person's work, and which runs may write over it anyway:
the rule `writes.write_answers` applies per task (module docstring of
writes.py) and whose history `restore.restore_run` reads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from plugins_app.workspace import events, workflow
from plugins_app.workspace.lifecycle import STATUS_IN_STAGE
from plugins_app.workspace.models import Project, Submission, Task, TaskEvent

if TYPE_CHECKING:
    from plugins_app.runs.models import Run

WORKFLOW_TRIGGER = "workflow"  # Run.trigger of a workflow Plugin stage's run
# Events after a write that mean someone else changed (or vouched for) the
# answer since: its undo would destroy their work.
CHANGES = (
    events.LABEL_SUBMITTED,
    events.LABEL_REVIEWED,
    events.ANSWER_WRITTEN,
    events.ANSWER_RESTORED,
    events.TASK_SENT_BACK,
)


def held_by_people(tasks: Iterable[Task]) -> dict[int, str]:
    """The tasks holding a person's work, with why: submitted or reviewed (past
    To-Do), or back in labeling with an answer a person submitted."""
    tasks = list(tasks)
    maybe = [t.pk for t in tasks if t.status == Task.Status.TODO and t.answer]
    submitted = (
        set(
            Submission.objects.filter(task_id__in=maybe)
            .values_list("task_id", flat=True)
            .distinct()
        )
        if maybe
        else set()
    )
    held = [t for t in tasks if t.status != Task.Status.TODO or t.pk in submitted]
    if not held:
        return {}
    last = _last_human_acts([t.pk for t in held])
    reasons = {}
    for task in held:
        act = last.get(task.pk)
        if act is None:
            status = Task.Status(task.status).label
            reasons[task.pk] = (
                f"task {task.pk} is {status} (stage {task.stage}); its answer was kept"
            )
        else:
            reasons[task.pk] = f"task {task.pk} was {act}; its answer was kept"
    return reasons


def _last_human_acts(task_ids: list[int]) -> dict[int, str]:
    """'accepted by bob on 2026-12-03 10:12' per task: its latest submit or
    review by a person."""
    acts: dict[int, str] = {}
    rows = (
        TaskEvent.objects.filter(
            task_id__in=task_ids,
            name__in=(events.LABEL_SUBMITTED, events.LABEL_REVIEWED),
            actor__isnull=False,
        )
        .order_by("id")
        .values_list(
            "task_id", "name", "actor__username", "data__verdict", "created_at"
        )
    )
    for task_id, name, who, verdict, at in rows:
        verb = "submitted" if name == events.LABEL_SUBMITTED else verdict or "reviewed"
        acts[task_id] = f"{verb} by {who} on {when(at)}"
    return acts


def when(at: Any) -> str:
    """A history time as the reasons show it, to the minute, local time."""
    return timezone.localtime(at).strftime("%Y-%m-%d %H:%M")


def status_in_stage(project: Project, task: Task) -> str:
    """To-Do for a task still to be labeled; a task past labeling (e.g. the
    merged consensus label written for review) keeps its stage's status."""
    stage = workflow.stage_named(project.workflow, task.stage) or {}
    return STATUS_IN_STAGE.get(stage.get("type", ""), Task.Status.TODO)


def override(run: Run, task: Task) -> str:
    """Why this run may write over a person's work anyway ("" if it may not)."""
    if run.replace_submitted:
        return "Replace submitted answers (chosen by an admin for this run)"
    if run.trigger == WORKFLOW_TRIGGER:
        return "written by a workflow Plugin stage an admin placed"
    if run.trigger == events.TASK_JOBS_COMPLETE:
        return _jobs_merge_override(run, task)
    if (
        run.trigger in events.TRIGGER_EVENTS
        and run.task_id == task.pk
        and task.status != Task.Status.REVIEWED
    ):
        # The consensus merge: the labelers' answers stay in their submissions.
        return "written for review by the plugin its own event started"
    return ""


def _jobs_merge_override(run: Run, task: Task) -> str:
    """Parallel labeling: the run `task.jobs_complete` started replaces the
    union of the jobs' parts once, for review. Not if the task changed since
    its event (reviewed, sent back, written, undone): a late or second write
    (a retried job) would replace someone else's answer or its own merge."""
    if run.task_id != task.pk or run.event_id is None:
        return ""
    since = TaskEvent.objects.filter(
        task_id=task.pk, id__gt=run.event_id, name__in=CHANGES
    )
    if task.status == Task.Status.REVIEWED or since.exists():
        return ""
    return (
        "the merge of its labeling jobs, by the plugin task.jobs_complete "
        "started (each job's label stays in its submission)"
    )


def why_kept(run: Run, reason: str) -> str:
    """The skip reason of a task held by people, for this run."""
    if run.trigger != events.TASK_JOBS_COMPLETE:
        return reason
    return (
        f"{reason}: a merge of labeling jobs is written once, and only while "
        "the task is as its task.jobs_complete left it"
    )


def replaced(reason: str) -> str:
    """The reason a task was held, as said of a task written over anyway."""
    return reason.replace("; its answer was kept", "; its answer was replaced")
