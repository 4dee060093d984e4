"""State changes of tasks: moving through the workflow, sending back, issues and
metadata. Every change is recorded as an event (workspace/events.py), which is
how event plugins and workflow Plugin stages hear of it."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError, transaction

from plugins_app.answers import validate_answer
from plugins_app.inputs import answer_limits, parse_id
from plugins_app.workspace import events, workflow
from plugins_app.workspace.models import (
    Issue,
    LabelingJob,
    Membership,
    Project,
    Submission,
    Task,
)

# The status a task shows while it sits in a stage of each type.
STATUS_IN_STAGE = {
    workflow.START: Task.Status.TODO,
    workflow.LABEL: Task.Status.TODO,
    workflow.PLUGIN: Task.Status.TODO,
    workflow.REVIEW: Task.Status.SUBMITTED,
    workflow.COMPLETE: Task.Status.REVIEWED,
}


# Who may accept or reject in a Review stage; anyone in the organization labels.
REVIEWING_ROLES = (Membership.Role.ADMIN, Membership.Role.REVIEWER)


class TaskActionError(Exception):
    """The action does not apply to the task as it is now (shown to the user)."""


class TaskPermissionError(TaskActionError):
    """The user's role does not allow the action (shown to the user)."""


def is_org_admin(user: User | AnonymousUser, organization_id: int) -> bool:
    if user.pk is None:  # signed out: a member of nothing
        return False
    return Membership.objects.filter(
        user_id=user.pk, organization_id=organization_id, role=Membership.Role.ADMIN
    ).exists()


def may_review(user: User, organization_id: int) -> bool:
    return Membership.objects.filter(
        user_id=user.pk, organization_id=organization_id, role__in=REVIEWING_ROLES
    ).exists()


def task_move(
    task: Task,
    *,
    to_stage: str,
    actor: User | None = None,
    actor_label: str = "",
    data: dict[str, Any] | None = None,
) -> Task:
    """Put the task in `to_stage` and record `task.stage_entered`."""
    stage = workflow.stage_named(task.project.workflow, to_stage)
    if stage is None:
        raise TaskActionError(f"“{to_stage}” is not a stage of this project.")
    with transaction.atomic():
        from_stage = task.stage
        task.stage = to_stage
        task.status = STATUS_IN_STAGE.get(stage.get("type", ""), task.status)
        task.save(update_fields=["stage", "status", "updated_at"])
        events.emit(
            task,
            events.TASK_STAGE_ENTERED,
            actor=actor,
            actor_label=actor_label,
            data={"from": from_stage, "to": to_stage, **(data or {})},
        )
    return task


def task_send_back(
    task: Task,
    *,
    actor: User | None = None,
    actor_label: str = "",
    reason: str = "",
    to_stage: str | None = None,
    clear_answer: bool = False,
    run_id: int | None = None,
) -> Task:
    """Back to the labeling queue: `to_stage`, or the workflow's first Label
    stage; with `clear_answer`, the labeler starts from an empty answer instead
    of the one sent back (kept in the history as `previousAnswer`). `run_id`
    names the plugin run that asked for it."""
    target = to_stage or _first_label_stage(task)
    with transaction.atomic():
        # The next round of labeling starts from scratch (consensus included).
        task.submissions.filter(active=True).update(active=False)
        data: dict[str, Any] = {"from": task.stage, "to": target, "reason": reason}
        if run_id is not None:
            data["run"] = run_id
        if clear_answer:
            data["previousAnswer"] = task.answer or {}
            task.answer = {}
            task.save(update_fields=["answer", "updated_at"])
            data["answerRemoved"] = True
        events.emit(
            task, events.TASK_SENT_BACK, actor=actor, actor_label=actor_label, data=data
        )
        return task_move(task, to_stage=target, actor=actor, actor_label=actor_label)


def _first_label_stage(task: Task) -> str:
    stage = workflow.first_stage_of_type(task.project.workflow, workflow.LABEL)
    if stage is None:
        raise TaskActionError("This project's workflow has no Label stage.")
    return stage["name"]


