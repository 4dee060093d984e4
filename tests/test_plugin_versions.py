"""Plugin versions (issue 12 §1): declared by a real SDK script (a `version` in
its heartbeat, or `?version=` in HOST), the hosted code's content hash, or set
by an admin; recorded by the run, each item and each pre-label, and shown on
the run page, the task page, the JSON API and in export lines' `prelabel`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from plugins_app.hosted.models import HostedCode
from plugins_app.plugins.models import PluginInstance, PluginType
from plugins_app.plugins.versions import code_hash
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.models import Run, WorkItem
from plugins_app.runs.responses import item_respond
from plugins_app.workspace import events
from plugins_app.workspace.lifecycle import task_submit
from plugins_app.workspace.models import Task, TaskEvent
from tests.builders import CHANNEL, connect_instance, leased_project_run, new_run
from tests.hosted_support import QA_EXAMPLE, submit, upload_and_build
from tests.hub import SCRIPTS
from tests.test_api import bearer
from tests.test_export_api import exported_lines
from tests.test_hosted import invoices, trigger  # noqa: F401 (a fixture)
from tests.test_sdk_model_runs import SDKS, start_run_from_dialog, wait_finished

VERSIONED = SCRIPTS / "versioned_model.py"
ECHO = SCRIPTS / "echo_model.py"
BOX = {"x": 1, "y": 2, "width": 3, "height": 4}
ANSWER = {"objects": [{"schemaId": "face-box", "bounding-box": BOX}]}


def page(user: Any, path: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def written_version(task: Task, run: Run) -> Any:
    event = TaskEvent.objects.get(
        task=task, name=events.ANSWER_WRITTEN, data__run=run.pk
    )
    return event.data.get("pluginVersion")


@pytest.mark.parametrize("sdk", SDKS)
def test_a_script_declares_its_version_in_its_heartbeat(
    sdk: str, workspace: Any, make_plugin: Any, plugin_runner: Any
) -> None:
    registered = make_plugin()
    plugin = registered.plugin
    # The admin's value is only a fallback: what the script says answered wins.
    plugin.version = "admin-1"
    plugin.save(update_fields=["version"])
    plugin_runner(VERSIONED, registered, sdk=sdk, env={"MODEL_VERSION": "det-2.1"})
    assert PluginInstance.objects.live().get(plugin=plugin).version == "det-2.1"

    run = wait_finished(start_run_from_dialog(workspace, plugin, "astronaut"))
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.plugin_version == "det-2.1"
    item = run.items.get()
    assert item.plugin_version == "det-2.1" and item.instance is not None
    assert item.instance.version == "det-2.1"
    task = Task.objects.get(asset=workspace.asset("astronaut"))
    assert task.prelabel_run_id == run.pk
    assert written_version(task, run) == "det-2.1"

    # Shown on the run page, the task's history and the JSON API.
    run_page = page(workspace.admin, f"/runs/{run.pk}/")
    assert "version det-2.1" in run_page
    task_page = page(
        workspace.annotator, f"/projects/{workspace.project.pk}/tasks/{task.pk}/"
    )
    assert "version det-2.1" in task_page
    got = bearer(workspace.admin).get(f"/api/runs/{run.pk}")
    assert got.status_code == 200 and got.json()["plugin_version"] == "det-2.1"


def test_a_script_declares_its_version_in_host(
    workspace: Any, make_plugin: Any, plugin_runner: Any, live_hub: Any
) -> None:
    """The unmodified echo script; only HOST carries `?version=` (as it may
    carry `?concurrency=`)."""
    registered = make_plugin()
    plugin_runner(ECHO, registered, env={"HOST": f"{live_hub.url}?version=1.0.3"})
    run = wait_finished(start_run_from_dialog(workspace, registered.plugin, "coins"))
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.plugin_version == "1.0.3"
    assert run.items.get().plugin_version == "1.0.3"


def test_an_admin_sets_the_version_on_the_plugin_page(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    client = Client()
    client.force_login(workspace.admin)
    response = client.post(
        f"/plugins/{plugin.pk}/edit/",
        {
            "name": plugin.name,
            "type": plugin.type,
            "delivery": plugin.delivery,
            "class_names_text": "face\ncoin",
            "default_config": "{}",
            "timeout_seconds": 60,
            "concurrency": 1,
            "max_attempts": 3,
            "version": "weights-2026-11",
            "projects": [workspace.project.pk],
        },
    )
    assert response.status_code in (200, 302), response.content.decode()
    plugin.refresh_from_db()
    assert plugin.version == "weights-2026-11"
    assert "weights-2026-11" in page(workspace.admin, f"/plugins/{plugin.pk}/")

    connect_instance(plugin)  # a script that declares no version
    run = new_run(workspace, plugin, "astronaut")
    assert run.plugin_version == "weights-2026-11"
    assert dispatch_pending(plugin.pk) == 1
    item = run.items.get()
    item_respond(
        session=item.session, payload={"response": ANSWER}, channel_name=CHANNEL
    )
    item.refresh_from_db()
    assert item.state == WorkItem.State.DONE
    assert item.plugin_version == "weights-2026-11"


@pytest.mark.usefixtures("eager_celery")
def test_hosted_code_is_versioned_by_its_content_hash(
    invoices: Any,  # noqa: F811 (the fixture imported above)
    make_plugin: Any,
) -> None:
    plugin = make_plugin(type=PluginType.EVENT, timeout=30, max_attempts=1).plugin
    source = QA_EXAMPLE.read_text()
    assert upload_and_build(plugin, source).status == HostedCode.Status.ACTIVE
    plugin.refresh_from_db()
    assert plugin.code_version == code_hash(source.encode())
    task = submit(invoices, "astronaut", iban="DE89370400440532013000", currency="GBP")
    first = trigger(plugin, task)
    assert first.status == Run.Status.SUCCEEDED
    assert first.plugin_version == code_hash(source.encode())
    assert first.items.get().plugin_version == first.plugin_version

    # New code, new version; the earlier run keeps the one that ran it.
    newer = source + "\n# v2: same handler, another upload\n"
    assert upload_and_build(plugin, newer).status == HostedCode.Status.ACTIVE
    task = submit(invoices, "coins", iban="FR7630006000011234567890189", currency="EUR")
    second = trigger(plugin, task)
    assert second.plugin_version == code_hash(newer.encode())
    assert second.items.get().plugin_version == second.plugin_version
    first.refresh_from_db()
    assert first.plugin_version != second.plugin_version
    assert f"version {second.plugin_version}" in page(
        invoices.admin, f"/runs/{second.pk}/"
    )


def prelabeled(workspace: Any, make_plugin: Any, version: str) -> Run:
    """Detector, an instance declaring `version`, pre-labels astronaut and
    coins (in the labeling stage, where a pre-label waits for its labeler)."""
    model = make_plugin(name="Detector").plugin
    Task.objects.filter(project=workspace.project).update(stage="Label")
    instance = connect_instance(model)
    PluginInstance.objects.filter(pk=instance.pk).update(version=version)
    run = new_run(workspace, model, "astronaut", "coins")
    assert dispatch_pending(model.pk) == 2
    for item in run.items.all():
        item_respond(
            session=item.session, payload={"response": ANSWER}, channel_name=CHANNEL
        )
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    return run


def move_the_box(workspace: Any, external_id: str) -> None:
    """A person moves the pre-label's box and submits."""
    task = Task.objects.get(asset=workspace.asset(external_id))
    moved = dict(task.answer)
    moved["tools"] = [dict(task.answer["tools"][0])]
    moved["tools"][0]["bounding-box"] = {"x": 50, "y": 60, "width": 3, "height": 4}
    task_submit(task, user=workspace.admin, answer=moved)


