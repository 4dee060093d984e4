"""The short path of a plugin's pre-label (writes.py): one asset's task that
certainly holds no person's work, written with the guard of human work inside
the SQL itself: three statements on SQLite, one on PostgreSQL."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.models import Model
from django.utils import timezone

from plugins_app.workspace import events, workflow
from plugins_app.workspace.bulk import ANSWER_FIELDS, column, db_prep
from plugins_app.workspace.lifecycle import STATUS_IN_STAGE
from plugins_app.workspace.models import (
    AnswerWrite,
    Project,
    Submission,
    Task,
    TaskEvent,
)
from plugins_app.workspace.writes import (
    HISTORY_FIELDS,
    LEDGER_FIELDS,
    WriteReport,
    refuse_dry_run,
)

if TYPE_CHECKING:
    from plugins_app.runs.models import Run


@dataclass(frozen=True, slots=True)
class Writer:
    """Who writes, as the history and the ledger record it: what
    write_prelabel needs of a run and its project (an answer's raw read gives
    it without building either)."""

    run_id: int
    plugin_name: str
    run_version: str  # the run's plugin_version, when the answer names none
    past_stages: tuple[str, ...]  # stages_past_labeling of the project


def write_prelabel(
    run: Run, project: Project, asset_id: int, answer: Any, *, via: str, version: str
) -> WriteReport | None:
    """`write_answers` for one asset's task in its common case, a task that
    certainly holds no person's work. None when that is not certain (past
    To-Do, a submission, a stage past labeling, no task): the caller then goes
    through `write_answers`, which finds out why and writes or keeps by the
    whole rule. Call inside a transaction."""
    refuse_dry_run(run)
    writer = Writer(
        run.pk,
        run.plugin.name,
        run.plugin_version,
        stages_past_labeling(project.workflow),
    )
    task_id = write_prelabel_as(writer, asset_id, answer, via=via, version=version)
    return None if task_id is None else WriteReport(written=[task_id])


def write_prelabel_as(
    writer: Writer, asset_id: int, answer: Any, *, via: str, version: str
) -> int | None:
    """write_prelabel without the run's objects: the task written, or None.

    1. The ledger row (AnswerWrite) is inserted from the task row itself, only
       if the guard holds: To-Do, no submission at all (so it refuses every
       task held_by_people holds, and a few more), a stage whose status is
       To-Do. It keeps what the task held, for the history and undo. On
       PostgreSQL the task row stays locked (FOR UPDATE) until the commit, as
       the people's paths lock it before they write: a submit waits for this
       answer, or wins before it and the guard fails.
    2. The task is written, under the same guard on its status.
    3. Its history row (TaskEvent, answer.written) with what it replaced.
    On PostgreSQL the three are one statement (data-modifying CTEs, each
    reading the one before): one round trip instead of three."""
    now = timezone.now()
    at = connection.ops.adapt_datetimefield_value(now)
    todo = Task.Status.TODO.value
    data = history_data_of(writer, via=via, version=version)
    guard = [
        writer.run_id,
        AnswerWrite.Outcome.WRITTEN.value,
        todo,
        at,
        asset_id,
        todo,
        *writer.past_stages,
    ]
    answer_param = db_prep(Task._meta.get_field("answer"))(answer)
    past = len(writer.past_stages)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                _prelabel_sql("all", connection.vendor, past),
                [
                    *guard,
                    *[answer_param, todo, writer.run_id, at, todo],
                    *[events.ANSWER_WRITTEN, f"plugin {writer.plugin_name}"],
                    *[json.dumps(data), at],
                ],
            )
            row = cursor.fetchone()
            return None if row is None else int(row[0])
        cursor.execute(_prelabel_sql("ledger", connection.vendor, past), guard)
        row = cursor.fetchone()
        if row is None:
            return None
        task_id = int(row[0])
        cursor.execute(
            _prelabel_sql("task", connection.vendor, 0),
            [answer_param, todo, writer.run_id, at, task_id, todo],
        )
        # The ledger row's guard holds the row (SQLite's write transaction):
        # the task cannot have moved on in between.
        assert cursor.rowcount == 1, f"task {task_id} changed under its lock"
        cursor.execute(
            _prelabel_sql("history", connection.vendor, 0),
            [
                task_id,
                events.ANSWER_WRITTEN,
                f"plugin {writer.plugin_name}",
                _with_previous(data, row[1]),
                at,
            ],
        )
    return task_id


def history_data_of(writer: Writer, *, via: str, version: str) -> dict[str, Any]:
    # writes.history_data, from a Writer (the same keys, in the same order).
    return {
        "run": writer.run_id,
        "plugin": writer.plugin_name,
        "pluginVersion": version or writer.run_version,
        "via": via,
    }


# What `previous or {}` turns into {}: the falsy JSON values a task may hold.
_EMPTY_JSON = frozenset({"null", "{}", "[]", '""', "0", "0.0", "false"})


def _with_previous(data: dict[str, Any], previous: Any) -> str:
    """The history's JSON with the replaced answer as it came from the
    database: spliced in as text, not parsed and encoded again (a large
    earlier pre-label cost both on every answer)."""
    text = json.dumps(data)
    if previous is None:
        prior = "{}"
    elif isinstance(previous, str):
        prior = "{}" if previous.strip() in _EMPTY_JSON else previous
    else:  # a driver that decodes JSON itself
        prior = json.dumps(previous or {})
    return f'{text[:-1]}, "previousAnswer": {prior}}}'


def stages_past_labeling(workflow_json: Any) -> tuple[str, ...]:
    """The project's stages where a written task would not be To-Do (review,
    complete): status_in_stage's rule, as the names write_prelabel excludes."""
    return tuple(
        sorted(
            str(stage.get("name"))
            for stage in workflow.stages(workflow_json)
            if STATUS_IN_STAGE.get(stage.get("type", ""), Task.Status.TODO)
            != Task.Status.TODO
        )
    )


