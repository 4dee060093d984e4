"""The reads of a run's creation (runs/creation.py) as SQL written once: the
ORM built each of these queries on every create, at several times the cost
of running it.

- Whether the plugin is activated on the project and the versions its live
  instances declare, in one statement: the scope check needs the first, the
  reachability check and the run's version the second (UNION ALL of the
  m2m row and the instances' rows).
- The assets a run names, as model instances the way `project.assets`
  returns them (workspace/rows.py; the project set on each, as the related
  manager does).

Only quoted names from the models are formatted into SQL; values are params.
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import connection
from django.db.models import ManyToManyField
from django.utils import timezone

from plugins_app.plugins.models import Plugin, PluginInstance, live_cutoffs
from plugins_app.workspace.bulk import column
from plugins_app.workspace.models import Asset, Project
from plugins_app.workspace.rows import ModelRows

# Above this many external ids the ORM reads them (a run from a long list;
# its IN would pass SQLite's 999 parameters).
_RAW_ASSETS = 500

ASSETS = ModelRows(Asset)


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
    """The project's assets of these external ids (any order)."""
    if not external_ids:
        return []
    if len(external_ids) > _RAW_ASSETS:
        return list(project.assets.filter(external_id__in=external_ids))
    q = connection.ops.quote_name
    meta = Asset._meta
    marks = ", ".join(["%s"] * len(external_ids))
    sql = (
        f"SELECT {ASSETS.select('a')} FROM {q(meta.db_table)} a "  # noqa: S608
        f"WHERE a.{q(column(Asset, 'project'))} = %s "
        f"AND a.{q(column(Asset, 'external_id'))} IN ({marks})"
    )
    found = ASSETS.fetch(sql, [project.pk, *external_ids])
    # As `project.assets` does (its known related object): asset.project is
    # the project, not a query.
    field = meta.get_field("project")
    for asset in found:
        field.set_cached_value(asset, project)
    return found


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
