"""runs.0010: log lines stored before extras were bounded at ingest are trimmed,
so their run's pages load again."""

from __future__ import annotations

import importlib
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps
from django.db import connection

from plugins_app.runs.models import RunLogLine
from tests.builders import connect_instance, new_run

trim = importlib.import_module(
    "plugins_app.runs.migrations.0010_trim_deep_log_extras"
).trim


def _store_raw(line: RunLogLine, text: str) -> None:
    # The way such a row came to be: written before ingest bounded extras.
    cast = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    table = RunLogLine._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET extra = {cast} WHERE id = %s", [text, line.pk]
        )


@pytest.mark.django_db
def test_it_trims_extras_too_deep_to_load_and_keeps_the_others(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect_instance(plugin)
    run = new_run(workspace, plugin, "astronaut")
    deep, nested, plain = (
        RunLogLine.objects.create(run=run, level="INFO", message=m)
        for m in ("deep", "nested", "plain")
    )
    _store_raw(deep, '{"a": ' + "[" * 960 + "]" * 960 + "}")
    _store_raw(nested, '{"b": ' + "[" * 100 + "1" + "]" * 100 + "}")
    _store_raw(plain, '{"score": 0.5, "note": "' + "x" * 300 + '"}')
    with pytest.raises(RecursionError):  # the defect: the run's lines do not load
        list(RunLogLine.objects.filter(run=run))

    # RunPython hands the function a schema editor; it uses only its connection.
    trim(apps, SimpleNamespace(connection=connection))

    lines = {line.message: line.extra for line in RunLogLine.objects.filter(run=run)}
    assert set(lines["deep"]) == {"hub_truncated"}
    assert "hub_truncated" in lines["nested"] and "…(cut)" in str(lines["nested"])
    assert lines["plain"] == {"score": 0.5, "note": "x" * 300}