@functools.cache
def _prelabel_sql(name: str, vendor: str, past_stages: int) -> str:
    """write_prelabel's statements, built once per process and database (only
    quoted names from the models are formatted in; values are parameters)."""
    quote = connection.ops.quote_name

    def c(model: type[Model], name: str) -> str:
        return quote(column(model, name))

    task, sub, ledger, history = (
        quote(m._meta.db_table) for m in (Task, Submission, AnswerWrite, TaskEvent)
    )
    sets = ", ".join(f"{c(Task, n)} = %s" for n in ANSWER_FIELDS)
    history_columns = ", ".join(c(TaskEvent, n) for n in HISTORY_FIELDS)
    if name == "task":
        return (
            f"UPDATE {task} SET {sets} "  # noqa: S608
            f"WHERE {c(Task, 'id')} = %s AND {c(Task, 'status')} = %s"
        )
    if name == "history":
        return f"INSERT INTO {history} ({history_columns}) VALUES (%s, %s, %s, %s, %s)"  # noqa: S608
    columns = ", ".join(c(AnswerWrite, n) for n in LEDGER_FIELDS)
    stage = ""
    if past_stages:
        marks = ", ".join(["%s"] * past_stages)
        stage = f" AND t.{c(Task, 'stage')} NOT IN ({marks})"
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    task_id, previous = c(AnswerWrite, "task"), c(AnswerWrite, "previous_answer")
    insert_ledger = (
        f"INSERT INTO {ledger} ({columns}) "  # noqa: S608
        f"SELECT %s, t.{c(Task, 'id')}, %s, '', t.{c(Task, 'answer')}, "
        f"t.{c(Task, 'status')}, t.{c(Task, 'prelabel_run')}, %s, %s "
        f"FROM {task} t WHERE t.{c(Task, 'asset')} = %s "
        f"AND t.{c(Task, 'status')} = %s AND NOT EXISTS (SELECT 1 FROM {sub} s "
        f"WHERE s.{c(Submission, 'task')} = t.{c(Task, 'id')}){stage}{lock} "
        f"RETURNING {task_id}, {previous}"
    )
    if name == "ledger":
        return insert_ledger
    assert name == "all" and vendor == "postgresql", (name, vendor)
    # The same three, each fed by the one before; `previous or {}` in SQL.
    empty = ", ".join(f"'{v}'::jsonb" for v in sorted(_EMPTY_JSON - {"null"}))
    return (
        f"WITH written AS ({insert_ledger}), "  # noqa: S608
        f"task AS (UPDATE {task} SET {sets} FROM written "
        f"WHERE {task}.{c(Task, 'id')} = written.{task_id} "
        f"AND {task}.{c(Task, 'status')} = %s RETURNING {task}.{c(Task, 'id')}) "
        f"INSERT INTO {history} ({history_columns}) "
        f"SELECT task.{c(Task, 'id')}, %s, %s, %s::jsonb || jsonb_build_object("
        f"'previousAnswer', CASE WHEN written.{previous} IS NULL "
        f"OR jsonb_typeof(written.{previous}) = 'null' "
        f"OR written.{previous} IN ({empty}) THEN '{{}}'::jsonb "
        f"ELSE written.{previous} END), %s "
        f"FROM task JOIN written ON written.{task_id} = task.{c(Task, 'id')} "
        f"RETURNING {c(TaskEvent, 'task')}"
    )
