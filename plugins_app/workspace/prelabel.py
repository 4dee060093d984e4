"""The short path of a plugin's pre-label (writes.py): one asset's task that
certainly holds no person's work, written in three statements, the guard of
human work inside the SQL itself."""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.models import Model
from django.utils import timezone

from plugins_app.workspace import events, workflow
from plugins_app.workspace.bulk import ANSWER_FIELDS, column, db_prep, insert_many
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
    history_data,
    refuse_dry_run,
)

if TYPE_CHECKING:
    from plugins_app.runs.models import Run


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
    refuse_dry_run(run)
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
            [db_prep(Task._meta.get_field("answer"))(answer), todo, run.pk, at]
            + [task_id, todo],
        )
        # The ledger row's guard holds the row (PostgreSQL's lock, SQLite's
        # write transaction): the task cannot have moved on in between.
        assert cursor.rowcount == 1, f"task {task_id} changed under its lock"
    data = history_data(run, via=via, version=version)
    data["previousAnswer"] = previous or {}
    insert_many(
        TaskEvent,
        HISTORY_FIELDS,
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
        return quote(column(model, name))

    task, sub, ledger = (
        quote(m._meta.db_table) for m in (Task, Submission, AnswerWrite)
    )
    if name == "task":
        sets = ", ".join(f"{c(Task, n)} = %s" for n in ANSWER_FIELDS)
        return (
            f"UPDATE {task} SET {sets} "  # noqa: S608
            f"WHERE {c(Task, 'id')} = %s AND {c(Task, 'status')} = %s"
        )
    assert name == "ledger", name
    columns = ", ".join(c(AnswerWrite, n) for n in LEDGER_FIELDS)
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
