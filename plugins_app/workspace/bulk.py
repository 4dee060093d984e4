"""Prepared bulk statements: one INSERT or one UPDATE for many rows, for the
hot paths (answers and their history, the run ledger, hub log lines) where
bulk_create and bulk_update cost seconds of Python per 10,000 rows.

Only quoted names from the models are formatted into the SQL; every value is
a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import DateTimeField, Field, JSONField, Model
from django.utils import timezone

from plugins_app.workspace.models import Task

# The task fields a write or an undo changes, in the order of the UPDATE's values.
ANSWER_FIELDS = ("answer", "status", "prelabel_run", "updated_at")

_FEW_ROWS = 20  # × columns stays far below SQLite's 999 parameters


def insert_many(model: type[Model], fields: Sequence[str], rows: list[tuple]) -> None:
    """One prepared INSERT for every row: a single executemany. bulk_create
    splits 10,000 rows into a hundred statements on SQLite (999 parameters
    each) and costs seconds of Python; this costs milliseconds."""
    if not rows:
        return
    table, columns, params = prepared_rows(model, fields, rows)
    marks = ", ".join(["%s"] * len(fields))
    # Only quoted column names from the model are formatted in; values are params.
    head = f"INSERT INTO {table} ({columns}) VALUES "  # noqa: S608
    sql = f"{head}({marks})"
    with connection.cursor() as cursor:
        if 1 < len(rows) <= _FEW_ROWS:
            # A few rows (an answer's log lines) as one statement of several
            # VALUES: executemany would cost psycopg a pipeline sync more.
            many = ", ".join([f"({marks})"] * len(rows))
            cursor.execute(head + many, [v for row in params for v in row])
        else:
            execute_all(cursor, sql, params)


def prepared_rows(
    model: type[Model], fields: Sequence[str], rows: list[tuple]
) -> tuple[str, str, list[tuple[Any, ...]]]:
    """The quoted table, its quoted `fields` columns and each row's parameters,
    as insert_many writes them (also for an INSERT inside a larger statement:
    runs/run_insert.py)."""
    key = (connection.vendor, model, tuple(fields))
    found = _NAMES.get(key)
    if found is None:
        meta = model._meta
        quote = connection.ops.quote_name
        columns = ", ".join(quote(column(model, name)) for name in fields)
        found = _NAMES[key] = (
            quote(meta.db_table),
            columns,
            tuple(meta.get_field(name) for name in fields),
        )
    table, columns, found_fields = found
    # Per column, the one conversion it needs: JSON adapted (Jsonb on
    # PostgreSQL), a datetime once per distinct value, the rest as they are.
    # Django's get_db_prep_save per value cost 2 s per 10,000 rows.
    preps = [db_prep(f) for f in found_fields]
    params = [
        tuple(prep(v) for prep, v in zip(preps, row, strict=True)) for row in rows
    ]
    return table, columns, params


# (vendor, model, fields) -> quoted table, quoted columns, the fields: the
# names cost more to look up and quote than a few rows cost to prepare.
_NAMES: dict[tuple[str, type[Model], tuple[str, ...]], tuple[str, str, tuple]] = {}


def update_answers(rows: list[tuple[int, Any, str, int | None]]) -> None:
    """One prepared UPDATE for every (task id, answer, status, prelabel run id):
    a single executemany. Django's bulk_update builds a CASE WHEN per row and per
    field, which costs seconds of Python for 10,000 tasks; this milliseconds."""
    if not rows:
        return
    meta = Task._meta
    quote = connection.ops.quote_name
    sets = ", ".join(f"{quote(column(Task, n))} = %s" for n in ANSWER_FIELDS)
    # Only quoted column names from the model are formatted in; values are params.
    where = f"{quote(column(Task, meta.pk.name))} = %s"
    sql = f"UPDATE {quote(meta.db_table)} SET {sets} WHERE {where}"  # noqa: S608
    json_value = db_prep(meta.get_field("answer"))
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params = [
        (json_value(answer), status, run_id, now, pk)
        for pk, answer, status, run_id in rows
    ]
    with connection.cursor() as cursor:
        execute_all(cursor, sql, params)


def execute_all(cursor: Any, sql: str, params: list[tuple[Any, ...]]) -> None:
    """executemany, but one row (a single answer, a hub log line) as a plain
    execute: psycopg runs executemany in pipeline mode, which costs a sync
    round trip more than the one statement it sends."""
    if len(params) == 1:
        cursor.execute(sql, params[0])
    else:
        cursor.executemany(sql, params)


def column(model: type[Model], name: str) -> str:
    """The column of one of the model's own fields (get_field also finds reverse
    relations, which have none: naming one here is a bug, not bad data)."""
    found = model._meta.get_field(name)
    assert isinstance(found, Field) and found.column, f"{model.__name__}.{name}"
    return found.column


def quoted(model: type[Model], field: str | None = None) -> str:
    """A quoted table name, or one of its columns: what the hub's raw SQL is
    built from (only names from the models are formatted into SQL; values
    always go as parameters)."""
    quote = connection.ops.quote_name
    if field is None:
        return quote(model._meta.db_table)
    return quote(column(model, field))


def db_prep(field: Any) -> Any:
    """The one conversion a value of `field` needs before it is a parameter."""
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
