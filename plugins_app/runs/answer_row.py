"""What applying a plugin's answer reads, in one raw row: the item a `response`
names, with the few columns of its run, plugin, project, asset and instance
that the common case (a Model answer to a leased job) needs.

The ORM read it replaces (a prepared select_related of six models) turned
every column of each into Python, converters and model instances included:
a quarter of the answer's CPU. The JSON columns (ontology, class mapping,
workflow) are parsed once per distinct text and kept: a run's thousands of
answers carry the same few texts. The key is the text itself, so a changed
ontology is parsed anew and nothing cached can be stale.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Model

from plugins_app.plugins.models import Plugin, PluginInstance
from plugins_app.runs.models import Run, WorkItem
from plugins_app.workspace.bulk import column
from plugins_app.workspace.models import Asset, Project
from plugins_app.workspace.prelabel import Writer, stages_past_labeling


@dataclass(frozen=True, slots=True)
class AnswerRow:
    item_id: int
    state: str
    instance_id: int | None
    channel_name: str | None
    timeouts: int
    run_id: int
    trigger: str
    dry_run: bool
    task_id: int | None  # the task a run is about (event runs), not the asset's
    run_version: str
    plugin_id: int
    plugin_type: str
    plugin_name: str
    version: str  # served_version: the instance's, else the code's, else the admin's
    asset_id: int | None
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


def answer_row(session: str) -> AnswerRow | None:
    with connection.cursor() as cursor:
        cursor.execute(_sql(connection.vendor), [session])
        row = cursor.fetchone()
    if row is None:
        return None
    (item_id, state, instance_id, channel, timeouts, instance_version) = row[:6]
    (run_id, trigger, dry_run, task_id, run_version, mapping) = row[6:12]
    (plugin_id, plugin_type, name, code_version, admin_version) = row[12:17]
    (ontology, workflow, asset_id, external_id, width, height) = row[17:]
    return AnswerRow(
        item_id=item_id,
        state=state,
        instance_id=instance_id,
        channel_name=channel,
        timeouts=timeouts or 0,
        run_id=run_id,
        trigger=trigger,
        dry_run=bool(dry_run),
        task_id=task_id,
        run_version=run_version,
        plugin_id=plugin_id,
        plugin_type=plugin_type,
        plugin_name=name,
        # plugins/versions.py served_version, from the row.
        version=instance_version or code_version or admin_version,
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
    """The read, built once per process and database (only quoted names from
    the models are formatted in; the session is a parameter)."""
    quote = connection.ops.quote_name

    def c(alias: str, model: type[Model], name: str) -> str:
        return f"{alias}.{quote(column(model, name))}"

    def table(model: type[Model]) -> str:
        return quote(model._meta.db_table)

    i, r, p, pr, a, n = WorkItem, Run, Plugin, Project, Asset, PluginInstance
    columns = [
        c("i", i, "id"),
        c("i", i, "state"),
        c("i", i, "instance"),
        c("n", n, "channel_name"),
        c("n", n, "timeouts"),
        c("n", n, "version"),
        c("r", r, "id"),
        c("r", r, "trigger"),
        c("r", r, "dry_run"),
        c("r", r, "task"),
        c("r", r, "plugin_version"),
        c("r", r, "class_mapping"),
        c("p", p, "id"),
        c("p", p, "type"),
        c("p", p, "name"),
        c("p", p, "code_version"),
        c("p", p, "version"),
        c("pr", pr, "ontology"),
        c("pr", pr, "workflow"),
        c("a", a, "id"),
        c("a", a, "external_id"),
        c("a", a, "width"),
        c("a", a, "height"),
    ]
    return (
        f"SELECT {', '.join(columns)} FROM {table(i)} i "  # noqa: S608
        f"JOIN {table(r)} r ON r.{quote('id')} = {c('i', i, 'run')} "
        f"JOIN {table(p)} p ON p.{quote('id')} = {c('r', r, 'plugin')} "
        f"JOIN {table(pr)} pr ON pr.{quote('id')} = {c('r', r, 'project')} "
        f"LEFT JOIN {table(a)} a ON a.{quote('id')} = {c('i', i, 'asset')} "
        f"LEFT JOIN {table(n)} n ON n.{quote('id')} = {c('i', i, 'instance')} "
        f"WHERE {c('i', i, 'session')} = %s"
    )
