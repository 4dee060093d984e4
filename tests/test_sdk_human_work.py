"""Human work is kept (issue 9 §1), end to end: people submit and accept over
HTTP, real imerit-ango plugins (1.3.22 and 1.4.x) answer over the socket and
import over REST, the live hub applies the rule, and undo gives answers back."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from plugins_app.demo.seed import DEMO_ONTOLOGY
from plugins_app.plugins.models import PluginType
from plugins_app.runs.models import Run, WorkItem
from plugins_app.workspace import events
from plugins_app.workspace.models import (
    AnswerWrite,
    Membership,
    Project,
    Task,
    TaskEvent,
)
from tests.builders import bulk_assets
from tests.hub import SCRIPTS, PluginProcess, free_port
from tests.test_api import bearer, post_json
from tests.test_rest_connector import (  # noqa: F401 - pytest fixtures
    celery_worker,
    connector,
    rest_plugin,
    run_astronaut,
)
from tests.test_sdk_model_runs import start_run_from_dialog, wait_finished

ECHO = SCRIPTS / "echo_model.py"
BIG_IMPORT = SCRIPTS / "big_batch_import.py"
HAND_DRAWN = {
    "tools": [
        {
            "schemaId": "coin-box",
            "objectId": "by-hand",
            "bounding-box": {"x": 50, "y": 40, "width": 60, "height": 60},
        }
    ],
    "classifications": [],
    "relations": [],
}


def submit_and_accept(workspace: Any, task: Task) -> dict[str, Any]:
    """bob submits a hand-drawn box, dora (a reviewer) accepts: the task is
    Complete / Reviewed. Both over the JSON API, as the pages do it. Returns
    the answer as stored (the hub adds each object's title)."""
    labeler = Client()
    labeler.force_login(workspace.annotator)
    submitted = post_json(
        labeler, f"/api/tasks/{task.pk}/submit", {"answer": HAND_DRAWN}
    )
    assert submitted.status_code == 200, submitted.content
    dora = User.objects.create_user("dora", "dora@x.test", "pw")
    Membership.objects.create(
        user=dora, organization=workspace.org, role=Membership.Role.REVIEWER
    )
    reviewer = Client()
    reviewer.force_login(dora)
    accepted = post_json(
        reviewer, f"/api/tasks/{task.pk}/review", {"verdict": "accept"}
    )
    assert accepted.status_code == 200, accepted.content
    task.refresh_from_db()
    assert (task.stage, task.status) == ("Complete", Task.Status.REVIEWED)
    assert task.answer["tools"][0]["objectId"] == "by-hand"
    return task.answer


@pytest.mark.parametrize("sdk", ["1.3.22", "1.4"])
def test_a_model_run_keeps_an_accepted_task_and_says_why(
    sdk: str, workspace: Any, make_plugin: Any, plugin_runner: Any
) -> None:
    task = workspace.asset("coins").task
    by_hand = submit_and_accept(workspace, task)
    registered = make_plugin()
    plugin_runner(ECHO, registered, sdk=sdk)

    run = start_run_from_dialog(workspace, registered.plugin, "coins\nastronaut")
    run = wait_finished(run)

    # The run succeeds: the accepted task is skipped, the other one written.
    assert run.status == Run.Status.SUCCEEDED, run.error
    task.refresh_from_db()
    assert task.answer == by_hand
    assert (task.stage, task.status) == ("Complete", Task.Status.REVIEWED)
    assert task.prelabel_run_id is None
    astronaut = workspace.asset("astronaut").task
    assert astronaut.prelabel_run_id == run.pk
    item = run.items.get(asset=task.asset)
    assert item.state == WorkItem.State.SKIPPED
    reason = f"task {task.pk} was accepted by dora on "
    assert item.error.startswith(reason) and "its answer was kept" in item.error
    # The JSON API's run detail says so per asset.
    detail = bearer(workspace.annotator).get(f"/api/runs/{run.pk}").json()
    assert detail["items_skipped"] == 1
    assert detail["write_counts"] == {"skipped": 1, "written": 1}
    [skipped] = [w for w in detail["writes"] if w["outcome"] == "skipped"]
    assert skipped["external_id"] == "coins" and reason in skipped["reason"]
    # So do the run page and the task's history and page.
    viewer = Client()
    viewer.force_login(workspace.annotator)
    page = viewer.get(f"/runs/{run.pk}/").content.decode()
    assert reason in page and "1 skipped" in page
    kept = TaskEvent.objects.get(task=task, name=events.ANSWER_KEPT)
    assert kept.data["run"] == run.pk and reason in kept.data["reason"]
    task_page = viewer.get(f"/projects/{task.project_id}/tasks/{task.pk}/")
    assert f'href="/runs/{run.pk}/"' in task_page.content.decode()


def test_an_admin_replaces_a_submitted_answer_and_undoes_it_an_annotator_may_not(
    workspace: Any, make_plugin: Any, plugin_runner: Any
) -> None:
    task = workspace.asset("coins").task
    by_hand = submit_and_accept(workspace, task)
    registered = make_plugin()
    plugin_runner(ECHO, registered, sdk="1.4")
    body = {
        "plugin_id": registered.plugin.pk,
        "project_id": workspace.project.pk,
        "class_mapping": {"face": "face-box"},
        "external_ids": ["coins"],
        "replace_submitted": True,
    }

    refused = post_json(bearer(workspace.annotator), "/api/runs", body)
    assert refused.status_code == 403
    assert "Only admins" in refused.json()["errors"]["replace_submitted"][0]
    assert not Run.objects.exists()

    admin = bearer(workspace.admin)
    created = post_json(admin, "/api/runs", body)
    assert created.status_code == 201, created.content
    assert created.json()["replace_submitted"] is True
    run = wait_finished(Run.objects.get(pk=created.json()["id"]))

    assert run.status == Run.Status.SUCCEEDED, run.error
    task.refresh_from_db()
    assert task.answer != by_hand and task.prelabel_run_id == run.pk
    written = TaskEvent.objects.get(task=task, name=events.ANSWER_WRITTEN)
    assert written.data["previousAnswer"] == by_hand
    assert "Replace submitted answers" in written.data["reason"]
    viewer = Client()
    viewer.force_login(workspace.annotator)
    assert (
        "Replace submitted answers: on"
        in viewer.get(f"/runs/{run.pk}/").content.decode()
    )

    assert (
        post_json(
            bearer(workspace.annotator), f"/api/runs/{run.pk}/undo", {}
        ).status_code
        == 403
    )
    undone = post_json(admin, f"/api/runs/{run.pk}/undo", {})
    assert undone.status_code == 200, undone.content
    assert undone.json()["restored_task_ids"] == [task.pk]
    assert undone.json()["run"]["undone_by"] == "alice"
    task.refresh_from_db()
    assert task.answer == by_hand
    assert (task.stage, task.status) == ("Complete", Task.Status.REVIEWED)
    restored = TaskEvent.objects.get(task=task, name=events.ANSWER_RESTORED)
    assert restored.actor == workspace.admin and restored.data["run"] == run.pk


def test_a_model_answer_for_another_asset_is_refused(
    workspace: Any, make_plugin: Any, plugin_runner: Any
) -> None:
    registered = make_plugin()
    # 1.3.x sends the plugin's dict as it is, externalId included.
    plugin_runner(ECHO, registered, sdk="1.3.22", env={"ECHO_MODE": "other_asset"})
    run = wait_finished(start_run_from_dialog(workspace, registered.plugin, "coins"))

    assert run.status == Run.Status.FAILED
    asset = workspace.asset("coins")
    assert "'someone-elses-asset'" in run.error
    assert f"asset 'coins' (id {asset.pk})" in run.error
    assert asset.task.answer == {}
    assert not AnswerWrite.objects.filter(run=run).exists()


def test_a_rest_connector_answer_for_another_asset_is_refused(
    workspace: Any,
    connector: Any,  # noqa: F811
    celery_worker: PluginProcess,  # noqa: F811
) -> None:
    port = free_port()
    plugin, secret = rest_plugin(workspace, f"http://127.0.0.1:{port}")
    connector(plugin, secret, port, "1.3.22", ECHO_MODE="other_asset")

    run = run_astronaut(workspace, plugin)

    assert run.status == Run.Status.FAILED
    assert "'someone-elses-asset'" in run.error
    assert "asset 'astronaut'" in run.error
    assert workspace.asset("astronaut").task.answer == {}


def run_batch_from_dialog(workspace: Any, plugin: Any, project: Project) -> Run:
    client = Client()
    client.force_login(workspace.annotator)
    response = client.post(
        f"/projects/{project.pk}/plugins/{plugin.pk}/run/",
        {"config_json": "{}", "map_0": "face-box"},
        HTTP_HX_REQUEST="true",
    )
    assert "HX-Redirect" in response, response.content.decode()
    return wait_finished(Run.objects.latest("id"), timeout=60)


def test_a_batch_import_skips_a_reviewed_task_and_writes_the_others(
    workspace: Any, make_plugin: Any, plugin_runner: Any
) -> None:
    task = workspace.asset("coins").task
    by_hand = submit_and_accept(workspace, task)
    registered = make_plugin(type=PluginType.BATCH_MODEL)
    plugin_runner(BIG_IMPORT, registered, sdk="1.4")

    run = run_batch_from_dialog(workspace, registered.plugin, workspace.project)

    assert run.status == Run.Status.SUCCEEDED, run.error
    total = workspace.project.tasks.count()
    assert run.assets_labeled == total - 1
    task.refresh_from_db()
    assert task.answer == by_hand and task.status == Task.Status.REVIEWED
    line = run.log_lines.get(message__startswith="import answer:").message
    answered = json.loads(line.removeprefix("import answer:"))
    assert answered["data"]["skipped"][0]["externalId"] == "coins"
    assert f"{total - 1} / {total} tasks are labeled" in answered["data"]["project"]
    lines = "\n".join(run.log_lines.values_list("message", flat=True))
    assert "Skipped 1 record(s)" in lines and "accepted by dora" in lines
    detail = bearer(workspace.annotator).get(f"/api/runs/{run.pk}").json()
    assert detail["write_counts"] == {"skipped": 1, "written": total - 1}


def test_undo_of_a_batch_run_over_16_assets_keeps_the_one_a_person_edited(
    workspace: Any, make_plugin: Any, plugin_runner: Any
) -> None:
    project = Project.objects.create(
        organization=workspace.org, name="Sixteen", ontology=DEMO_ONTOLOGY
    )
    external_ids = bulk_assets(project, 16)
    registered = make_plugin(type=PluginType.BATCH_MODEL)
    registered.plugin.projects.add(project)
    plugin_runner(BIG_IMPORT, registered, sdk="1.4")
    run = run_batch_from_dialog(workspace, registered.plugin, project)
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert project.tasks.filter(prelabel_run=run).count() == 16
    # bob fixes one pre-label by hand and submits it.
    edited = project.tasks.get(asset__external_id=external_ids[3])
    mine = {"tools": [dict(HAND_DRAWN["tools"][0], objectId="bob's")]}
    mine["tools"][0]["bounding-box"] = {"x": 1, "y": 1, "width": 9, "height": 9}
    labeler = Client()
    labeler.force_login(workspace.annotator)
    assert (
        post_json(
            labeler, f"/api/tasks/{edited.pk}/submit", {"answer": mine}
        ).status_code
        == 200
    )

    admin = Client()
    admin.force_login(workspace.admin)
    page = admin.post(f"/runs/{run.pk}/undo/", HTTP_HX_REQUEST="true")

    assert page.status_code == 200
    html = page.content.decode()
    assert "Undone: 15 task(s) got their answer back; 1 task(s) not undone" in html
    why = f"task {edited.pk} was changed by bob on "
    assert why in html and "(submitted); not undone" in html
    others = project.tasks.exclude(pk=edited.pk)
    assert list(others.values_list("answer", flat=True)) == [{}] * 15
    assert not others.filter(prelabel_run__isnull=False).exists()
    edited.refresh_from_db()
    assert edited.answer["tools"][0]["objectId"] == "bob's"
    assert edited.stage == "Review"
    assert (
        TaskEvent.objects.filter(
            task__project=project, name=events.ANSWER_RESTORED, actor=workspace.admin
        ).count()
        == 15
    )
    # A second undo changes nothing, and still says why one was kept.
    again = post_json(bearer(workspace.admin), f"/api/runs/{run.pk}/undo", {}).json()
    assert again["restored_task_ids"] == []
    assert [n["task_id"] for n in again["not_undone"]] == [edited.pk]
    assert TaskEvent.objects.filter(name=events.ANSWER_RESTORED).count() == 15
    assert again["run"]["write_counts"] == {"kept": 1, "undone": 15}
    # Progress counts the tasks still holding the run's labels: the kept one.
    assert again["run"]["assets_labeled"] == 1