def issue_create(
    task: Task,
    *,
    content: str,
    position: dict[str, Any] | None = None,
    actor: User | None = None,
    actor_label: str = "",
) -> Issue:
    content = (content or "").strip()
    if not content:
        raise TaskActionError("An issue needs a text.")
    return Issue.objects.create(
        task=task,
        content=content,
        position=position or {},
        created_by=actor,
        created_by_label=actor_label,
    )


def task_metadata_update(task: Task, values: dict[str, Any]) -> Task:
    """Merge `values` into the task's metadata (a key set to None is removed)."""
    if not isinstance(values, dict):
        raise TaskActionError("Metadata must be a JSON object.")
    with transaction.atomic():
        task = Task.objects.select_for_update().get(pk=task.pk)
        merged = {**task.metadata, **values}
        task.metadata = {k: v for k, v in merged.items() if v is not None}
        task.save(update_fields=["metadata", "updated_at"])
    return task


# --- labeling and review ------------------------------------------------------
def task_submit(
    task: Task,
    *,
    user: User,
    answer: dict[str, Any] | None = None,
    job: LabelingJob | None = None,
) -> Task:
    """A labeler submits the task in a Label stage. The answer is stored as the
    labeler's submission; once `labels_per_asset` different labelers have
    submitted, the task moves to the next stage. Every submission emits
    `label.submitted`; `data["complete"]` says whether it was the last one
    needed (only complete submissions trigger plugins). A project with labeling
    jobs takes one submission per job instead (`_submit_job_part`)."""
    # No answer given: the labeler submits the task's current labels as they are.
    answer = _checked_answer(task, task.answer if answer is None else answer)
    with transaction.atomic():
        task = (
            Task.objects.select_for_update().select_related("project").get(pk=task.pk)
        )
        stage = _stage_of_type(task, workflow.LABEL, "submitted")
        jobs = list(task.project.jobs.order_by("position", "id"))
        if jobs:
            return _submit_job_part(
                task, stage, jobs, user=user, answer=answer, job=job
            )
        already = TaskActionError(
            "You already submitted this task; it waits for other labelers "
            f"({task.project.labels_per_asset} labels per asset)."
        )
        if task.submissions.filter(active=True, user=user).exists():
            raise already
        try:
            # A double click racing itself past the check above: the unique
            # constraint decides, and the second gets the same answer.
            with transaction.atomic():
                Submission.objects.create(task=task, user=user, answer=answer)
        except IntegrityError:
            raise already from None
        labels = list(task.submissions.filter(active=True).select_related("user"))
        required = max(1, task.project.labels_per_asset)
        complete = len(labels) >= required
        previous = task.answer or {}
        task.answer = answer
        task.save(update_fields=["answer", "updated_at"])
        events.emit(
            task,
            events.LABEL_SUBMITTED,
            actor=user,
            data={
                "answer": answer,
                "submittedBy": user.get_username(),
                "stage": stage["name"],
                "labels": [_label_json(s) for s in labels],
                "labelsRequired": required,
                "complete": complete,
                # What the submit replaced: the history keeps every answer.
                "previousAnswer": previous,
            },
        )
        if complete:
            _move_on(task, stage, actor=user)
    return task


