"""What a run watcher's push reads (web/fragments.py `run_update`): the run
with its plugin, project and creator, its log lines after the watcher's
cursor, and its items for the progress. Three statements, and on PostgreSQL
one round trip: they go out together in psycopg's pipeline mode and come
back after one sync.

Each statement used to be a round trip of its own (four with the health
check's `SELECT 1`), each a wake-up of a PostgreSQL backend on the same few
cores between a plugin's answer and the browser seeing the run finished.
Sent together they also read one snapshot (the pipeline's implicit
transaction). SQLite has no round trip to save: the same statements run one
after the other there.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, router

from plugins_app.plugins.models import Plugin
from plugins_app.runs.logs import log_rows_sql
from plugins_app.runs.models import Run, WorkItem
from plugins_app.runs.selectors import ITEM_COLUMNS, ItemValues
from plugins_app.workspace.bulk import quoted
from plugins_app.workspace.models import Project
from plugins_app.workspace.rows import ModelRows

Statement = tuple[str, Sequence[Any]]


def _pipeline_supported() -> bool:
    try:
        from psycopg import Pipeline
    except ImportError:  # SQLite only: no psycopg installed
        return False
    # Pipeline mode needs libpq 14 (the binary wheel brings its own, newer).
    return bool(Pipeline.is_supported())


_PIPELINE_SUPPORTED = _pipeline_supported()


def read_all(statements: Sequence[Statement]) -> list[list[tuple[Any, ...]]]:
    """Each statement's rows, in order; on PostgreSQL in one round trip."""
    if connection.vendor != "postgresql" or not _PIPELINE_SUPPORTED:
        found = []
        for sql, params in statements:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                found.append(cursor.fetchall())
        return found
    cursors = [connection.cursor() for _ in statements]  # the first one connects
    try:
        with connection.connection.pipeline():
            for cursor, (sql, params) in zip(cursors, statements, strict=True):
                cursor.execute(sql, params)
        # Leaving the pipeline synced it: every result is in its cursor.
        return [cursor.fetchall() for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()


def watched_run(
    run_id: int, *, after: int, limit: int
) -> tuple[Run, list[tuple[Any, ...]], list[ItemValues]]:
    """The run (plugin, project and created_by loaded), its log rows after
    `after` (at most `limit`: runs/logs.py `log_rows`' rows) and its item rows
    in id order (what selectors.progress_of reads); Run.DoesNotExist if it is
    gone."""
    runs, lines, items = read_all(
        [
            (_run_sql(connection.vendor), [run_id]),
            (log_rows_sql(connection.vendor), [run_id, after, limit]),
            (_items_sql(connection.vendor), [run_id]),
        ]
    )
    if not runs:
        raise Run.DoesNotExist(f"run {run_id}")
    return _run_of(runs), lines, items


_RUN, _PLUGIN, _PROJECT = ModelRows(Run), ModelRows(Plugin), ModelRows(Project)


@functools.cache
def _user_rows() -> ModelRows[Any]:
    return ModelRows(get_user_model())


def _run_of(rows: list[tuple[Any, ...]]) -> Run:
    db = router.db_for_read(Run)
    at = 0
    found: list[Any] = []
    for model_rows in (_RUN, _PLUGIN, _PROJECT, _user_rows()):
        found.append(model_rows.instances(rows, db, start=at)[0])
        at += model_rows.width
    run, plugin, project, created_by = found
    run.plugin, run.project = plugin, project
    Run.created_by.field.set_cached_value(run, created_by)  # None: nobody
    return run


@functools.cache
def _run_sql(vendor: str) -> str:
    q, user = quoted, get_user_model()
    return (
        f"SELECT {_RUN.select('r')}, {_PLUGIN.select('p')}, "  # noqa: S608
        f"{_PROJECT.select('j')}, {_user_rows().select('u')} "
        f"FROM {q(Run)} r "
        f"JOIN {q(Plugin)} p ON p.{q(Plugin, 'id')} = r.{q(Run, 'plugin')} "
        f"JOIN {q(Project)} j ON j.{q(Project, 'id')} = r.{q(Run, 'project')} "
        f"LEFT JOIN {q(user)} u ON u.{q(user, 'id')} = r.{q(Run, 'created_by')} "
        f"WHERE r.{q(Run, 'id')} = %s"
    )


@functools.cache
def _items_sql(vendor: str) -> str:
    """run_progress's query, compiled by the ORM once (run id 0 stands for
    the parameter)."""
    query = (
        WorkItem.objects.filter(run_id=0)
        .order_by("id")
        .values_list(*ITEM_COLUMNS)
        .query
    )
    sql, params = query.sql_with_params()
    assert list(params) == [0], params  # the run id is the only parameter
    return str(sql)
