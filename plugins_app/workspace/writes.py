"""The one way a plugin's answer reaches a task, and the one way it is undone.

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
keeps the answer it replaced: `restore_run` gives it back.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import DateTimeField, Field, JSONField, Min, Model
from django.utils import timezone

from plugins_app.workspace import events, workflow
from plugins_app.workspace.lifecycle import STATUS_IN_STAGE
from plugins_app.workspace.models import (
    AnswerWrite,
    Project,
    Submission,
    Task,
    TaskEvent,
)

if TYPE_CHECKING:
    from plugins_app.runs.models import Run

# How an answer came: shown in the history and the ledger.
VIA_MODEL = "model response"
VIA_IMPORT = "batch import"
VIA_WORKFLOW = "workflow stage"

WORKFLOW_TRIGGER = "workflow"  # Run.trigger of a workflow Plugin stage's run
# Events after a write that mean someone else changed (or vouched for) the
# answer since: its undo would destroy their work.
_CHANGES = (
    events.LABEL_SUBMITTED,
    events.LABEL_REVIEWED,
    events.ANSWER_WRITTEN,
    events.ANSWER_RESTORED,
    events.TASK_SENT_BACK,
)
# The fields a write or an undo changes, in the order of the UPDATE's values.
_FIELDS = ("answer", "status", "prelabel_run", "updated_at")
TASK_FIELDS = ("id", "project_id", "asset_id", "stage", "status", "answer")
# An AnswerWrite row's columns, as both ways of writing one insert them.
_LEDGER_FIELDS = (
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
    if run.dry_run:
        # A preview keeps its answers in PreviewAnswer (runs/preview.py) and
        # must never reach a task: refuse loudly rather than write.
        raise RuntimeError(f"run {run.pk} is a dry run: it writes no answer")
    held = held_by_people(tasks)
    report = WriteReport()
    rows: list[tuple[int, Any, str, int | None]] = []
    plans: list[tuple[Task, bool, str]] = []  # task, written, reason
    for task in tasks:
        reason = held.get(task.pk, "")
        override = _override(run, task) if reason else ""
        if reason and not override:
            reason = _why_kept(run, reason)
            report.skipped[task.pk] = reason
            plans.append((task, False, reason))
            continue
        note = f"{override}: {_replaced(reason)}" if override else ""
        rows.append((task.pk, answers[task.pk], status_in_stage(project, task), run.pk))
        report.written.append(task.pk)
        plans.append((task, True, note))
    update_answers(rows)
    now = timezone.now()
    label = f"plugin {run.plugin.name}"
    base = {
        "run": run.pk,
        "plugin": run.plugin.name,
        "pluginVersion": version or run.plugin_version,
        "via": via,
    }
    insert_many(
        TaskEvent,
        ("task", "name", "actor_label", "data", "created_at"),
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
        _LEDGER_FIELDS,
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


def write_prelabel(
    run: Run, project: Project, asset_id: int, answer: Any, *, via: str, version: str
) -> WriteReport | None:
    """`write_answers` for one asset's task in its common case, a task that
    certainly holds no person's work: three statements instead of five to
    seven. None when that is not certain (past To-Do, a submission, a stage
    past labeling, no task): the caller then goes through `write_answers`,
    which finds out why and writes or keeps by the whole rule. Call inside a
    transaction.

    1. The ledger row (AnswerWrite) is inserted from the task row itself, only
       if the guard holds: To-Do, no submission at all (so it refuses every
       task held_by_people holds, and a few more), a stage whose status is
       To-Do. RETURNING gives what the task held, for the history. On
       PostgreSQL the task row stays locked (FOR UPDATE) until the commit, as
       the people's paths lock it before they write: a submit waits for this
       answer, or wins before it and the guard fails.
    2. The task is written, under the same guard on its status.
    3. Its history row (TaskEvent, answer.written) with what it replaced."""
    if run.dry_run:
        raise RuntimeError(f"run {run.pk} is a dry run: it writes no answer")
    past = _stages_past_labeling(project)
    now = timezone.now()
    at = connection.ops.adapt_datetimefield_value(now)
    todo = Task.Status.TODO.value
    with connection.cursor() as cursor:
        cursor.execute(
            _prelabel_sql("ledger", connection.vendor, len(past)),
            [
                run.pk,
                AnswerWrite.Outcome.WRITTEN.value,
                todo,
                at,
                asset_id,
                todo,
                *past,
            ],
        )
        row = cursor.fetchone()
        if row is None:
            return None
        task_id, previous = int(row[0]), _json_from_db(row[1])
        cursor.execute(
            _prelabel_sql("task", connection.vendor, 0),
            [_prep(Task._meta.get_field("answer"))(answer), todo, run.pk, at]
            + [task_id, todo],
        )
        # The ledger row's guard holds the row (PostgreSQL's lock, SQLite's
        # write transaction): the task cannot have moved on in between.
        assert cursor.rowcount == 1, f"task {task_id} changed under its lock"
    data = {
        "run": run.pk,
        "plugin": run.plugin.name,
        "pluginVersion": version or run.plugin_version,
        "via": via,
        "previousAnswer": previous or {},
    }
    insert_many(
        TaskEvent,
        ("task", "name", "actor_label", "data", "created_at"),
        [(task_id, events.ANSWER_WRITTEN, f"plugin {run.plugin.name}", data, now)],
    )
    return WriteReport(written=[task_id])


def _stages_past_labeling(project: Project) -> list[str]:
    """The project's stages where a written task would not be To-Do (review,
    complete): status_in_stage's rule, as the names write_prelabel excludes."""
    return sorted(
        str(stage.get("name"))
        for stage in workflow.stages(project.workflow)
        if STATUS_IN_STAGE.get(stage.get("type", ""), Task.Status.TODO)
        != Task.Status.TODO
    )