def _submit_job_part(
    task: Task,
    stage: workflow.Stage,
    jobs: list[LabelingJob],
    *,
    user: User,
    answer: dict[str, Any],
    job: LabelingJob | None,
) -> Task:
    """Parallel labeling: `user` submits `job`'s part of `answer` (the rest is
    other jobs' and is dropped). The task's answer becomes the parts in so
    far side by side (jobs.answer_with_parts: a job still to submit keeps its
    part of the answer as it was), so a reviewer sees everything even with no
    merging plugin; the part that completes the task raises
    `task.jobs_complete` (the merging plugin's trigger) and moves it on. Call
    inside task_submit's transaction."""
    # jobs.py builds on this module's errors; imported here, not at the top.
    from plugins_app.workspace.jobs import answer_with_parts, job_answer_part, job_json

    active = {
        s.job_id: s
        for s in task.submissions.filter(active=True, job__isnull=False)
        .select_related("user", "job")
        .order_by("job__position", "job_id")
    }
    job = _job_to_submit(task, jobs, user=user, job=job, submitted=set(active))
    if job.pk in active:
        raise TaskActionError(
            f"The job “{job.name}” of this task is already submitted (by "
            f"{active[job.pk].user.get_username()}); it waits for the other jobs."
        )
    part = job_answer_part(answer, job)
    try:
        # A double click racing itself past the check above: the unique
        # constraint (one active submission per job) decides.
        with transaction.atomic():
            mine = Submission.objects.create(task=task, user=user, job=job, answer=part)
    except IntegrityError:
        raise TaskActionError(
            f"The job “{job.name}” of this task is already submitted."
        ) from None
    active[job.pk] = mine
    parts = [active[j.pk] for j in jobs if j.pk in active]
    complete = len(parts) == len(jobs)
    previous = task.answer or {}
    task.answer = answer_with_parts(
        previous, jobs, {s.job_id: s.answer for s in parts if s.job_id}
    )
    task.save(update_fields=["answer", "updated_at"])
    labels = [_label_json(s) | {"job": s.job.name} for s in parts if s.job]
    events.emit(
        task,
        events.LABEL_SUBMITTED,
        actor=user,
        data={
            "answer": part,
            "job": job.name,
            "submittedBy": user.get_username(),
            "stage": stage["name"],
            "labels": labels,
            "jobsSubmitted": [s.job.name for s in parts if s.job],
            "jobsRequired": [j.name for j in jobs],
            # A part is not the task's label: plugins hear task.jobs_complete.
            "complete": False,
            "previousAnswer": previous,
        },
    )
    if not complete:
        return task
    events.emit(
        task,
        events.TASK_JOBS_COMPLETE,
        actor=user,
        data={
            "jobs": [
                {
                    "job": s.job.name,
                    "tools": list(s.job.tools or []),
                    "classifications": list(s.job.classifications or []),
                    "submittedBy": s.user.get_username(),
                    "submittedAt": s.submitted_at.isoformat(),
                    "answer": s.answer,
                }
                for s in parts
                if s.job
            ],
            "jobDefinitions": [job_json(j) for j in jobs],
            "answer": task.answer,
            "submittedBy": user.get_username(),
            "stage": stage["name"],
            "complete": True,
        },
    )
    return _move_on(task, stage, actor=user)


def _job_to_submit(
    task: Task,
    jobs: list[LabelingJob],
    *,
    user: User,
    job: LabelingJob | None,
    submitted: set[int | None],
) -> LabelingJob:
    """The job `user` submits: the one named, which must be theirs, or else
    their only job (their only one still open, if they are in several)."""
    theirs = set(
        LabelingJob.objects.filter(
            project_id=task.project_id, members=user.pk
        ).values_list("pk", flat=True)
    )
    mine = [j for j in jobs if j.pk in theirs]
    if job is not None:
        if job.project_id != task.project_id:
            raise TaskActionError(
                f"“{job.name}” is not a labeling job of this project."
            )
        if job.pk not in {j.pk for j in mine}:
            raise TaskPermissionError(
                f"You are not in the labeling job “{job.name}” of this project; "
                "an admin assigns labelers to jobs."
            )
        return job
    if not mine:
        raise TaskPermissionError(
            "You are not in any labeling job of this project; an admin assigns "
            "labelers to jobs (" + ", ".join(j.name for j in jobs) + ")."
        )
    open_ = [j for j in mine if j.pk not in submitted]
    if len(mine) == 1 or len(open_) == 1:
        return mine[0] if len(mine) == 1 else open_[0]
    raise TaskActionError(
        "You are in several labeling jobs of this project ("
        + ", ".join(j.name for j in (open_ or mine))
        + "): say which one you submit."
    )


