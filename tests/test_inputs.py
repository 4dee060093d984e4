"""No input gets a 500 (issue 9, inputs): ids out of the database's range or
written in non-ASCII digits, nulls, JSON nested too deeply, numbers without
bounds, presets a workflow stage runs, log extras the database or the page
cannot take, oversized socket frames, and answers with too many objects. Each
through the real surface: HTTP to the app, or a real socket to the live hub."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from plugins_app.plugins import stages
from plugins_app.plugins.models import Plugin, PluginInstance, PluginType, Preset
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.dispatch.leases import job_with_key
from plugins_app.runs.models import Run, RunLogLine
from plugins_app.workspace import lifecycle
from plugins_app.workspace.models import Storage, Task
from tests.builders import connect_instance, leased_project_run
from tests.hub import LiveHub, wait_for
from tests.test_api import bearer, post_json
from tests.test_plugin_socket import (
    BOX,
    RawClient,
    authenticated,
    model_run,
    task_answer,
)
from tests.test_presets import client_for, dialog_url, save_preset
from tests.test_rest_connector import rest_plugin
from tests.test_sdk_model_runs import wait_finished

HUGE = 10**20  # past SQLite's and PostgreSQL's 64-bit integers


DEEP = "[" * 5000 + "]" * 5000  # past Python's recursion limit when parsed


def deep_json(levels: int) -> str:
    return '{"a": ' + "[" * levels + "]" * levels + "}"


# --- 1. huge integers, "²", nulls and deep JSON in the JSON API -------------------
def test_it_refuses_out_of_range_ids_and_pages_with_422(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    client = bearer(workspace.admin)

    pages = client.get("/api/runs", {"page": HUGE})
    tasks = client.get(f"/api/projects/{workspace.project.pk}/tasks", {"page": HUGE})
    filtered = client.get("/api/runs", {"project": HUGE, "plugin": HUGE})
    created = post_json(client, "/api/plugins", {"name": "x", "project_ids": [HUGE]})
    patched = client.patch(
        f"/api/plugins/{plugin.pk}",
        json.dumps({"project_ids": [HUGE]}),
        content_type="application/json",
    )
    run = post_json(
        client,
        "/api/runs",
        {
            "plugin_id": plugin.pk,
            "project_id": workspace.project.pk,
            "batch_ids": [HUGE],
        },
    )

    for response in (pages, tasks, filtered, created, patched, run):
        assert response.status_code == 422, response.content
        assert "less than or equal" in response.content.decode()
    assert client.get("/api/runs", {"page": 2**31 - 1}).json() == []


def test_the_forms_refuse_out_of_range_batch_and_project_ids(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    batch_plugin = make_plugin(type=PluginType.BATCH_MODEL).plugin
    connect_instance(batch_plugin)

    dialog = client_for(workspace.annotator).post(
        dialog_url(workspace, batch_plugin),
        {"map_0": "face-box", "config_json": "{}", "batches": [str(HUGE)]},
        HTTP_HX_REQUEST="true",
    )
    edit = client_for(workspace.admin).post(
        f"/plugins/{plugin.pk}/edit/",
        {
            "name": plugin.name,
            "type": plugin.type,
            "class_names_text": "face",
            "default_config": "{}",
            "timeout_seconds": 60,
            "concurrency": 1,
            "max_attempts": 3,
            "projects": [str(HUGE)],
        },
        HTTP_HX_REQUEST="true",
    )

    for response in (dialog, edit):
        assert response.status_code in (200, 400)
        assert "is not one of the available choices" in response.content.decode()
    assert not Run.objects.exists()
    assert list(plugin.projects.all()) == [workspace.project]


def test_it_refuses_null_for_a_plugins_fields_with_400(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    client = bearer(workspace.admin)

    response = client.patch(
        f"/api/plugins/{plugin.pk}",
        json.dumps({"description": None, "class_names": None, "default_config": None}),
        content_type="application/json",
    )

    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert set(errors) == {"description", "class_names", "default_config"}
    assert "May not be null" in errors["description"][0]
    plugin.refresh_from_db()
    assert plugin.class_names == ["face", "coin"]


def test_it_refuses_config_json_nested_too_deeply_everywhere(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect_instance(plugin)
    api = bearer(workspace.admin)
    for config in (DEEP, deep_json(100)):
        run = post_json(
            api,
            "/api/runs",
            {
                "plugin_id": plugin.pk,
                "project_id": workspace.project.pk,
                "external_ids": ["astronaut"],
                "config_json": config,
            },
        )
        default = api.patch(
            f"/api/plugins/{plugin.pk}",
            json.dumps({"default_config": config}),
            content_type="application/json",
        )
        registered = post_json(
            api,
            "/api/plugins",
            {"name": "y", "class_names": ["a"], "default_config": config},
        )
        dialog = client_for(workspace.annotator).post(
            dialog_url(workspace, plugin),
            {"map_0": "face-box", "config_json": config, "external_ids": "astronaut"},
            HTTP_HX_REQUEST="true",
        )
        preset = save_preset(
            client_for(workspace.annotator),
            dialog_url(workspace, plugin),
            "deep",
            config_json=config,
        )

        assert run.status_code == 400, run.content
        assert "nested more than 64 levels" in str(run.json()["errors"])
        for response in (default, registered):
            assert response.status_code == 400, response.content
            assert "nested more than 64 levels" in str(response.json()["errors"])
        for response in (dialog, preset):
            assert response.status_code == 200
            assert "nested more than 64 levels" in response.content.decode()
    assert not Run.objects.exists() and not Preset.objects.exists()
    assert Plugin.objects.count() == 1


def test_it_refuses_a_request_body_nested_too_deeply(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    task = Task.objects.get(asset=workspace.asset("astronaut"))
    api = bearer(workspace.admin)
    nested = json.loads(deep_json(100))

    submit = post_json(api, f"/api/tasks/{task.pk}/submit", {"answer": nested})
    run = post_json(
        api,
        "/api/runs",
        {"plugin_id": plugin.pk, "project_id": workspace.project.pk, "inputs": nested},
    )
    body = api.post("/api/runs", DEEP, content_type="application/json")

    for response in (submit, run):
        assert response.status_code == 422, response.content
        assert "nested more than 64 levels" in response.content.decode()
    assert body.status_code == 400


# --- 1. "²" and huge ids in the Ango-compatible API ---------------------------------
@pytest.fixture
def ango(workspace: Any, make_plugin: Any) -> dict[str, Any]:
    """An Export run's job in flight: its apikey reaches the project."""
    run, job = leased_project_run(
        workspace, make_plugin(type=PluginType.EXPORT).plugin, stages=["Complete"]
    )
    return {"run": run, "job": job, "client": Client(HTTP_APIKEY=job["apiKey"])}


