"""The claim of a plugin's answer, with what applying it reads, in one
statement: the item a `response` names moves leased → done only if it is a
Model job leased to this socket (not a workflow job, not a preview), and the
same UPDATE returns the few columns of its run, plugin, project, asset and
instance that applying the answer needs (RETURNING with scalar subqueries,
which SQLite and PostgreSQL both allow). Anything else (stale, unknown, other
kinds) claims nothing and goes the general way (runs/responses.py).

Before, a SELECT of the same columns came first and the claim followed: two
statements (on PostgreSQL two round trips) for what is one decision. The
ORM read before that (a select_related of six models) turned every column of
each into Python, converters and model instances included: a quarter of the
answer's CPU. The JSON columns (ontology, class mapping, workflow) are parsed
once per distinct text and kept: a run's thousands of answers carry the same
few texts. The key is the text itself, so a changed ontology is parsed anew
and nothing cached can be stale.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Model

from plugins_app.plugins.kinds import WORKFLOW_TRIGGER
from plugins_app.plugins.models import Plugin, PluginInstance, PluginType
from plugins_app.runs.models import Run, WorkItem
from plugins_app.workspace.bulk import column
from plugins_app.workspace.models import Asset, Project
from plugins_app.workspace.prelabel import Writer, stages_past_labeling


@dataclass(frozen=True, slots=True)
class AnswerRow:
    item_id: int
    instance_id: int
    timeouts: int
    run_id: int
    run_version: str
    plugin_id: int
    plugin_name: str
    version: str  # served_version: the instance's, else the code's, else the admin's
    asset_id: int
    external_id: str
    image_size: tuple[int, int]
    ontology_text: Any
    mapping_text: Any
    workflow_text: Any

    @property
    def ontology(self) -> Any:
        return _parsed(self.ontology_text)

    @property
    def mapping(self) -> Any:
        return _parsed(self.mapping_text)

    def writer(self) -> Writer:
        return Writer(
            self.run_id,
            self.plugin_name,
            self.run_version,
            _past_stages(self.workflow_text),
        )


def claim_answer(session: str, channel_name: str, finished_at: Any) -> AnswerRow | None:
    """In the caller's transaction: the Model job `session`, leased to the
    socket `channel_name`, moved leased → done (finished_at, and the version
    that served it: plugins/versions.py served_version, in SQL). None when no
    such job moved: the caller reads the item and decides (stale, unknown,
    another kind, a workflow job, a preview)."""
    at = WorkItem._meta.get_field("finished_at").get_db_prep_save(
        finished_at, connection
    )
    with connection.cursor() as cursor:
        cursor.execute(
            _sql(connection.vendor),
            [
                WorkItem.State.DONE.value,
                at,
                session,
                WorkItem.State.LEASED.value,
                channel_name,
                WORKFLOW_TRIGGER,
                PluginType.MODEL.value,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    (item_id, instance_id, run_id, asset_id, version, timeouts) = row[:6]
    (run_version, mapping, plugin_id, name, ontology, workflow) = row[6:12]
    (external_id, width, height) = row[12:]
    return AnswerRow(
        item_id=item_id,
        instance_id=instance_id,
        timeouts=timeouts or 0,
        run_id=run_id,
        run_version=run_version,
        plugin_id=plugin_id,
        plugin_name=name,
        version=version,
        asset_id=asset_id,
        external_id=external_id or "",
        image_size=(width or 0, height or 0),
        ontology_text=ontology,
        mapping_text=mapping,
        workflow_text=workflow,
    )


@functools.lru_cache(maxsize=256)
def _parsed_text(text: str) -> Any:
    return json.loads(text)


def _parsed(value: Any) -> Any:
    # SQLite and psycopg hand JSON columns back as text (Django leaves them for
    # JSONField.from_db_value); the parsed value is shared: read it only.
    return _parsed_text(value) if isinstance(value, str) else value


@functools.lru_cache(maxsize=256)
def _past_stages_of_text(text: str) -> tuple[str, ...]:
    return stages_past_labeling(json.loads(text))


def _past_stages(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return _past_stages_of_text(value)
    return stages_past_labeling(value)


@functools.cache
def _sql(vendor: str) -> str:
    """The claim, built once per process and database (only quoted names from
    the models are formatted in; every value is a parameter). Parameters: the
    done state, finished_at, the session, the leased state, the channel, the
    workflow trigger, the Model type."""
    quote = connection.ops.quote_name

    def c(model: type[Model], name: str, alias: str = "") -> str:
        return f"{alias + '.' if alias else ''}{quote(column(model, name))}"

    def table(model: type[Model]) -> str:
        return quote(model._meta.db_table)

    i, r, p, pr, a, n = WorkItem, Run, Plugin, Project, Asset, PluginInstance
    items, pk = table(i), quote("id")
    # The claimed row's own columns, as the subqueries see it.
    item_run, item_asset = f"{items}.{c(i, 'run')}", f"{items}.{c(i, 'asset')}"
    item_instance = f"{items}.{c(i, 'instance')}"
    run_and_plugin = (
        f"{table(r)} r JOIN {table(p)} p ON p.{pk} = {c(r, 'plugin', 'r')} "
        f"WHERE r.{pk} = {item_run}"
    )

    def of_run(expression: str) -> str:
        return f"(SELECT {expression} FROM {run_and_plugin})"  # noqa: S608

    def of(model: type[Model], name: str, key: str) -> str:
        return f"(SELECT {c(model, name)} FROM {table(model)} WHERE {pk} = {key})"  # noqa: S608

    def of_project(name: str) -> str:
        key = of_run(c(r, "project", "r"))
        return f"(SELECT {c(pr, name)} FROM {table(pr)} WHERE {pk} = {key})"  # noqa: S608

    served = (
        f"(SELECT COALESCE(NULLIF({c(n, 'version', 'n')}, ''), "  # noqa: S608
        f"NULLIF({c(p, 'code_version', 'p')}, ''), {c(p, 'version', 'p')}) "
        f"FROM {table(n)} n, {run_and_plugin} AND n.{pk} = {item_instance})"
    )
    returning = [
        c(i, "id"),
        c(i, "instance"),
        c(i, "run"),
        c(i, "asset"),
        c(i, "plugin_version"),
        of(n, "timeouts", item_instance),
        of(r, "plugin_version", item_run),
        of(r, "class_mapping", item_run),
        c(i, "plugin"),  # the run's, copied onto the item
        of_run(c(p, "name", "p")),
        of_project("ontology"),
        of_project("workflow"),
        of(a, "external_id", item_asset),
        of(a, "width", item_asset),
        of(a, "height", item_asset),
    ]
    return (
        f"UPDATE {items} SET {c(i, 'state')} = %s, "  # noqa: S608
        f"{c(i, 'finished_at')} = %s, {c(i, 'plugin_version')} = {served} "
        f"WHERE {c(i, 'session')} = %s AND {c(i, 'state')} = %s "
        f"AND {c(i, 'asset')} IS NOT NULL AND {c(i, 'instance')} = "
        f"(SELECT {pk} FROM {table(n)} WHERE {c(n, 'channel_name')} = %s) "
        f"AND EXISTS (SELECT 1 FROM {run_and_plugin} AND {c(r, 'trigger', 'r')} <> %s "
        f"AND NOT {c(r, 'dry_run', 'r')} AND {c(p, 'type', 'p')} = %s) "
        f"RETURNING {', '.join(returning)}"
    )
