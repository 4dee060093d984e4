"""Batch Model runs with the real SDK: the plugin pages through
GET /v2/project/{id}/assets and writes with POST /v2/import/labels."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from plugins_app.plugins.models import PluginType
from plugins_app.runs.models import Run, RunLogLine
from plugins_app.workspace.models import Batch, Task
from tests.hub import SCRIPTS, wait_for

SDKS = ["1.3.22", "1.4"]


def run_batches(workspace: Any, plugin: Any, batch_ids: list[int]) -> Run:
    client = Client()
    client.force_login(workspace.annotator)
    response = client.post(
        f"/projects/{workspace.project.pk}/plugins/{plugin.pk}/run/",
        {
            "batches": batch_ids,
            "config_json": "{}",
            "map_0": "face-box",
            "map_1": "coin-box",
        },
        HTTP_HX_REQUEST="true",
    )
    assert "HX-Redirect" in response, response.content.decode()
    run = Run.objects.latest("id")
    wait_for(
        lambda: Run.objects.get(pk=run.pk).is_finished, timeout=120, what="run end"
    )
    run.refresh_from_db()
    return run


@pytest.mark.parametrize("sdk", SDKS)
def test_it_prelabels_a_batch_through_the_rest_api(
    sdk: str, workspace: Any, make_plugin: Any, plugin_runner: Any
) -> None:
    registered = make_plugin(type=PluginType.BATCH_MODEL, timeout=120)
    process = plugin_runner("examples/batch_model_plugin.py", registered, sdk=sdk)
    # A small batch keeps the real detector's work (seconds per image) short.
    small = Batch.objects.create(project=workspace.project, name="Small")
    small.assets.set([workspace.asset(e) for e in ("coins", "astronaut", "camera")])
    run = run_batches(workspace, registered.plugin, [small.pk])
    assert run.status == Run.Status.SUCCEEDED, (run.error, process.log())
    assert run.assets_total == 3
    labeled = Task.objects.filter(prelabel_run=run)
    # The example imports only assets where it detected something.
    assert run.assets_labeled == labeled.count() >= 2
    assert not labeled.exclude(asset__batches=small).exists()
    coins = Task.objects.get(asset=workspace.asset("coins"))
    assert sum(t["schemaId"] == "coin-box" for t in coins.answer["tools"]) >= 10
    astronaut = Task.objects.get(asset=workspace.asset("astronaut"))
    assert any(t["schemaId"] == "face-box" for t in astronaut.answer["tools"])


def test_it_refuses_an_import_with_a_bad_record_and_writes_nothing(
    workspace: Any, make_plugin: Any, plugin_runner: Any
) -> None:
    registered = make_plugin(type=PluginType.BATCH_MODEL)
    plugin_runner(SCRIPTS / "bad_batch_import.py", registered, sdk="1.4")
    run = run_batches(workspace, registered.plugin, [])
    assert run.status == Run.Status.FAILED
    assert not Task.objects.filter(prelabel_run=run).exists()
    refusal = RunLogLine.objects.get(run=run, message__startswith="Refused an import")
    assert "records[1]" in refusal.message and "no-such-tool" in refusal.message
    assert "records[0]" not in refusal.message
