"""What the task page, its canvas and the task list show of parallel labeling
(workspace/jobs.py) to one user: each job's state on the task, the jobs of the
user's that still wait, and the one job the page labels now.

The task page and the project page are rendered by views another module owns;
they reach this through template tags (templatetags/labeling_jobs.py), which
read the signed-in user from the request, so every render of those templates
(the page, its htmx partials, the 3 s poll) shows the same thing."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from plugins_app.inputs import parse_id
from plugins_app.workspace import events, workflow
from plugins_app.workspace.jobs import jobs_of, task_jobs_state
from plugins_app.workspace.models import LabelingJob, Project, Task, TaskEvent


@dataclass(frozen=True)
class TaskJobs:
    """A task of a project with labeling jobs, as one user sees it."""

    rows: list[dict[str, Any]]  # task_jobs_state: job, submitted, by, when
    mine: list[LabelingJob]  # the user's jobs in the project
    waiting: list[LabelingJob]  # of those, the ones not submitted on this task
    current: LabelingJob | None  # the job the page labels (None: nothing to do)
    in_label_stage: bool
    merged: TaskEvent | None  # the plugin write after the jobs were complete

    @property
    def complete(self) -> bool:
        return all(row["submitted"] for row in self.rows)


def task_jobs(user: Any, task: Task, requested: object = None) -> TaskJobs | None:
    """None for a project without jobs (it labels as before). `requested` is
    the ?job= of the page: which of the user's waiting jobs to label, when
    they have more than one; the first (in the project's order) otherwise."""
    project = task.project
    if not project.jobs.exists():
        return None
    rows = task_jobs_state(task)
    mine = jobs_of(user, project)
    submitted = {row["job"].pk for row in rows if row["submitted"]}
    waiting = [job for job in mine if job.pk not in submitted]
    in_label = _stage_type(project, task.stage) == workflow.LABEL
    chosen = parse_id(requested)
    current = None
    if in_label and waiting:
        current = next((j for j in waiting if j.pk == chosen), waiting[0])
    return TaskJobs(
        rows=rows,
        mine=mine,
        waiting=waiting if in_label else [],
        current=current,
        in_label_stage=in_label,
        merged=_merge_write(task),
    )


def _stage_type(project: Project, stage: str) -> str:
    return (workflow.stage_named(project.workflow, stage) or {}).get("type", "")


def _merge_write(task: Task) -> TaskEvent | None:
    """The latest plugin write of the task's answer after its jobs were last
    complete: the merging plugin's answer, what the reviewer reviews."""
    complete = (
        task.events.filter(name=events.TASK_JOBS_COMPLETE).order_by("-id").first()
    )
    if complete is None:
        return None
    return (
        task.events.filter(name=events.ANSWER_WRITTEN, id__gt=complete.pk)
        .order_by("-id")
        .first()
    )


def waiting_jobs_by_task(user: Any, project: Project) -> dict[int, list[str]]:
    """Task id → names of the user's jobs still to label on it, for the tasks
    in a Label stage (the labeler's queue); empty without jobs. Two queries
    whatever the number of tasks."""
    mine = jobs_of(user, project)
    if not mine:
        return {}
    label_stages = [
        s["name"]
        for s in workflow.stages(project.workflow)
        if s.get("type") == workflow.LABEL
    ]
    done: dict[int, set[int]] = defaultdict(set)
    tasks = project.tasks.filter(stage__in=label_stages)
    for task_id, job_id in (
        tasks.filter(submissions__active=True, submissions__job__in=mine)
        .values_list("pk", "submissions__job")
        .iterator()
    ):
        done[task_id].add(job_id)
    return {
        task_id: [job.name for job in mine if job.pk not in done[task_id]]
        for task_id in tasks.values_list("pk", flat=True)
    }
