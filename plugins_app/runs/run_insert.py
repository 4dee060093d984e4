"""A new run, its work items and its first log lines written raw (run_write):
on PostgreSQL in one statement (INSERTs chained in a WITH), on SQLite in one
INSERT per table. Through the ORM they were three statements whose building
(`Run.save`'s and `bulk_create`'s compilers) cost several times the INSERTs
themselves, on every run.

The rows are the ORM's: every value comes from the instances as `save()` and
`bulk_create` take them (workspace/rows.py `insert_values`: model defaults
applied when the instances were made, each field's own conversion), and the
instances come back as those leave them (pk set, saved, items' run_id).
Neither Run nor WorkItem has save() overrides or signal receivers to skip
(tests/test_create_sql.py reads back a run written both ways).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connections, router

from plugins_app.runs.models import Run, RunLogLine, WorkItem
from plugins_app.runs.notify import HUB
from plugins_app.workspace.bulk import insert_many, prepared_rows
from plugins_app.workspace.rows import insert_values, saved

# Items in the one PostgreSQL statement; a larger run writes the rest in
# INSERTs of this many rows (SQLite: as many as its 999 parameters allow).
_PG_ITEMS = 1000
_LINE_FIELDS = ("item", "level", "message", "extra", "created_at")


def insert_run(
    run: Run, items: Sequence[WorkItem], lines: Sequence[str], now: datetime
) -> None:
    """Insert unsaved `run`, its unsaved `items` (their run is `run`) and its
    hub log `lines` (at `now`), inside the caller's transaction."""
    db = router.db_for_write(Run)
    conn = connections[db]
    if conn.vendor == "postgresql":
        head = list(items[:_PG_ITEMS])
        run_id, ids = _all_in_one(conn, run, head, lines, now)
        saved(run, run_id, db)
        _items_saved(head, run, ids, db)
        _insert_items(conn, list(items[_PG_ITEMS:]), run, _PG_ITEMS, db)
        return
    fields, params = insert_values(run, conn)
    pk = _pk(conn, Run)
    sql = f"{_insert_head(conn, Run, fields)} ({_marks(fields)}) RETURNING {pk}"
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        (run_id,) = cursor.fetchone()
    saved(run, run_id, db)
    width = len(WorkItem._meta.local_concrete_fields)
    chunk = max(1, (conn.features.max_query_params or 999) // width)
    _insert_items(conn, list(items), run, chunk, db)
    insert_many(
        RunLogLine,
        ("run", *_LINE_FIELDS),
        [(run_id, None, HUB, line, {}, now) for line in lines],
    )


def _all_in_one(
    conn: Any,
    run: Run,
    items: list[WorkItem],
    lines: Sequence[str],
    now: datetime,
) -> tuple[int, dict[str, int]]:
    """PostgreSQL: the run, the items and the lines in one statement, the
    items and lines naming the run by `(SELECT id FROM r)`. Its INSERTs'
    VALUES take their types from the target columns, as plain INSERTs do; a
    deferred foreign key (Django's) is checked at commit either way."""
    fields, params = insert_values(run, conn)
    pk = _pk(conn, Run)
    run_ref = f"(SELECT {pk} FROM r)"  # noqa: S608
    parts = [
        f"r AS ({_insert_head(conn, Run, fields)} ({_marks(fields)}) RETURNING {pk})"
    ]
    select = f"SELECT r.{pk}, NULL, NULL FROM r"  # noqa: S608
    if items:
        sql, item_params = _items_values(conn, items, run_ref)
        parts.append(f"i AS ({sql} RETURNING {_pk(conn, WorkItem)}, {_session(conn)})")
        params += item_params
        item_pk = _pk(conn, WorkItem)
        select = (
            f"SELECT r.{pk}, i.{item_pk}, i.{_session(conn)} "  # noqa: S608
            "FROM r LEFT JOIN i ON TRUE"
        )
    if lines:
        table, columns, rows = prepared_rows(
            RunLogLine, _LINE_FIELDS, [(None, HUB, line, {}, now) for line in lines]
        )
        run_col = conn.ops.quote_name(RunLogLine._meta.get_field("run").column)
        values = ", ".join(f"({run_ref}, {_marks(_LINE_FIELDS)})" for _ in rows)
        parts.append(
            f"l AS (INSERT INTO {table} ({run_col}, {columns}) "  # noqa: S608
            f"VALUES {values})"
        )
        params += [v for row in rows for v in row]
    with conn.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(parts)} {select}", params)
        found = cursor.fetchall()
    return found[0][0], {session: pk for _, pk, session in found if pk is not None}


def _insert_items(
    conn: Any, items: list[WorkItem], run: Run, chunk: int, db: str
) -> None:
    """The items of saved `run`, `chunk` rows per INSERT."""
    for item in items:
        item.run = run
    for start in range(0, len(items), chunk):
        part = items[start : start + chunk]
        sql, params = _items_values(conn, part, None)
        returning = f"RETURNING {_pk(conn, WorkItem)}, {_session(conn)}"
        with conn.cursor() as cursor:
            cursor.execute(f"{sql} {returning}", params)
            ids = {session: pk for pk, session in cursor.fetchall()}
        _items_saved(part, run, ids, db)


def _items_values(
    conn: Any, items: list[WorkItem], run_ref: str | None
) -> tuple[str, list[Any]]:
    """`INSERT INTO … VALUES (…), …` of the items; with `run_ref`, each row's
    run is that SQL instead of a parameter."""
    run_field = WorkItem._meta.get_field("run")
    params: list[Any] = []
    rows = []
    fields: list[Any] = []
    for item in items:
        fields, values = insert_values(item, conn)
        marks = []
        for field, value in zip(fields, values, strict=True):
            if run_ref is not None and field is run_field:
                marks.append(run_ref)
            else:
                marks.append("%s")
                params.append(value)
        rows.append(f"({', '.join(marks)})")
    return f"{_insert_head(conn, WorkItem, fields)} {', '.join(rows)}", params


def _items_saved(items: list[WorkItem], run: Run, ids: dict[str, int], db: str) -> None:
    # By session (unique), not by the order of RETURNING, which neither
    # database promises for a multi-row INSERT.
    for item in items:
        # Through the relation, as bulk_create does: setting run_id alone
        # would drop the cached run (and the lease would read it back).
        item.run = run
        saved(item, ids[item.session], db)


def _insert_head(conn: Any, model: Any, fields: Sequence[Any]) -> str:
    quote = conn.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    # Only quoted names from the model are formatted in; values are params.
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES"  # noqa: S608


def _marks(fields: Sequence[Any]) -> str:
    return ", ".join(["%s"] * len(fields))


def _pk(conn: Any, model: Any) -> str:
    return str(conn.ops.quote_name(model._meta.pk.column))


def _session(conn: Any) -> str:
    return str(conn.ops.quote_name(WorkItem._meta.get_field("session").column))