def test_export_lines_say_which_run_and_version_wrote_the_prelabel(
    workspace: Any, make_plugin: Any
) -> None:
    run = prelabeled(workspace, make_plugin, "3.2.0")
    export_run, _ = leased_project_run(
        workspace, make_plugin(type=PluginType.EXPORT).plugin, stages=[]
    )
    every = ["Start", "Label", "Review", "Complete"]

    def blocks() -> dict[str, Any]:
        lines = exported_lines(export_run, every)
        return {line["externalId"]: line["prelabel"] for line in lines}

    before = blocks()
    written = {"plugin": "Detector", "version": "3.2.0", "run": run.pk}
    assert before["astronaut"] == written | {"changedByPerson": False}
    assert before["coins"] == written | {"changedByPerson": False}
    assert before["camera"] is None  # no plugin wrote it

    # A person submits the pre-label as it is, and another moves a box.
    astronaut = Task.objects.get(asset=workspace.asset("astronaut"))
    task_submit(astronaut, user=workspace.annotator, answer=None)
    move_the_box(workspace, "coins")

    after = blocks()
    assert after["astronaut"] == written | {"changedByPerson": False}
    assert after["coins"] == written | {"changedByPerson": True}


def test_the_json_api_sets_and_shows_the_admin_s_version(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    instance = connect_instance(plugin)
    PluginInstance.objects.filter(pk=instance.pk).update(version="0.9")
    client = bearer(workspace.admin)
    url = f"/api/plugins/{plugin.pk}"
    patched = client.patch(url, '{"version": "v2"}', content_type="application/json")
    assert patched.status_code == 200, patched.content
    body = client.get(url).json()
    assert body["version"] == "v2" and body["code_version"] == ""
    assert [i["version"] for i in body["instances"]] == ["0.9"]
    too_long = client.patch(
        url, '{"version": "%s"}' % ("9" * 101), content_type="application/json"
    )
    assert too_long.status_code == 400 and "version" in too_long.json()["errors"]


def test_a_batch_import_records_the_version_of_the_instance_sending_it(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.BATCH_MODEL).plugin
    run, job = leased_project_run(workspace, plugin)
    assert run.plugin_version == ""  # nothing declared when it was created
    # The instance holding the job says it is 4.0 (e.g. it reconnected upgraded).
    held = run.items.get()
    PluginInstance.objects.filter(pk=held.instance_id).update(version="4.0")
    record = {
        "externalId": "coins",
        "objects": [{"schemaId": "coin-box", "bounding-box": BOX}],
    }
    response = Client().post(
        "/v2/import/labels",
        data=json.dumps({"project": job["projectId"], "jsonContent": [record]}),
        content_type="application/json",
        HTTP_APIKEY=job["apiKey"],
    )
    assert response.status_code == 200, response.content
    task = Task.objects.get(asset=workspace.asset("coins"))
    assert task.prelabel_run_id == run.pk
    assert written_version(task, run) == "4.0"


def test_the_run_page_names_each_version_that_answered_when_they_differ(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    instance = connect_instance(plugin)
    PluginInstance.objects.filter(pk=instance.pk).update(version="1.0")
    run = new_run(workspace, plugin, "astronaut", "coins")
    assert run.plugin_version == "1.0"
    assert dispatch_pending(plugin.pk) == 2
    first, second = run.items.order_by("id")
    item_respond(
        session=first.session, payload={"response": ANSWER}, channel_name=CHANNEL
    )
    assert "run-item-versions" not in page(workspace.admin, f"/runs/{run.pk}/")
    # The same socket declares an upgrade in its next heartbeat.
    PluginInstance.objects.filter(pk=instance.pk).update(version="1.1")
    item_respond(
        session=second.session, payload={"response": ANSWER}, channel_name=CHANNEL
    )
    assert "jobs answered by version 1.0 (1), version 1.1 (1)" in page(
        workspace.admin, f"/runs/{run.pk}/"
    )


def test_the_canvas_credits_each_object_to_the_version_that_wrote_it(
    workspace: Any, make_plugin: Any
) -> None:
    run = prelabeled(workspace, make_plugin, "3.2.0")
    move_the_box(workspace, "coins")
    client = Client()
    client.force_login(workspace.annotator)

    def sources(external_id: str) -> list[dict[str, Any]]:
        task = Task.objects.get(asset=workspace.asset(external_id))
        url = f"/projects/{workspace.project.pk}/tasks/{task.pk}/canvas/"
        response = client.get(url)
        assert response.status_code == 200, response.status_code
        return [o["source"] for o in response.json()["objects"]]

    by_plugin = {"kind": "plugin", "run": run.pk}
    assert sources("astronaut") == [
        by_plugin | {"label": f"Detector version 3.2.0 (run #{run.pk})"}
    ]
    assert sources("coins") == [{"kind": "person", "label": "alice", "run": None}]
