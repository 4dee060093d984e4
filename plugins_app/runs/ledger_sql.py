"""The ledger's prepared statements (runs/ledger.py), built once per process
and database: only quoted column names from the models are formatted in;
every value is a parameter."""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection

from plugins_app.runs.models import Run, RunApiKey, RunLogLine, WorkItem

# A hub log line of a run, for `run_settle`: (item id or None, level, message).
LogLine = tuple[int | None, str, str]


def column(meta: Any, name: str) -> str:
    found = meta.get_field(name)
    assert found.concrete and found.column, name
    return str(found.column)


@functools.cache
def sql(name: str, vendor: str) -> str:
    """The ledger's prepared statements, built once per process and database
    (only quoted column names from the models are formatted in)."""
    quote = connection.ops.quote_name
    run, item = Run._meta, WorkItem._meta
    if name == "locked_run":
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        return (
            f"SELECT {quote(column(run, 'plugin'))} "  # noqa: S608
            f"FROM {quote(run.db_table)} WHERE {quote(column(run, 'id'))} = %s{lock}"
        )
    if name == "revoke_keys":
        keys = RunApiKey._meta
        revoked_at = quote(column(keys, "revoked_at"))
        return (
            f"UPDATE {quote(keys.db_table)} SET {revoked_at} = %s "  # noqa: S608
            f"WHERE {quote(column(keys, 'run'))} = %s AND {revoked_at} IS NULL"
        )
    assert name == "close", name
    items = quote(item.db_table)
    run_id = f"{quote(run.db_table)}.{quote(column(run, 'id'))}"
    of_run = f"{quote(column(item, 'run'))} = {run_id}"
    state, failure = quote(column(item, "state")), quote(column(item, "failure"))
    status = quote(column(run, "status"))
    return (
        f"UPDATE {quote(run.db_table)} SET {status} = CASE "  # noqa: S608
        f"WHEN EXISTS (SELECT 1 FROM {items} WHERE {of_run} AND {state} = %s "
        f"AND {failure} <> %s) THEN %s "
        f"WHEN EXISTS (SELECT 1 FROM {items} WHERE {of_run} AND {state} = %s) "
        f"THEN %s ELSE %s END, {quote(column(run, 'finished_at'))} = %s "
        f"WHERE {run_id} = %s AND {status} IN ({', '.join(['%s'] * len(Run.OPEN))}) "
        f"AND NOT EXISTS (SELECT 1 FROM {items} WHERE {of_run} "
        f"AND {state} IN (%s, %s)) RETURNING {status}, {quote(column(run, 'task'))}"
    )


@functools.cache
def settle_sql(lines: int) -> str:
    """PostgreSQL: the close, then (only if it closed) the keys revoked, and
    `lines` + the close's line written, in one statement; RETURNING the
    close's status and task. Parameters: the close's, the revoke's, the lines'
    created_at, (run, item, level, message) per line, then the close line's
    run and level and (status, message) for each way a settle ends."""
    quote = connection.ops.quote_name
    logs = RunLogLine._meta
    columns = ("run", "item", "level", "message", "extra", "created_at")
    names = ", ".join(quote(column(logs, c)) for c in columns)
    status = quote(column(Run._meta, "status"))
    close_line = (
        "SELECT %s::bigint, NULL::bigint, %s::text, "  # noqa: S608
        f"CASE {status}{' WHEN %s THEN %s' * 3} END FROM closed"
    )
    rows = close_line
    if lines:
        given = ", ".join(["(%s::bigint, %s::bigint, %s::text, %s::text)"] * lines)
        rows = f"SELECT * FROM (VALUES {given}) given UNION ALL {close_line}"  # noqa: S608
    return (
        f"WITH closed AS ({sql('close', 'postgresql')}), "  # noqa: S608
        f"keys AS ({sql('revoke_keys', 'postgresql')} "
        "AND EXISTS (SELECT 1 FROM closed)), "
        f"logged AS (INSERT INTO {quote(logs.db_table)} ({names}) "
        f"SELECT line.*, '{{}}'::jsonb, %s FROM ({rows}) line) "
        "SELECT * FROM closed"
    )