def task_review(task: Task, *, user: User, accept: bool, reason: str = "") -> Task:
    """A reviewer accepts the task (next stage) or rejects it (back to the
    labeling queue); either way `label.reviewed` is recorded first."""
    reason = (reason or "").strip()
    with transaction.atomic():
        task = (
            Task.objects.select_for_update().select_related("project").get(pk=task.pk)
        )
        if not may_review(user, task.project.organization_id):
            raise TaskPermissionError(
                "Only reviewers and admins of this organization can accept or "
                "reject a task; an admin can give you the Reviewer role."
            )
        stage = _stage_of_type(task, workflow.REVIEW, "reviewed")
        if not accept and not reason:
            # The labeler gets the task back with only this to go on.
            raise TaskActionError(
                "Give a reason to reject: the labeler sees it when the task "
                "comes back to them."
            )
        events.emit(
            task,
            events.LABEL_REVIEWED,
            actor=user,
            data={
                "verdict": "accepted" if accept else "rejected",
                "reason": reason,
                "answer": task.answer,
                "reviewedBy": user.get_username(),
                "stage": stage["name"],
            },
        )
        if accept:
            return _move_on(task, stage, actor=user)
        return task_send_back(task, actor=user, reason=reason)


def _stage_of_type(task: Task, type_: str, verb: str) -> workflow.Stage:
    stage = workflow.stage_named(task.project.workflow, task.stage)
    if stage is None or stage.get("type") != type_:
        where = f"in {task.stage}" if stage else f"in an unknown stage ({task.stage})"
        wanted = "a Label" if type_ == workflow.LABEL else "a Review"
        raise TaskActionError(
            f"This task is {where}; only a task in {wanted} stage can be {verb}."
        )
    return stage


def _move_on(task: Task, stage: workflow.Stage, *, actor: User) -> Task:
    following = workflow.next_stage(task.project.workflow, stage["name"])
    if following is None:
        raise TaskActionError(f"The workflow has no stage after {stage['name']}.")
    return task_move(task, to_stage=following["name"], actor=actor)


def _checked_answer(task: Task, answer: Any) -> dict[str, Any]:
    """The answer as the hub stores answers: checked against the project's
    ontology and the asset's size, like a plugin's (plugins_app/answers/)."""
    if not isinstance(answer, dict):
        raise TaskActionError(
            'The answer must be a JSON object like {"tools": [], '
            '"classifications": [], "relations": []}.'
        )
    checked = validate_answer(
        answer,
        ontology=task.project.ontology,
        mapping=None,
        image_size=(task.asset.width, task.asset.height),
        **answer_limits(),
    )
    if not checked.ok:
        shown = checked.problems[:10]
        more = len(checked.problems) - len(shown)
        raise TaskActionError(
            "The answer does not fit this project: "
            + "; ".join(shown)
            + (f" (and {more} more)" if more > 0 else "")
        )
    return checked.answer


def _label_json(submission: Submission) -> dict[str, Any]:
    return {
        "submittedBy": submission.user.get_username(),
        "submittedAt": submission.submitted_at.isoformat(),
        "answer": submission.answer,
    }


# --- editing the workflow -----------------------------------------------------------
MAX_LABELS_PER_ASSET = 10


def project_set_labels_per_asset(project: Project, value: Any) -> Project:
    """Consensus: how many different labelers label each asset before it moves
    on. Applies from the next submit; labels already submitted still count."""
    text = str(value).strip()
    if not 1 <= (parse_id(text) or 0) <= MAX_LABELS_PER_ASSET:
        raise TaskActionError(
            f"Labels per asset must be a whole number from 1 to "
            f"{MAX_LABELS_PER_ASSET}, not “{text}”."
        )
    project.labels_per_asset = int(text)
    project.save(update_fields=["labels_per_asset"])
    return project


def workflow_stage_remove(project: Project, *, name: str) -> Project:
    """Remove a Plugin stage; refused while tasks sit in it (they would be lost
    between stages)."""
    waiting = project.tasks.filter(stage=name).count()
    if waiting:
        raise TaskActionError(
            f"{waiting} task(s) are in “{name}”: move them on (retry the stage or "
            "send them back) before removing it."
        )
    try:
        project.workflow = workflow.without_stage(project.workflow, name)
    except workflow.WorkflowError as exc:
        raise TaskActionError(str(exc)) from exc
    project.save(update_fields=["workflow"])
    return project
