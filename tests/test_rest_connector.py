"""REST connector delivery: the hub POSTs jobs to `<url>/plugin` from a real
Celery worker, probes `<url>/heartbeat`, and takes logs and results on
/v2/pluginLog and /v2/pluginResponse. The connector is the real SDK's own
FastAPI server (`CONNECTOR=REST`) on a free port, in both SDK versions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from plugins_app.plugins.models import (
    Delivery,
    FailedHeartbeat,
    Plugin,
    PluginInstance,
    PluginType,
)
from plugins_app.plugins.services import (
    connector_secret,
    plugin_create,
    plugin_rotate_secret,
)
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.dispatch.rest import connector_probe
from plugins_app.runs.models import Run, RunLogLine, WorkItem
from plugins_app.workspace.models import Task
from tests.hub import (
    SCRIPTS,
    LiveHub,
    PluginProcess,
    free_port,
    start_celery_worker,
    start_plugin,
    wait_for,
)
from tests.test_sdk_export_runs import downloaded, label_tasks, run_export

ECHO = SCRIPTS / "echo_model.py"
PASSTHROUGH = SCRIPTS / "export_passthrough.py"
SDKS = ["1.3.22", "1.4"]


def rest_plugin(workspace: Any, url: str, **kw: Any) -> tuple[Plugin, str]:
    type_ = kw.pop("type", PluginType.MODEL)
    credentials = plugin_create(
        organization=workspace.org,
        name=kw.pop("name", "REST echo"),
        type=type_,
        class_names=["face", "coin"] if type_ == PluginType.MODEL else [],
        timeout_seconds=kw.pop("timeout", 30),
        projects=[workspace.project],
        delivery=Delivery.REST,
        connector_url=url,
    )
    return credentials.plugin, credentials.secret


def member(workspace: Any) -> Client:
    client = Client()
    client.force_login(workspace.annotator)
    return client


def run_astronaut(workspace: Any, plugin: Plugin) -> Run:
    response = member(workspace).post(
        f"/projects/{workspace.project.pk}/plugins/{plugin.pk}/run/",
        {"external_ids": "astronaut", "config_json": "{}", "map_0": "face-box"},
        HTTP_HX_REQUEST="true",
    )
    assert "HX-Redirect" in response, response.content.decode()
    run = Run.objects.latest("id")
    wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, timeout=90, what="run")
    run.refresh_from_db()
    return run


@pytest.fixture
def celery_worker(live_hub: LiveHub, tmp_path: Path) -> Iterator[PluginProcess]:
    env = {"HUB_SWEEP_SECONDS": "0.5", "HUB_CONNECTOR_PROBE_SECONDS": "2"}
    worker = start_celery_worker(tmp_path, beat=True, env=env)
    yield worker
    worker.stop()


@pytest.fixture
def connector(live_hub: LiveHub, tmp_path: Path) -> Iterator[Any]:
    started: list[PluginProcess] = []

    def start(
        plugin: Plugin,
        secret: str,
        port: int,
        sdk: str,
        script: Path = ECHO,
        **env: str,
    ) -> Any:
        process = start_plugin(
            script,
            sdk=sdk,
            host=live_hub.url,
            plugin_id=plugin.public_id,
            secret=secret,
            log_dir=tmp_path,
            env={"CONNECTOR": "REST", "PORT": str(port), **env},
        )
        started.append(process)
        wait_for(
            lambda: connector_probe(plugin.pk) or not process.alive(),
            timeout=30,
            what="the connector's heartbeat",
        )
        assert process.alive(), process.log()
        return process

    yield start
    for process in started:
        process.stop()


@pytest.mark.parametrize("sdk", SDKS)
def test_a_run_reaches_a_rest_connector_and_its_answer_is_a_prelabel(
    sdk: str, workspace: Any, connector: Any, celery_worker: PluginProcess
) -> None:
    port = free_port()
    plugin, secret = rest_plugin(workspace, f"http://127.0.0.1:{port}")
    process = connector(plugin, secret, port, sdk)

    plugins_page = member(workspace).get("/plugins/").content.decode()
    run = run_astronaut(workspace, plugin)

    assert "● live" in plugins_page and f"127.0.0.1:{port}" in plugins_page
    assert run.status == Run.Status.SUCCEEDED, (run.error, process.log())
    task = Task.objects.get(asset=workspace.asset("astronaut"))
    assert task.prelabel_run == run and task.status == Task.Status.TODO
    [tool] = task.answer["tools"]
    assert tool["schemaId"] == "face-box"
    assert tool["bounding-box"] == {"x": 10, "y": 20, "width": 30, "height": 40}
    # Logged by the SDK's REST logger through POST /v2/pluginLog.
    assert RunLogLine.objects.filter(run=run, message="echo got the job").exists()
    assert (run.reported_progress, run.reported_total) == (2, 2)
    assert "HANDLED" in process.log()
    assert "deliver_connector_job" in celery_worker.log()
    # Celery beat keeps probing it: the heartbeat moves on without the test.
    instance = PluginInstance.objects.get(plugin=plugin)
    probed = instance.last_heartbeat
    wait_for(
        lambda: PluginInstance.objects.get(pk=instance.pk).last_heartbeat > probed,
        timeout=20,
        what="a heartbeat probe from Celery beat",
    )
    assert "probe_connectors" in celery_worker.log()


@pytest.mark.parametrize("sdk", SDKS)
def test_an_export_plugin_behind_a_rest_connector_delivers_its_file(
    sdk: str,
    workspace: Any,
    connector: Any,
    celery_worker: PluginProcess,
    settings: Any,
) -> None:
    # The only (solo) worker holds the job while the connector works, and the
    # connector asks for the export: the web process must build it itself.
    settings.HUB_EXPORT_BUILD_HERE_AFTER_SECONDS = 1
    settings.HUB_EXPORT_WAIT_SECONDS = 20
    expected = label_tasks(workspace)
    port = free_port()
    plugin, secret = rest_plugin(
        workspace, f"http://127.0.0.1:{port}", type=PluginType.EXPORT, timeout=90
    )
    process = connector(plugin, secret, port, sdk, script=PASSTHROUGH)

    run, client = run_export(workspace, plugin)

    assert run.status == Run.Status.SUCCEEDED, (run.error, process.log())
    notes = list(run.log_lines.values_list("message", flat=True))
    assert any("started by the web process" in n for n in notes), notes
    archive = downloaded(client, run)
    lines = archive.read("export.ndjson").decode().splitlines()
    assert {json.loads(line)["externalId"] for line in lines} == expected


def test_a_callback_error_fails_the_run_with_the_plugins_log(
    workspace: Any, connector: Any, celery_worker: PluginProcess
) -> None:
    port = free_port()
    plugin, secret = rest_plugin(workspace, f"http://127.0.0.1:{port}")
    connector(plugin, secret, port, "1.4", ECHO_MODE="error")

    run = run_astronaut(workspace, plugin)

    assert run.status == Run.Status.FAILED
    assert "model weights not found" in run.error
    assert run.items.get().attempts == 1


def test_a_dead_connector_url_fails_the_run_clearly(
    workspace: Any, celery_worker: PluginProcess
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    plugin, _ = rest_plugin(workspace, url)

    run = run_astronaut(workspace, plugin)

    assert run.status == Run.Status.FAILED
    assert "could not be reached after 3 attempt(s)" in run.error
    assert f"{url}/plugin" in run.error
    retries = RunLogLine.objects.filter(run=run, message__contains="attempt 1 of 3")
    assert retries.exists()
    page = member(workspace).get(f"/runs/{run.pk}/").content.decode()
    assert "could not be reached after 3 attempt(s)" in page
    assert not connector_probe(plugin.pk)
    assert FailedHeartbeat.objects.filter(plugin=plugin).count() == 1
    assert not connector_probe(plugin.pk)  # one record per outage, not per probe
    assert FailedHeartbeat.objects.filter(plugin=plugin).count() == 1
    assert "○ offline" in member(workspace).get("/plugins/").content.decode()


def test_a_wrong_secret_is_refused_by_the_connector_and_said_so(
    workspace: Any, connector: Any, celery_worker: PluginProcess
) -> None:
    port = free_port()
    plugin, secret = rest_plugin(workspace, f"http://127.0.0.1:{port}")
    connector(plugin, secret, port, "1.4")
    plugin_rotate_secret(plugin=plugin)

    run = run_astronaut(workspace, plugin)

    assert run.status == Run.Status.FAILED
    assert "refused the hub's Secret header (HTTP 401)" in run.error
    assert not connector_probe(plugin.pk)


# --- without a connector process ------------------------------------------------
@pytest.mark.django_db
def test_only_rest_plugins_keep_an_encrypted_copy_of_their_secret(
    workspace: Any,
) -> None:
    rest, secret = rest_plugin(workspace, "http://127.0.0.1:9")
    socket_plugin = plugin_create(
        organization=workspace.org, name="s", type=PluginType.MODEL, class_names=["a"]
    ).plugin

    assert connector_secret(rest) == secret and secret not in rest.secret_encrypted
    assert (
        socket_plugin.secret_encrypted == "" and connector_secret(socket_plugin) is None
    )
    rotated = plugin_rotate_secret(plugin=rest)
    assert connector_secret(Plugin.objects.get(pk=rest.pk)) == rotated.secret


@pytest.mark.django_db
def test_the_registration_dialog_takes_a_rest_connector(workspace: Any) -> None:
    client = Client()
    client.force_login(workspace.admin)
    form = {
        "name": "Cloud Run model",
        "type": "model",
        "delivery": "rest",
        "class_names_text": "face",
        "default_config": "{}",
        "timeout_seconds": 60,
        "concurrency": 2,
        "projects": [workspace.project.pk],
    }

    missing = client.post("/plugins/new/", form, HTTP_HX_REQUEST="true")
    created = client.post(
        "/plugins/new/",
        {**form, "connector_url": "https://model.example.run"},
        HTTP_HX_REQUEST="true",
    )

    assert "REST delivery needs the connector" in missing.content.decode()
    plugin = Plugin.objects.get(name="Cloud Run model")
    assert (plugin.delivery, plugin.connector_url) == (
        Delivery.REST,
        "https://model.example.run",
    )
    assert "CONNECTOR=REST" in created.content.decode()
    assert connector_secret(plugin) is not None


@pytest.mark.django_db
def test_plugin_log_and_response_need_a_session_of_the_keys_run(
    workspace: Any,
) -> None:
    plugin, _ = rest_plugin(workspace, "http://127.0.0.1:9")
    other, _ = rest_plugin(workspace, "http://127.0.0.1:9", name="other")
    response = member(workspace).post(
        f"/projects/{workspace.project.pk}/plugins/{plugin.pk}/run/",
        {
            "external_ids": "astronaut\ncoins",
            "config_json": "{}",
            "map_0": "face-box",
        },
        HTTP_HX_REQUEST="true",
    )
    assert "HX-Redirect" in response
    run = Run.objects.get(plugin=plugin)
    assert dispatch_pending(plugin.pk) == 2  # leased; the Celery tasks do not run
    item = run.items.get(asset__external_id="astronaut")
    assert item.state == WorkItem.State.LEASED
    from plugins_app.runs.dispatch.leases import job_with_key

    key = job_with_key(item)["apiKey"]

    def post(path: str, body: Any) -> Any:
        return Client().post(
            f"/v2/{path}", json.dumps(body), "application/json", HTTP_APIKEY=key
        )

    good_log = {"level": "INFO", "msg": "hi", "session": item.session}
    assert post("pluginLog", good_log).status_code == 200
    assert post("pluginLog", {**good_log, "session": "nope"}).status_code == 400
    assert RunLogLine.objects.filter(run=run, message="hi").count() == 1
    answer = {
        "response": {"objects": [], "classifications": [], "relations": []},
        "session": item.session,
    }
    assert post("pluginResponse", answer).json()["data"]["result"] == "done"
    assert post("pluginResponse", answer).json()["data"]["result"] == "stale"
    assert post("pluginResponse", {**answer, "session": "x"}).status_code == 400
    assert (
        Client().post("/v2/pluginLog", good_log, "application/json").status_code == 401
    )
    item.refresh_from_db()
    assert item.state == WorkItem.State.DONE
    assert RunLogLine.objects.filter(
        run=run, message__contains="Ignored a response"
    ).exists()
    assert not Run.objects.filter(plugin=other).exists()


@pytest.mark.django_db
def test_probe_now_is_for_admins_of_the_plugins_organization(workspace: Any) -> None:
    plugin, _ = rest_plugin(workspace, "http://127.0.0.1:9")

    def probe(user: Any) -> int:
        client = Client()
        client.force_login(user)
        return client.post(f"/plugins/{plugin.pk}/probe/").status_code

    assert probe(workspace.admin) == 200
    assert probe(workspace.annotator) == 403
    assert probe(workspace.outsider) == 404
