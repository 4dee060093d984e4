"""The review canvas's server side (web/canvas.py, web/canvas_views.py): where
each object came from, read from the task's history; Run from the editor with
the project's saved mapping; bad input answered with a clear 4xx."""

from __future__ import annotations

import copy
from typing import Any

from django.test import Client

from plugins_app.plugins.models import PluginType, Preset
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.models import Run
from plugins_app.runs.responses import item_respond
from plugins_app.web.canvas import canvas_state, plugin_menus
from plugins_app.workspace.lifecycle import task_submit
from plugins_app.workspace.services import prelabels_import
from tests.builders import CHANNEL, connect_instance, new_run

CLASSES = ["face", "coin", "object"]
MAPPING = {"face": "face-box", "coin": "coin-box", "object": "object-box"}
FACE = {"x": 170.0, "y": 60.0, "width": 100.0, "height": 110.0}
COIN = {"x": 300.0, "y": 300.0, "width": 50.0, "height": 50.0}


def prelabeled(workspace: Any, plugin: Any, objects: list[dict[str, Any]]) -> Run:
    """A Batch Model run that imported `objects` on astronaut through the
    hub's write path (answer.written in the history, the ledger) and ended."""
    connect_instance(plugin, CHANNEL)
    run = new_run(workspace, plugin, mapping=MAPPING)
    assert dispatch_pending(plugin.pk) == 1
    result = prelabels_import(
        project=workspace.project,
        records=[{"externalId": "astronaut", "objects": objects}],
        mapping=run.class_mapping,
        run=run,
    )
    assert not result.errors and result.labeled == 1
    session = run.items.get().session
    item_respond(session=session, payload={"response": "ok"}, channel_name=CHANNEL)
    return run


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_each_object_is_credited_to_the_plugin_or_the_person_from_the_history(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(
        name="Detector", type=PluginType.BATCH_MODEL, class_names=CLASSES
    ).plugin
    objects = [
        {"schemaId": "face-box", "bounding-box": FACE, "confidence": 0.87},
        {"schemaId": "coin-box", "bounding-box": COIN},
    ]
    run = prelabeled(workspace, plugin, objects)
    task = workspace.asset("astronaut").task
    task.refresh_from_db()
    state = canvas_state(task)
    assert [o["source"] for o in state["objects"]] == [
        {"kind": "plugin", "label": f"Detector (run #{run.pk})", "run": run.pk}
    ] * 2
    assert [o["confidence"] for o in state["objects"]] == [0.87, None]

    # bob moves the coin and submits: the face stays the plugin's, the coin is his.
    answer = copy.deepcopy(task.answer)
    answer["tools"][1]["bounding-box"]["x"] = 320.0
    task = task_submit(task, user=workspace.annotator, answer=answer)
    sources = [o["source"] for o in canvas_state(task)["objects"]]
    assert sources[0]["kind"] == "plugin" and sources[0]["run"] == run.pk
    assert sources[1] == {"kind": "person", "label": "bob", "run": None}


def test_run_from_the_editor_uses_the_chosen_preset_or_the_suggested_mapping(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(name="Detector", class_names=["face", "coin"]).plugin
    connect_instance(plugin, CHANNEL)
    preset = Preset.objects.create(
        project=workspace.project,
        plugin=plugin,
        name="faces",
        class_mapping={"face": "face-box"},
        config_json='{"threshold": 0.5}',
    )
    task = workspace.asset("astronaut").task
    url = f"/projects/{workspace.project.pk}/tasks/{task.pk}/canvas/run/"
    client = client_for(workspace.annotator)

    reply = client.post(url, {"plugin": plugin.pk, "preset": preset.pk})
    assert reply.status_code == 201, reply.content
    run = Run.objects.get(pk=reply.json()["run"]["id"])
    assert run.class_mapping == [{"modelClass": "face", "schemaId": "face-box"}]
    assert run.config_json == '{"threshold": 0.5}'
    assert [i.asset.external_id for i in run.items.all()] == ["astronaut"]

    reply = client.post(url, {"plugin": plugin.pk})
    assert reply.status_code == 201, reply.content
    run = Run.objects.get(pk=reply.json()["run"]["id"])
    assert {m["modelClass"]: m["schemaId"] for m in run.class_mapping} == {
        "face": "face-box",
        "coin": "coin-box",
    }

    state = client.get(
        f"/projects/{workspace.project.pk}/tasks/{task.pk}/canvas/?run={run.pk}"
    )
    assert state.status_code == 200
    assert state.json()["run"]["finished"] is False

    # The menu's one-time mapping: coin left unmapped.
    one_time = '{"face": "face-box", "coin": ""}'
    reply = client.post(url, {"plugin": plugin.pk, "mapping": one_time})
    assert reply.status_code == 201, reply.content
    run = Run.objects.get(pk=reply.json()["run"]["id"])
    assert run.class_mapping == [{"modelClass": "face", "schemaId": "face-box"}]
    assert run.config_json == plugin.default_config


def test_the_menu_offers_this_projects_presets_only(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(name="Detector", class_names=["face", "coin"]).plugin
    plugin.projects.add(workspace.other_project)
    for project, name in ((workspace.project, "mine"), (workspace.other_project, "x")):
        Preset.objects.create(project=project, plugin=plugin, name=name)
    task = workspace.asset("astronaut").task
    (menu,) = plugin_menus(task)
    assert [p.name for p in menu.presets] == ["mine"]
    assert menu.classes == [("face", "face-box"), ("coin", "coin-box")]


def test_the_canvas_endpoints_answer_bad_input_with_a_clear_4xx(
    workspace: Any, make_plugin: Any
) -> None:
    export = make_plugin(type=PluginType.EXPORT, name="Exporter").plugin
    task = workspace.asset("astronaut").task
    base = f"/projects/{workspace.project.pk}/tasks/{task.pk}/canvas/"
    client = client_for(workspace.annotator)

    reply = client.post(base + "run/", {"plugin": "x"})
    assert reply.status_code == 400 and reply.json()["error"] == "Choose a plugin."
    reply = client.post(base + "run/", {"plugin": export.pk})
    assert reply.status_code == 400
    assert "not a Model plugin of this project" in reply.json()["error"]
    # A Model plugin that is not connected: run_create's own check, as a 400.
    model = make_plugin(name="Offline").plugin
    reply = client.post(base + "run/", {"plugin": model.pk})
    assert reply.status_code == 400 and reply.json()["error"]
    assert not Run.objects.exists()
    assert client.get(base + "run/").status_code == 405
    for mapping, message in (
        ("[1]", "must be a JSON object"),
        ('{"face": 1}', "must be a JSON object"),
        ("{oops", "Expecting property name"),
        ('{"face": "no-such-label"}', "no-such-label"),
        ('{"wing": "face-box"}', "wing"),
    ):
        connect_instance(model, CHANNEL)
        reply = client.post(base + "run/", {"plugin": model.pk, "mapping": mapping})
        assert reply.status_code == 400, (mapping, reply.content)
        assert message in reply.json()["error"], (mapping, reply.json())
    preset = Preset.objects.create(project=workspace.project, plugin=model, name="p")
    reply = client.post(
        base + "run/", {"plugin": model.pk, "preset": preset.pk, "mapping": "{}"}
    )
    assert reply.status_code == 400 and "not both" in reply.json()["error"]
    assert not Run.objects.exists()
    assert client.get(base + "?run=abc").status_code == 400

    # Another organization's task and run stay out of reach.
    outsider = client_for(workspace.outsider)
    assert outsider.get(base).status_code == 404
    assert outsider.post(base + "run/", {"plugin": model.pk}).status_code == 404
    theirs = workspace.other_project.assets.get(external_id="astronaut").task
    mine = f"/projects/{workspace.other_project.pk}/tasks/{theirs.pk}/canvas/"
    assert client.get(mine).status_code == 404
