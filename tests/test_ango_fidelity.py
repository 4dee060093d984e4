"""Ango SDK fidelity leftovers, through the real SDK in its own venv: a Batch
plugin's create_batch (1.3.22 posts every batch the project already has plus
the new one) is logged with only the batch it created, and the `_id` /
`externalId` asset filters given as top-level query parameters (older SDKs,
hand-written scripts) narrow get-assets like the `filters` JSON does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from plugins_app.plugins.models import PluginType
from plugins_app.runs.models import Run, RunLogLine
from tests.builders import leased_project_run
from tests.hub import SCRIPTS, wait_for


@pytest.mark.sdk
@pytest.mark.parametrize("sdk", ["1.3.22", "1.4"])
def test_create_batch_names_only_the_new_batch_and_top_level_filters_narrow(
    sdk: str, workspace: Any, make_plugin: Any, plugin_runner: Any, live_hub: Any
) -> None:
    registered = make_plugin(type=PluginType.BATCH_MODEL, timeout=120)
    process = plugin_runner(SCRIPTS / "batch_fidelity.py", registered, sdk=sdk)
    client = Client()
    client.force_login(workspace.annotator)
    response = client.post(
        f"/projects/{workspace.project.pk}/plugins/{registered.plugin.pk}/run/",
        {"config_json": "{}", "map_0": "face-box"},
        HTTP_HX_REQUEST="true",
    )
    assert "HX-Redirect" in response, response.content.decode()
    run = Run.objects.latest("id")
    wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, timeout=120, what="end")

    def logged(prefix: str) -> str:
        line = RunLogLine.objects.filter(run=run, message__startswith=prefix).first()
        assert line is not None, (prefix, process.log())
        return line.message.removeprefix(prefix)

    assert logged("Created ") == "1 batch(es): Night shots"
    assert set(workspace.project.batches.values_list("name", flat=True)) == {
        "Batch A",
        "Batch B",
        "Night shots",
    }
    assert json.loads(logged("externalId:")) == ["coins", "moon"]
    assert json.loads(logged("_id:")) == ["coins"]


def test_a_filter_both_in_filters_and_in_the_query_is_refused(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.BATCH_MODEL).plugin
    _, job = leased_project_run(workspace, plugin)
    url = f"/v2/project/{job['projectId']}/assets"
    both = Client().get(
        f"{url}?externalId=coins&filters={json.dumps({'externalId': 'moon'})}",
        HTTP_APIKEY=job["apiKey"],
    )
    assert both.status_code == 400
    assert "either in filters or as a parameter" in both.json()["message"]
    alone = Client().get(f"{url}?externalId=moon", HTTP_APIKEY=job["apiKey"])
    assert [a["externalId"] for a in alone.json()["data"]["assets"]] == ["moon"]
