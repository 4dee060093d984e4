"""Plugin setting presets: saved from the Run dialog, loaded back into it (and
into workflow Plugin stages), mapping suggestions, and the warnings when an
ontology change breaks a saved preset."""

from __future__ import annotations

import copy
import html as htmllib
from typing import Any

import pytest
from django.test import Client

from plugins_app.demo.seed import DEMO_ONTOLOGY
from plugins_app.plugins.models import Preset
from plugins_app.plugins.presets import preset_problems, suggest_mapping
from plugins_app.runs.models import Run
from tests.builders import connect_instance


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def dialog_url(workspace: Any, plugin: Any) -> str:
    return f"/projects/{workspace.project.pk}/plugins/{plugin.pk}/run/"


def save_preset(client: Client, url: str, name: str, **fields: str) -> Any:
    data = {
        "map_0": "face-box",
        "map_1": "",
        "config_json": '{"threshold": 0.7}',
        "external_ids": "astronaut",
        "preset_name": name,
        "action": "save_preset",
        **fields,
    }
    return client.post(url, data, HTTP_HX_REQUEST="true")


def drop_from_ontology(project: Any, schema_id: str) -> None:
    ontology = copy.deepcopy(DEMO_ONTOLOGY)
    ontology["tools"] = [t for t in ontology["tools"] if t["schemaId"] != schema_id]
    project.ontology = ontology
    project.save(update_fields=["ontology"])


@pytest.fixture
def plugin(make_plugin: Any) -> Any:
    return make_plugin(name="Detector").plugin


def test_it_saves_the_dialogs_mapping_and_config_as_a_preset(
    workspace: Any, plugin: Any
) -> None:
    client = client_for(workspace.annotator)

    response = save_preset(client, dialog_url(workspace, plugin), "Faces only")

    assert response.status_code == 200
    preset = Preset.objects.get(project=workspace.project, plugin=plugin)
    assert preset.name == "Faces only"
    assert preset.class_mapping == {"face": "face-box"}
    assert preset.config_json == '{"threshold": 0.7}'
    assert preset.created_by == workspace.annotator
    page = response.content.decode()
    assert "Saved preset “Faces only”." in page
    # The dialog comes back with the preset chosen and what was typed kept.
    assert f'<option value="{preset.pk}" selected>' in page
    assert "astronaut" in page
    assert Run.objects.count() == 0