def _json_from_db(value: Any) -> Any:
    # SQLite hands a JSON column back as text, and so does psycopg (Django
    # leaves jsonb undecoded for JSONField.from_db_value to parse).
    return json.loads(value) if isinstance(value, str) else value


@functools.cache
def _prelabel_sql(name: str, vendor: str, past_stages: int) -> str:
    """write_prelabel's statements, built once per process and database (only
    quoted names from the models are formatted in; values are parameters)."""
    quote = connection.ops.quote_name

    def c(model: type[Model], name: str) -> str:
        return quote(_column(model, name))

    task, sub, ledger = (
        quote(m._meta.db_table) for m in (Task, Submission, AnswerWrite)
    )
    if name == "task":
        sets = ", ".join(f"{c(Task, n)} = %s" for n in _FIELDS)
        return (
            f"UPDATE {task} SET {sets} "  # noqa: S608
            f"WHERE {c(Task, 'id')} = %s AND {c(Task, 'status')} = %s"
        )
    assert name == "ledger", name
    columns = ", ".join(c(AnswerWrite, n) for n in _LEDGER_FIELDS)
    stage = ""
    if past_stages:
        marks = ", ".join(["%s"] * past_stages)
        stage = f" AND t.{c(Task, 'stage')} NOT IN ({marks})"
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    return (
        f"INSERT INTO {ledger} ({columns}) "  # noqa: S608
        f"SELECT %s, t.{c(Task, 'id')}, %s, '', t.{c(Task, 'answer')}, "
        f"t.{c(Task, 'status')}, t.{c(Task, 'prelabel_run')}, %s, %s "
        f"FROM {task} t WHERE t.{c(Task, 'asset')} = %s "
        f"AND t.{c(Task, 'status')} = %s AND NOT EXISTS (SELECT 1 FROM {sub} s "
        f"WHERE s.{c(Submission, 'task')} = t.{c(Task, 'id')}){stage}{lock} "
        f"RETURNING {c(AnswerWrite, 'task')}, {c(AnswerWrite, 'previous_answer')}"
    )


def insert_many(model: type[Model], fields: Sequence[str], rows: list[tuple]) -> None:
    """One prepared INSERT for every row: a single executemany. bulk_create
    splits 10,000 rows into a hundred statements on SQLite (999 parameters
    each) and costs seconds of Python; this costs milliseconds."""
    if not rows:
        return
    meta = model._meta
    found = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(_column(model, name)) for name in fields)
    marks = ", ".join(["%s"] * len(found))
    # Only quoted column names from the model are formatted in; values are params.
    head = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES "  # noqa: S608
    sql = f"{head}({marks})"
    # Per column, the one conversion it needs: JSON adapted (Jsonb on
    # PostgreSQL), a datetime once per distinct value, the rest as they are.
    # Django's get_db_prep_save per value cost 2 s per 10,000 rows.
    preps = [_prep(f) for f in found]
    params = [
        tuple(prep(v) for prep, v in zip(preps, row, strict=True)) for row in rows
    ]
    with connection.cursor() as cursor:
        if 1 < len(rows) <= _FEW_ROWS:
            # A few rows (an answer's log lines) as one statement of several
            # VALUES: executemany would cost psycopg a pipeline sync more.
            many = ", ".join([f"({marks})"] * len(rows))
            cursor.execute(head + many, [v for row in params for v in row])
        else:
            _execute_all(cursor, sql, params)


