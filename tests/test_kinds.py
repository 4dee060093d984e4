"""Plugin kinds (plugins/kinds/): every type has one, and the one mapping
check and the one config check give the same message at every entry point —
the Run dialog, POST /api/runs, saving a preset and a workflow Plugin stage."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from plugins_app.plugins.kinds import KINDS
from plugins_app.plugins.kinds.checks import NOTHING_MAPPED
from plugins_app.plugins.models import Plugin, PluginType
from plugins_app.plugins.presets import PresetError, preset_save
from plugins_app.runs.models import Run
from plugins_app.runs.workflow import stage_settings
from plugins_app.workspace.models import Storage
from tests.builders import connect_instance
from tests.test_api import bearer, post_json

NOT_AN_OBJECT = 'Config JSON must be a JSON object, like {"threshold": 0.5}.'
GOOD_MAPPING = {"face": "face-box", "coin": "coin-box"}

# (class mapping, config, the message every entry point gives)
CASES = {
    "nothing mapped": ({"face": "", "coin": ""}, "{}", NOTHING_MAPPED),
    "config a list": (GOOD_MAPPING, "[1, 2]", NOT_AN_OBJECT),
    "config a number": (GOOD_MAPPING, "3", NOT_AN_OBJECT),
    "config not JSON": (GOOD_MAPPING, "{nope", "Config JSON is not valid JSON: "),
}


def via_dialog(workspace: Any, plugin: Plugin, mapping: dict, config: str) -> str:
    client = Client()
    client.force_login(workspace.annotator)
    data = {
        f"map_{i}": mapping.get(name, "") for i, name in enumerate(plugin.class_names)
    }
    response = client.post(
        f"/projects/{workspace.project.pk}/plugins/{plugin.pk}/run/",
        {**data, "config_json": config, "external_ids": "astronaut"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and "HX-Redirect" not in response
    return html.unescape(response.content.decode())


def via_api(workspace: Any, plugin: Plugin, mapping: dict, config: str) -> str:
    response = post_json(
        bearer(workspace.annotator),
        "/api/runs",
        {
            "plugin_id": plugin.pk,
            "project_id": workspace.project.pk,
            "class_mapping": mapping,
            "config_json": config,
            "external_ids": ["astronaut"],
        },
    )
    assert response.status_code == 400, response.content
    return "\n".join(m for ms in response.json()["errors"].values() for m in ms)


def via_preset(workspace: Any, plugin: Plugin, mapping: dict, config: str) -> str:
    with pytest.raises(PresetError) as refused:
        preset_save(
            project=workspace.project,
            plugin=plugin,
            name="Mine",
            class_mapping=mapping,
            config_json=config,
            user=workspace.annotator,
        )
    return str(refused.value)


def via_stage(workspace: Any, plugin: Plugin, mapping: dict, config: str) -> str:
    stage = {"plugin": plugin.pk, "class_mapping": mapping, "config_json": config}
    return "\n".join(stage_settings(workspace.project, stage).problems)


ENTRY_POINTS: dict[str, Callable[[Any, Plugin, dict, str], str]] = {
    "Run dialog": via_dialog,
    "POST /api/runs": via_api,
    "preset": via_preset,
    "workflow stage": via_stage,
}


def test_every_plugin_type_has_a_kind() -> None:
    assert set(KINDS) == set(PluginType.values)
    assert all(kind.type == t for t, kind in KINDS.items())


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", CASES)
def test_each_entry_point_refuses_with_the_same_message(
    workspace: Any, make_plugin: Any, entry: str, case: str
) -> None:
    plugin = make_plugin().plugin
    connect_instance(plugin)
    mapping, config, message = CASES[case]

    shown = ENTRY_POINTS[entry](workspace, plugin, mapping, config)

    assert message in shown, shown
    assert not Run.objects.exists()


def test_a_label_not_in_the_ontology_reads_the_same_from_the_api_preset_and_stage(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect_instance(plugin)
    message = (
        "“face” is mapped to “ghost-box”, which is not a label of this project's "
        "ontology: choose another label."
    )
    for entry in ("POST /api/runs", "preset", "workflow stage"):
        shown = ENTRY_POINTS[entry](workspace, plugin, {"face": "ghost-box"}, "{}")
        assert message in shown, (entry, shown)


def test_a_kind_without_classes_needs_no_mapping_and_its_dialog_has_none(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.EXPORT, class_names=[]).plugin
    client = Client()
    client.force_login(workspace.annotator)

    page = client.get(f"/projects/{workspace.project.pk}/plugins/{plugin.pk}/run/")

    text = page.content.decode()
    assert page.status_code == 200
    assert 'name="stages"' in text
    assert "mapping" not in text.lower(), text
    assert via_stage(workspace, plugin, {}, "{}") != NOTHING_MAPPED


def test_an_event_plugin_says_it_runs_on_events_instead_of_not_runnable(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.EVENT, class_names=[], name="Notifier").plugin
    client = Client()
    client.force_login(workspace.annotator)

    text = client.get(f"/projects/{workspace.project.pk}/").content.decode()
    page = client.get(f"/plugins/{plugin.pk}/").content.decode()

    assert "runs on task events" in text
    assert "not runnable yet" not in text
    assert "Runs by itself when a task event" in page


@pytest.mark.parametrize(
    ("kind", "inputs", "field"),
    [
        (PluginType.EXPORT, {"stages": 5}, "stages"),
        (PluginType.EXPORT, {"stages": "Complete"}, "stages"),
        (PluginType.FILE_EXPLORER, {"storage_id": "S", "files": 7}, "files"),
        (PluginType.MARKDOWN, {"csv_base64": ["x"], "markdown_text": {}}, "csv_file"),
    ],
)
def test_a_kinds_inputs_of_the_wrong_shape_are_a_400(
    workspace: Any, make_plugin: Any, kind: str, inputs: dict, field: str
) -> None:
    plugin = make_plugin(type=kind, class_names=[]).plugin
    connect_instance(plugin)
    if inputs.get("storage_id") == "S":
        storage = Storage.objects.create(
            organization=workspace.org, name="S", provider="s3", bucket="b"
        )
        inputs = {**inputs, "storage_id": storage.pk}

    response = post_json(
        bearer(workspace.admin),
        "/api/runs",
        {"plugin_id": plugin.pk, "project_id": workspace.project.pk, "inputs": inputs},
    )

    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert not Run.objects.exists()