def test_it_replaces_a_preset_saved_under_the_same_name(
    workspace: Any, plugin: Any
) -> None:
    client, url = client_for(workspace.annotator), dialog_url(workspace, plugin)
    save_preset(client, url, "P1")

    save_preset(client, url, "P1", map_1="coin-box", config_json="{}")

    preset = Preset.objects.get()
    assert preset.class_mapping == {"face": "face-box", "coin": "coin-box"}
    assert preset.config_json == "{}"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"preset_name": "  "}, "Give the preset a name."),
        ({"config_json": "{nope"}, "Config JSON is not valid"),
        ({"map_0": "ghost-box"}, "Select a valid choice"),
    ],
    ids=["no-name", "bad-json", "unknown-label"],
)
def test_it_refuses_a_bad_preset_and_saves_nothing(
    workspace: Any, plugin: Any, fields: dict[str, str], message: str
) -> None:
    name = fields.pop("preset_name", "Bad")
    response = save_preset(
        client_for(workspace.annotator),
        dialog_url(workspace, plugin),
        name,
        **fields,
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Preset.objects.exists()


def test_choosing_a_preset_refills_the_mapping_and_config(
    workspace: Any, plugin: Any
) -> None:
    preset = Preset.objects.create(
        project=workspace.project,
        plugin=plugin,
        name="Coins as objects",
        class_mapping={"coin": "object-box"},
        config_json='{"max_detections": 3}',
    )
    url = dialog_url(workspace, plugin)

    page = client_for(workspace.annotator).get(
        url, {"preset": preset.pk, "external_ids": "coins"}, HTTP_HX_REQUEST="true"
    )

    html = page.content.decode()
    assert page.status_code == 200
    assert '<option value="object-box" selected>' in html  # coin, from the preset
    # face is not in the preset: the hub suggests Face (exact title match).
    assert '<option value="face-box" selected>' in html
    assert "{&quot;max_detections&quot;: 3}" in html
    assert "coins</textarea>" in html
    assert "no longer fits" not in html


def test_it_answers_404_for_a_preset_of_another_project(
    workspace: Any, plugin: Any
) -> None:
    theirs = Preset.objects.create(
        project=workspace.other_project, plugin=plugin, name="x"
    )
    url = dialog_url(workspace, plugin)

    page = client_for(workspace.annotator).get(url, {"preset": theirs.pk})

    assert page.status_code == 404


def test_it_warns_when_an_ontology_change_breaks_a_preset(
    workspace: Any, plugin: Any
) -> None:
    preset = Preset.objects.create(
        project=workspace.project,
        plugin=plugin,
        name="Old faces",
        class_mapping={"face": "face-box", "coin": "coin-box"},
    )
    drop_from_ontology(workspace.project, "face-box")
    client = client_for(workspace.annotator)

    dialog = client.get(dialog_url(workspace, plugin), {"preset": preset.pk})
    section = client.get(f"/projects/{workspace.project.pk}/workflow/")

    problem = "“face” is mapped to “face-box”, which is not a label of this project's"
    assert preset_problems(preset) == [problem + " ontology: choose another label."]
    html = htmllib.unescape(dialog.content.decode())
    assert 'id="preset-warning"' in html and problem in html
    # The broken label stays visible and chosen, not silently unmapped.
    assert '<option value="face-box" selected>⚠ face-box' in html
    listing = htmllib.unescape(section.content.decode())
    assert "⚠ broken" in listing and problem in listing


def test_the_run_refuses_a_broken_preset_mapping_with_a_clear_error(
    workspace: Any, plugin: Any
) -> None:
    connect_instance(plugin)
    preset = Preset.objects.create(
        project=workspace.project,
        plugin=plugin,
        name="Old faces",
        class_mapping={"face": "face-box"},
    )
    drop_from_ontology(workspace.project, "face-box")

    response = client_for(workspace.annotator).post(
        dialog_url(workspace, plugin),
        {
            "preset": preset.pk,
            "map_0": "face-box",
            "map_1": "",
            "config_json": "{}",
            "external_ids": "astronaut",
        },
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    assert "HX-Redirect" not in response
    html = htmllib.unescape(response.content.decode())
    assert (
        "“face” is mapped to “face-box” (from preset “Old faces”), which is not a "
        "label of this project's ontology: choose another label."
    ) in html
    assert Run.objects.count() == 0


def test_a_fixed_preset_runs(workspace: Any, plugin: Any) -> None:
    """The control: the same post with a label that exists creates the run."""
    connect_instance(plugin)
    response = client_for(workspace.annotator).post(
        dialog_url(workspace, plugin),
        {"map_0": "face-box", "config_json": "{}", "external_ids": "astronaut"},
        HTTP_HX_REQUEST="true",
    )

    assert "HX-Redirect" in response
    assert Run.objects.get().class_mapping == [
        {"schemaId": "face-box", "modelClass": "face"}
    ]


def test_it_deletes_a_preset_from_the_list(workspace: Any, plugin: Any) -> None:
    preset = Preset.objects.create(project=workspace.project, plugin=plugin, name="x")
    url = f"/projects/{workspace.project.pk}/presets/{preset.pk}/delete/"

    outsider = client_for(workspace.outsider).post(url)
    assert outsider.status_code == 404 and Preset.objects.exists()
    response = client_for(workspace.annotator).post(url, HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert "Deleted preset “x”." in response.content.decode()
    assert not Preset.objects.exists()


ENTRIES = [
    {"schemaId": "face-box", "title": "Face"},
    {"schemaId": "traffic_light", "title": "Traffic light"},
    {"schemaId": "car-1", "title": "Vehicle"},
    {"schemaId": "ped", "title": "Pedestrian"},
]


@pytest.mark.parametrize(
    ("model_class", "expected"),
    [
        ("Face", "face-box"),  # exact title
        ("face-box", "face-box"),  # exact schemaId
        ("FACE", "face-box"),  # case-insensitive
        ("traffic_lights", "traffic_light"),  # separators and a plural
        ("Traffic-Light", "traffic_light"),
        ("pedestrians", "ped"),  # plural of a title
        ("vehicel", "car-1"),  # a close name (typo)
        ("zebra", ""),  # nothing close: left unmapped
    ],
)
def test_it_suggests_a_label_for_an_unmapped_class(
    model_class: str, expected: str
) -> None:
    assert suggest_mapping(model_class, ENTRIES) == expected