_FEW_ROWS = 20  # × columns stays far below SQLite's 999 parameters


def _execute_all(cursor: Any, sql: str, params: list[tuple[Any, ...]]) -> None:
    """executemany, but one row (a single answer, a hub log line) as a plain
    execute: psycopg runs executemany in pipeline mode, which costs a sync
    round trip more than the one statement it sends."""
    if len(params) == 1:
        cursor.execute(sql, params[0])
    else:
        cursor.executemany(sql, params)


def _column(model: type[Model], name: str) -> str:
    """The column of one of the model's own fields (get_field also finds reverse
    relations, which have none: naming one here is a bug, not bad data)."""
    found = model._meta.get_field(name)
    assert isinstance(found, Field) and found.column, f"{model.__name__}.{name}"
    return found.column


def _prep(field: Any) -> Any:
    if isinstance(field, JSONField):
        adapt, encoder = connection.ops.adapt_json_value, field.encoder
        return lambda v: None if v is None else adapt(v, encoder)
    if isinstance(field, DateTimeField):
        seen: dict[Any, Any] = {}

        def once(v: Any) -> Any:
            if v not in seen:
                seen[v] = field.get_db_prep_save(v, connection)
            return seen[v]

        return once
    return lambda v: v


def _override(run: Run, task: Task) -> str:
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
        task_id=task.pk, id__gt=run.event_id, name__in=_CHANGES
    )
    if task.status == Task.Status.REVIEWED or since.exists():
        return ""
    return (
        "the merge of its labeling jobs, by the plugin task.jobs_complete "
        "started (each job's label stays in its submission)"
    )


def _why_kept(run: Run, reason: str) -> str:
    if run.trigger != events.TASK_JOBS_COMPLETE:
        return reason
    return (
        f"{reason}: a merge of labeling jobs is written once, and only while "
        "the task is as its task.jobs_complete left it"
    )


def _replaced(reason: str) -> str:
    return reason.replace("; its answer was kept", "; its answer was replaced")


def status_in_stage(project: Project, task: Task) -> str:
    """To-Do for a task still to be labeled; a task past labeling (e.g. the
    merged consensus label written for review) keeps its stage's status."""
    stage = workflow.stage_named(project.workflow, task.stage) or {}
    return STATUS_IN_STAGE.get(stage.get("type", ""), Task.Status.TODO)


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
        acts[task_id] = f"{verb} by {who} on {_when(at)}"
    return acts


def _when(at: Any) -> str:
    return timezone.localtime(at).strftime("%Y-%m-%d %H:%M")


def update_answers(rows: list[tuple[int, Any, str, int | None]]) -> None:
    """One prepared UPDATE for every (task id, answer, status, prelabel run id):
    a single executemany. Django's bulk_update builds a CASE WHEN per row and per
    field, which costs seconds of Python for 10,000 tasks; this milliseconds."""
    if not rows:
        return
    meta = Task._meta
    quote = connection.ops.quote_name
    sets = ", ".join(f"{quote(_column(Task, n))} = %s" for n in _FIELDS)
    # Only quoted column names from the model are formatted in; values are params.
    where = f"{quote(_column(Task, meta.pk.name))} = %s"
    sql = f"UPDATE {quote(meta.db_table)} SET {sets} WHERE {where}"  # noqa: S608
    json_value = _prep(meta.get_field("answer"))
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params = [
        (json_value(answer), status, run_id, now, pk)
        for pk, answer, status, run_id in rows
    ]
    with connection.cursor() as cursor:
        _execute_all(cursor, sql, params)


# --- undo ---------------------------------------------------------------------------
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
            task_id__in=list(first), id__gte=floor, name__in=_CHANGES
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
    return f"changed by {who} on {_when(at)} ({what})"