@pytest.mark.parametrize("bad", ["²", "٣", str(HUGE)])
def test_it_treats_unicode_digits_and_huge_ids_as_unknown_in_the_v2_api(
    workspace: Any, ango: dict[str, Any], bad: str
) -> None:
    client, project = ango["client"], workspace.project.pk
    Storage.objects.create(
        organization=workspace.org, name="S", provider="s3", bucket="b"
    )

    assets = client.get(
        f"/v2/project/{project}/assets",
        {"filters": json.dumps({"_id": [bad], "batches": [bad]})},
    )
    paged = client.get(f"/v2/project/{project}/assets", {"page": str(HUGE)})
    task = client.get(f"/v2/task/{bad}")
    storages = client.get("/v2/storages", {"_id": bad})
    requeue = client.post(
        f"/v2/project/{project}/requeueTasks",
        json.dumps({"filters": {"taskIds": [bad], "assetIds": [bad]}}),
        content_type="application/json",
    )
    issue = client.post(
        "/v2/issues",
        json.dumps({"content": "x", "labelTask": bad}),
        content_type="application/json",
    )
    export = client.get(
        "/v2/export", {"project": project, "batches": json.dumps([bad])}
    )

    assert assets.status_code == 200 and assets.json()["data"]["assets"] == []
    assert paged.status_code == 200 and paged.json()["data"]["assets"] == []
    assert task.status_code == 404
    assert storages.status_code == 200 and storages.json()["data"]["storages"] == []
    assert requeue.status_code == 200 and requeue.json()["data"]["requeued"] == 0
    assert issue.status_code == 404
    assert export.status_code == 400
    assert "Not batches of this project" in export.json()["message"]


def test_it_refuses_a_consensus_setting_in_unicode_digits(workspace: Any) -> None:
    with pytest.raises(lifecycle.TaskActionError, match="whole number"):
        lifecycle.project_set_labels_per_asset(workspace.project, "²")


