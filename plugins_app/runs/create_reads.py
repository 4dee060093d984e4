"""The reads of a run's creation (runs/creation.py) as SQL written once: the
ORM built each of these queries on every create, at several times the cost
of running it.

- Whether the plugin is activated on the project and the versions its live
  instances declare, in one statement: the scope check needs the first, the
  reachability check and the run's version the second (UNION ALL of the
  m2m row and the instances' rows).
- The assets a run names, as model instances the way `project.assets`
  returns them (workspace/rows.py; the project set on each, as the related
  manager does), each with its task as `select_related("task")` leaves it:
  the job names the task, and the lease prefetched it (a query built by the
  ORM inside the create's write transaction, ~7 % of the route's CPU).

Only quoted names from the models are formatted into SQL; values are params.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection, connections, router
from django.db.models import ManyToManyField
from django.utils import timezone

from plugins_app.plugins.models import Plugin, PluginInstance, live_cutoffs
from plugins_app.workspace.bulk import column, quoted
from plugins_app.workspace.models import Asset, Project, Task
from plugins_app.workspace.rows import ModelRows

# Above this many external ids the ORM reads them (a run from a long list;
# its IN would pass SQLite's 999 parameters).
_RAW_ASSETS = 500

ASSETS = ModelRows(Asset)
TASKS = ModelRows(Task)
# The relations the reads fill in, as the ORM's related managers and
# select_related would: Asset.task (reverse one-to-one), Task.asset,
# Asset.project, Task.project.
_TASK_OF_ASSET = Task._meta.get_field("asset").remote_field
_ASSET_OF_TASK = Task._meta.get_field("asset")
_PROJECT_OF_ASSET = Asset._meta.get_field("project")
_PROJECT_OF_TASK = Task._meta.get_field("project")


def activation(
    plugin_id: int, project_id: int, *, live: bool
) -> tuple[bool, list[str] | None]:
    """Whether the plugin is activated on the project and, with `live`, the
    versions its live instances declare ("" for none), else None."""
    params: list[Any] = [plugin_id, project_id]
    sql = _activated_sql()
    if live:
        sql = f"{sql} UNION ALL {_live_sql()}"
        params += _live_params(plugin_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    activated = any(kind == 1 for kind, _ in rows)
    return activated, [v for kind, v in rows if kind == 0] if live else None


def live_versions(plugin_id: int) -> list[str]:
    """The versions the plugin's live instances declare ("" for none)."""
    with connection.cursor() as cursor:
        cursor.execute(_live_sql(), _live_params(plugin_id))
        return [version for _, version in cursor.fetchall()]


def assets(project: Project, external_ids: list[str]) -> list[Asset]:
    """The project's assets of these external ids (any order), each with its
    task read in the same statement: the job names it (asset.task), and the
    lease would otherwise prefetch it, inside the create's transaction."""
    if not external_ids:
        return []
    if len(external_ids) > _RAW_ASSETS:
        found = list(
            project.assets.filter(external_id__in=external_ids).select_related("task")
        )
        return _known(found, project)
    marks = ", ".join(["%s"] * len(external_ids))
    sql = f"{_assets_sql()} IN ({marks})"
    db = router.db_for_read(Asset)
    with connections[db].cursor() as cursor:
        cursor.execute(sql, [project.pk, *external_ids])
        rows = cursor.fetchall()
    found = [a for a in ASSETS.instances(rows, db) if a is not None]
    for asset, task in zip(found, TASKS.instances(rows, db, ASSETS.width), strict=True):
        # As select_related("task") leaves them: the task, or None cached
        # (Asset.task then raises DoesNotExist without a query).
        _TASK_OF_ASSET.set_cached_value(asset, task)
        if task is not None:
            _ASSET_OF_TASK.set_cached_value(task, asset)
    return _known(found, project)


def _known(found: list[Asset], project: Project) -> list[Asset]:
    """As `project.assets` leaves its rows (its known related object):
    asset.project is the project, not a query; so is the task's (its
    workflow stage is read from task.project)."""
    for asset in found:
        _PROJECT_OF_ASSET.set_cached_value(asset, project)
        task = _cached_task(asset)
        if task is not None and task.project_id == project.pk:
            _PROJECT_OF_TASK.set_cached_value(task, project)
    return found


def _cached_task(asset: Asset) -> Task | None:
    task = _TASK_OF_ASSET.get_cached_value(asset, default=None)
    return task if isinstance(task, Task) else None


@functools.cache
def _assets_sql() -> str:
    """The SELECT of a project's assets and their tasks, up to its `IN (…)`."""
    q = quoted
    return (
        f"SELECT {ASSETS.select('a')}, {TASKS.select('t')} "  # noqa: S608
        f"FROM {q(Asset)} a "
        f"LEFT JOIN {q(Task)} t ON t.{q(Task, 'asset')} = a.{q(Asset, 'id')} "
        f"WHERE a.{q(Asset, 'project')} = %s AND a.{q(Asset, 'external_id')}"
    )


@functools.cache
def _activated_sql() -> str:
    """One row (1, NULL) if the plugin is activated on the project."""
    field = Plugin._meta.get_field("projects")
    assert isinstance(field, ManyToManyField)
    table = field.remote_field.through._meta.db_table  # type: ignore[union-attr]
    q = connection.ops.quote_name
    return (
        f"SELECT 1, NULL FROM {q(table)} "  # noqa: S608
        f"WHERE {q(field.m2m_column_name())} = %s "
        f"AND {q(field.m2m_reverse_name())} = %s"
    )


@functools.cache
def _live_sql() -> str:
    """A row (0, version) per live instance: PluginInstance.objects.live()."""
    q = connection.ops.quote_name

    def col(name: str) -> str:
        return q(column(PluginInstance, name))

    return (
        f"SELECT 0, {col('version')} FROM {q(PluginInstance._meta.db_table)} "  # noqa: S608
        f"WHERE {col('plugin')} = %s AND {col('disconnected_at')} IS NULL "
        f"AND {col('last_heartbeat')} >= %s AND {col('last_seen_at')} >= %s"
    )


def _live_params(plugin_id: int) -> list[Any]:
    heartbeat, seen = live_cutoffs(timezone.now())
    at = connection.ops.adapt_datetimefield_value
    return [plugin_id, at(heartbeat), at(seen)]
