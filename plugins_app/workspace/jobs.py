"""Parallel labeling (Kili's jobs): a project splits its ontology into jobs,
each a group of tools and classifications with its own members. A task is
labeled once per job, each labeler seeing and submitting only their job's
part; when every job is in, lifecycle.task_submit raises `task.jobs_complete`
for a merging event plugin. A project without jobs labels as before."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from plugins_app.workspace.lifecycle import TaskActionError
from plugins_app.workspace.models import LabelingJob, Membership, Project, Task

MAX_JOBS = 20


class JobSpecError(TaskActionError):
    """The jobs asked for do not fit the project (shown to the admin, 400)."""


def project_set_jobs(
    project: Project, specs: list[dict[str, Any]]
) -> list[LabelingJob]:
    """Make the project's jobs exactly `specs` ([{"name", "tools",
    "classifications"}...], in order). A job keeps its identity (and members,
    and submissions) by name; a job left out is deleted, refused while it holds
    submissions (people's work). An empty list turns parallel labeling off."""
    wanted = _checked_specs(project, specs)
    with transaction.atomic():
        existing = {j.name: j for j in project.jobs.select_for_update()}
        gone = [j for name, j in existing.items() if name not in wanted]
        busy = [j.name for j in gone if j.submissions.exists()]
        if busy:
            raise JobSpecError(
                f"Job(s) {', '.join(sorted(busy))} hold submitted labels and cannot "
                "be removed; keep them (you may change their tools)."
            )
        for job in gone:
            job.delete()
        jobs = []
        for position, (name, (tools, classifications)) in enumerate(wanted.items()):
            job = existing.get(name) or LabelingJob(project=project, name=name)
            job.position = position
            job.tools = tools
            job.classifications = classifications
            job.save()
            jobs.append(job)
    return jobs


def _checked_specs(
    project: Project, specs: Any
) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (tool schemaIds, classification schemaIds), in the given order."""
    if not isinstance(specs, list):
        raise JobSpecError(
            'Jobs must be a list like [{"name": "Boxes", "tools": [...]}].'
        )
    if len(specs) > MAX_JOBS:
        raise JobSpecError(f"A project has at most {MAX_JOBS} jobs, not {len(specs)}.")
    ontology = project.ontology or {}
    known = {
        "tools": _schema_ids(ontology.get("tools")),
        "classifications": _schema_ids(ontology.get("classifications")),
    }
    owner: dict[str, str] = {}  # schemaId -> the job that has it
    wanted: dict[str, tuple[list[str], list[str]]] = {}
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise JobSpecError(f"Job {i + 1} must be an object with a name.")
        name = spec.get("name")
        name = name.strip() if isinstance(name, str) else ""
        if not name:
            raise JobSpecError(f"Job {i + 1} needs a name.")
        if len(name) > 100:
            raise JobSpecError(
                f"Job name “{name[:40]}…” is longer than 100 characters."
            )
        if name in wanted:
            raise JobSpecError(f"Two jobs are named “{name}”: names must differ.")
        parts = []
        for key in ("tools", "classifications"):
            ids = spec.get(key) or []
            if not isinstance(ids, list) or not all(isinstance(s, str) for s in ids):
                raise JobSpecError(f"Job “{name}”: {key} must be a list of schemaIds.")
            for schema_id in ids:
                if schema_id not in known[key]:
                    valid = ", ".join(sorted(known[key])) or "none"
                    raise JobSpecError(
                        f"Job “{name}”: {schema_id!r} is not one of the ontology's "
                        f"{key} (schemaIds: {valid})."
                    )
                if schema_id in owner:
                    raise JobSpecError(
                        f"{schema_id!r} is in both “{owner[schema_id]}” and "
                        f"“{name}”: each tool or classification belongs to one job."
                    )
                owner[schema_id] = name
            parts.append(list(dict.fromkeys(ids)))
        if not parts[0] and not parts[1]:
            raise JobSpecError(f"Job “{name}” has no tool and no classification.")
        wanted[name] = (parts[0], parts[1])
    return wanted


def _schema_ids(entries: Any) -> set[str]:
    return {
        e["schemaId"]
        for e in entries or []
        if isinstance(e, dict) and isinstance(e.get("schemaId"), str)
    }


def job_set_members(job: LabelingJob, users: Iterable[User]) -> LabelingJob:
    """The job's members are exactly `users`, all members of the project's
    organization (a tenant never labels another's tasks)."""
    users = list(users)
    org_id = job.project.organization_id
    members = set(
        Membership.objects.filter(
            organization_id=org_id, user__in=[u.pk for u in users]
        ).values_list("user_id", flat=True)
    )
    outsiders = [u.get_username() for u in users if u.pk not in members]
    if outsiders:
        raise JobSpecError(
            f"Not members of this organization: {', '.join(sorted(outsiders))}."
        )
    job.members.set(users)
    return job


def jobs_of(user: User, project: Project) -> list[LabelingJob]:
    """The project's jobs `user` labels in (empty without jobs)."""
    if user.pk is None:
        return []
    return list(project.jobs.filter(members=user.pk).order_by("position", "id"))


def job_answer_part(answer: dict[str, Any], job: LabelingJob) -> dict[str, Any]:
    """The part of `answer` that is the job's: its tools' objects, its
    classifications, and the relations between objects it kept."""
    return _part(answer, set(job.tools or []), set(job.classifications or []))


def _part(
    answer: dict[str, Any], tools: set[Any], classifications: set[Any]
) -> dict[str, Any]:
    answer = answer or {}
    objects = [
        o
        for o in answer.get("tools") or []
        if isinstance(o, dict) and o.get("schemaId") in tools
    ]
    kept_ids = {o.get("objectId") for o in objects if o.get("objectId")}
    return {
        "tools": objects,
        "classifications": [
            c
            for c in answer.get("classifications") or []
            if isinstance(c, dict) and c.get("schemaId") in classifications
        ],
        "relations": [
            r
            for r in answer.get("relations") or []
            if isinstance(r, dict) and _relation_ids(r) <= kept_ids
        ],
    }


def _relation_ids(relation: dict[str, Any]) -> set[Any]:
    """The objectIds a relation points at (from, to, group), as written."""
    ids: set[Any] = set()
    for key in ("from", "to", "group"):
        value = relation.get(key)
        for ref in value if isinstance(value, list) else [value]:
            if isinstance(ref, dict):
                ids.add(ref.get("objectId"))
            elif isinstance(ref, str):
                ids.add(ref)
    ids.discard(None)
    return ids


def answer_with_parts(
    previous: dict[str, Any],
    jobs: list[LabelingJob],
    parts: dict[int, dict[str, Any]],
) -> dict[str, Any]:
    """The task's answer while (and once) its jobs are submitted: each
    submitted job's part (`parts`, by job id), side by side in job order, so a
    reviewer sees everything even with no merging plugin. A job still to
    submit keeps its part of `previous` (e.g. a model's pre-label it will
    start from), and what belongs to no job stays as it was. Jobs own
    disjoint tools, so nothing is counted twice."""
    pieces = [
        parts[job.pk] if job.pk in parts else job_answer_part(previous, job)
        for job in jobs
    ]
    owned_tools = {t for job in jobs for t in job.tools or []}
    owned_classes = {c for job in jobs for c in job.classifications or []}
    previous = previous or {}
    pieces.append(
        _part(
            previous,
            {o.get("schemaId") for o in _dicts(previous.get("tools"))} - owned_tools,
            {c.get("schemaId") for c in _dicts(previous.get("classifications"))}
            - owned_classes,
        )
    )
    union: dict[str, list[Any]] = {"tools": [], "classifications": [], "relations": []}
    for piece in pieces:
        for key in union:
            union[key] += list(piece.get(key) or [])
    return union


def _dicts(items: Any) -> list[dict[str, Any]]:
    return [i for i in items or [] if isinstance(i, dict)]


def task_jobs_state(task: Task) -> list[dict[str, Any]]:
    """Per job of the task's project, in order: the job, whether its part is
    submitted in the current round, by whom and when."""
    active = {
        s.job_id: s
        for s in task.submissions.filter(active=True, job__isnull=False).select_related(
            "user"
        )
    }
    state = []
    for job in task.project.jobs.order_by("position", "id"):
        submission = active.get(job.pk)
        state.append(
            {
                "job": job,
                "submitted": submission is not None,
                "submittedBy": submission.user.get_username() if submission else "",
                "submittedAt": submission.submitted_at if submission else None,
            }
        )
    return state


def job_json(job: LabelingJob) -> dict[str, Any]:
    """A job as the JSON API and the jobs_complete event show it."""
    return {
        "id": job.pk,
        "name": job.name,
        "position": job.position,
        "tools": list(job.tools or []),
        "classifications": list(job.classifications or []),
    }