# --- 2. bounds on a plugin's numbers --------------------------------------------
def test_it_refuses_a_timeout_or_count_without_bounds_with_422(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    client = bearer(workspace.admin)

    def patch(body: dict[str, Any]) -> Any:
        return client.patch(
            f"/api/plugins/{plugin.pk}",
            json.dumps(body),
            content_type="application/json",
        )

    for body in (
        {"timeout_seconds": 9223372036854775807},
        {"timeout_seconds": 0},
        {"concurrency": 10**6},
        {"max_attempts": 10**4},
    ):
        response = patch(body)
        assert response.status_code == 422, (body, response.content)
    created = post_json(
        client,
        "/api/plugins",
        {"name": "z", "class_names": ["a"], "timeout_seconds": 10**9},
    )
    assert created.status_code == 422
    assert patch({"timeout_seconds": 86_400}).status_code == 200
    plugin.refresh_from_db()
    assert plugin.timeout_seconds == 86_400


def test_the_plugin_form_refuses_a_timeout_over_a_day(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    response = client_for(workspace.admin).post(
        f"/plugins/{plugin.pk}/edit/",
        {
            "name": plugin.name,
            "type": plugin.type,
            "class_names_text": "face",
            "default_config": "{}",
            "timeout_seconds": 10**12,
            "concurrency": 1,
            "max_attempts": 3,
        },
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code in (200, 400)
    assert "less than or equal to 86400" in response.content.decode()
    plugin.refresh_from_db()
    assert plugin.timeout_seconds == 60


# --- 3. presets a workflow stage runs --------------------------------------------
def test_only_admins_replace_or_delete_a_preset_a_workflow_stage_runs(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(name="Detector").plugin
    preset = Preset.objects.create(
        project=workspace.project,
        plugin=plugin,
        name="stage preset",
        class_mapping={"face": "face-box"},
        config_json='{"threshold": 0.9}',
        created_by=workspace.admin,
    )
    stages.workflow_plugin_stage_add(
        workspace.project,
        name="Detect",
        plugin_id=plugin.pk,
        preset_id=preset.pk,
        overwrite=False,
    )
    annotator = client_for(workspace.annotator)
    delete_url = f"/projects/{workspace.project.pk}/presets/{preset.pk}/delete/"

    replaced = save_preset(
        annotator, dialog_url(workspace, plugin), "stage preset", config_json="{}"
    )
    deleted = annotator.post(delete_url, HTTP_HX_REQUEST="true")

    assert "only an admin can change or delete it" in replaced.content.decode()
    assert deleted.status_code == 403
    assert "used by the workflow stage “Detect”" in deleted.content.decode()
    preset.refresh_from_db()
    assert preset.config_json == '{"threshold": 0.9}'
    # The annotator's own presets, and the admin's changes, still go through.
    own = save_preset(annotator, dialog_url(workspace, plugin), "mine")
    assert "Saved preset “mine”." in own.content.decode()
    admin = client_for(workspace.admin).post(delete_url, HTTP_HX_REQUEST="true")
    assert admin.status_code == 200 and not Preset.objects.filter(pk=preset.pk).exists()


# --- 4. log extras the database or the page cannot take ---------------------------
def test_a_log_extra_nested_960_deep_is_cut_and_the_run_page_still_renders(
    live_hub: LiveHub,
    workspace: Any,
    make_plugin: Any,
    clients: list[RawClient],
) -> None:
    registered = make_plugin()
    client = authenticated(live_hub, registered)
    clients.append(client)
    run = model_run(workspace, registered.plugin)
    session = client.job()["session"]
    deep = "[" * 960 + "]" * 960  # json.dumps itself would recurse too far

    client.send(
        f'42/plugin,["log",{{"session": "{session}", "level": "INFO", '
        f'"msg": "deep", "d": {deep}}}]'
    )
    wait_for(
        lambda: RunLogLine.objects.filter(run=run, message="deep").exists(),
        timeout=10,
        what="the deep log line",
    )

    page = client_for(workspace.annotator).get(f"/runs/{run.pk}/")
    assert page.status_code == 200
    assert "…(cut)" in page.content.decode()
    extra = RunLogLine.objects.get(run=run, message="deep").extra
    assert "hub_truncated" in extra
    assert "…(cut)" in json.dumps(extra, ensure_ascii=False)


def test_it_keeps_every_log_line_of_a_batch_with_nan_and_infinity(
    live_hub: LiveHub,
    workspace: Any,
    make_plugin: Any,
    clients: list[RawClient],
) -> None:
    registered = make_plugin()
    client = authenticated(live_hub, registered)
    clients.append(client)
    run = model_run(workspace, registered.plugin)
    session = client.job()["session"]

    # One batch (sent together, stored within 50 ms): NaN, -Infinity, plain.
    for frame in (
        {"session": session, "level": "INFO", "msg": "nan", "score": float("nan")},
        {"session": session, "level": "INFO", "msg": "inf", "extra": {"x": -1e999}},
        {"session": session, "level": "INFO", "msg": "plain", "n": 1},
    ):
        client.emit("log", frame)
    sent = RunLogLine.objects.filter(run=run, message__in=["nan", "inf", "plain"])
    wait_for(lambda: sent.count() == 3, timeout=10, what="the three log lines")

    lines = {line.message: line.extra for line in sent}
    assert lines == {
        "nan": {"score": "NaN"},
        "inf": {"x": "-Infinity"},
        "plain": {"n": 1},
    }


def test_the_rest_connectors_log_endpoint_stores_nan_as_a_string(
    workspace: Any,
) -> None:
    plugin, _ = rest_plugin(workspace, "http://127.0.0.1:9")
    response = client_for(workspace.annotator).post(
        f"/projects/{workspace.project.pk}/plugins/{plugin.pk}/run/",
        {"external_ids": "astronaut", "config_json": "{}", "map_0": "face-box"},
        HTTP_HX_REQUEST="true",
    )
    assert "HX-Redirect" in response, response.content.decode()
    run = Run.objects.get(plugin=plugin)
    assert dispatch_pending(plugin.pk) == 1  # leased; the Celery task does not run
    item = run.items.get()
    log = {"level": "INFO", "msg": "scored", "session": item.session}

    response = Client().post(
        "/v2/pluginLog",
        json.dumps({**log, "extra": {"score": float("nan")}}),
        "application/json",
        HTTP_APIKEY=job_with_key(item)["apiKey"],
    )

    assert response.status_code == 200, response.content
    line = RunLogLine.objects.get(run=run, message="scored")
    assert line.extra == {"score": "NaN"}


# --- 5. an oversized frame names its session first ---------------------------------
# test_plugin_socket.py::test_it_fails_the_run_of_an_oversized_response_naming_the_limit
# [session_first]


def test_it_accepts_a_socket_declaring_its_concurrency_in_unicode_digits(
    live_hub: LiveHub,
    workspace: Any,
    make_plugin: Any,
    clients: list[RawClient],
) -> None:
    registered = make_plugin()
    # "²" passed str.isdigit() and then broke int() in the connect handler.
    client = RawClient(live_hub, query="EIO=4&transport=websocket&concurrency=%C2%B2")
    clients.append(client)
    client.connect_namespace()
    client.heartbeat(registered.plugin.public_id, registered.secret)

    wait_for(
        lambda: (
            PluginInstance.objects.live()
            .filter(plugin=registered.plugin, capacity__isnull=True)
            .exists()
        ),
        timeout=5,
        what="the instance, live, with no declared capacity",
    )


# --- 6. objects per answer ------------------------------------------------------------
def test_it_refuses_an_answer_over_the_object_limit_from_a_plugin_and_a_person(
    live_hub: LiveHub,
    workspace: Any,
    make_plugin: Any,
    settings: Any,
    clients: list[RawClient],
) -> None:
    settings.HUB_MAX_OBJECTS_PER_ANSWER = 50
    registered = make_plugin()
    client = authenticated(live_hub, registered)
    clients.append(client)
    run = model_run(workspace, registered.plugin)
    session = client.job()["session"]
    boxes = [{"schemaId": "face-box", "bounding-box": BOX}] * 51

    client.respond(session, boxes)

    run = wait_finished(run, timeout=10)
    assert run.status == Run.Status.FAILED
    assert "HUB_MAX_OBJECTS_PER_ANSWER" in run.error and "51" in run.error
    assert task_answer(workspace) == {}
    task = Task.objects.get(asset=workspace.asset("coins"))
    submitted = post_json(
        bearer(workspace.annotator),
        f"/api/tasks/{task.pk}/submit",
        {"answer": {"tools": boxes}},
    )
    assert submitted.status_code == 409
    assert "HUB_MAX_OBJECTS_PER_ANSWER" in submitted.content.decode()


def test_the_task_page_draws_at_most_500_objects_of_a_large_answer(
    workspace: Any,
) -> None:
    task = Task.objects.get(asset=workspace.asset("astronaut"))
    task.answer = {
        "tools": [{"schemaId": "face-box", "bounding-box": BOX}] * 600,
        "classifications": [],
        "relations": [],
    }
    task.save(update_fields=["answer"])

    page = client_for(workspace.annotator).get(
        f"/projects/{workspace.project.pk}/tasks/{task.pk}/"
    )

    html = page.content.decode()
    assert page.status_code == 200
    assert "showing 500 of 600 objects" in html
    # The review canvas draws 500; all 600 are listed and submitted back.
    canvas = page.context["canvas"]
    assert canvas["drawnCount"] == 500 and len(canvas["objects"]) == 600
