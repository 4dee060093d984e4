"""Human work is kept (issue 9 §1), through the HTTP surfaces: the history
keeps every answer a person or a plugin replaced, workflow stages write (an
admin's choice) and can be undone, only admins replace or undo, and the Run
dialog offers the override to admins only. End to end with real plugins:
test_sdk_human_work.py; in a browser: test_browser_undo.py."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from plugins_app.plugins.models import PluginType
from plugins_app.runs.models import Run
from plugins_app.runs.undo import run_undo
from plugins_app.workspace import events
from plugins_app.workspace.lifecycle import task_submit
from plugins_app.workspace.models import AnswerWrite, Submission, Task, TaskEvent
from tests.builders import connect_instance, leased_project_run, new_run
from tests.test_api import bearer, post_json
from tests.test_workflow import (  # noqa: F401 - pytest fixtures
    FACE,
    annotate,
    eager_celery,
    in_stage,
    model,
)

BOX = {"x": 1, "y": 2, "width": 30, "height": 40}
MINE = {"tools": [{"schemaId": "coin-box", "objectId": "mine", "bounding-box": BOX}]}


def test_a_submit_keeps_the_answer_it_replaced_in_the_history(workspace: Any) -> None:
    task = workspace.asset("coins").task
    Task.objects.filter(pk=task.pk).update(answer={"tools": [], "note": "pre"})
    task_submit(task, user=workspace.annotator, answer=MINE)

    event = TaskEvent.objects.get(task=task, name=events.LABEL_SUBMITTED)
    assert event.data["previousAnswer"] == {"tools": [], "note": "pre"}
    assert event.actor == workspace.annotator


def test_a_requeue_that_removes_annotations_keeps_them_in_the_history(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.BATCH_MODEL).plugin
    run, job = leased_project_run(workspace, plugin)
    task = workspace.asset("coins").task
    task = task_submit(task, user=workspace.annotator, answer=MINE)
    kept = Task.objects.get(pk=task.pk).answer

    response = Client().post(
        f"/v2/project/{workspace.project.pk}/requeueTasks",
        json.dumps(
            {"filters": {"taskIds": [task.pk]}, "options": {"removeAnnotations": True}}
        ),
        content_type="application/json",
        HTTP_APIKEY=job["apiKey"],
    )

    assert response.status_code == 200, response.content
    task.refresh_from_db()
    assert task.answer == {} and task.stage == "Label"
    sent_back = TaskEvent.objects.get(task=task, name=events.TASK_SENT_BACK)
    assert sent_back.data["previousAnswer"] == kept
    assert sent_back.data["run"] == run.pk and sent_back.data["answerRemoved"]
    page = Client()
    page.force_login(workspace.annotator)
    html = page.get(f"/projects/{task.project_id}/tasks/{task.pk}/").content.decode()
    assert "answer removed; the one before is kept" in html
    assert f'href="/runs/{run.pk}/"' in html  # a run that touched the task


def test_a_workflow_stage_writes_past_labeling_records_it_and_can_be_undone(
    in_stage: dict[str, Any],  # noqa: F811
    workspace: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    task, key, run = in_stage["task"], in_stage["key"], in_stage["run"]
    # A person labeled it before it reached the stage (Label → Plugin stage).
    Task.objects.filter(pk=task.pk).update(answer=MINE)
    Submission.objects.create(task=task, user=workspace.annotator, answer=MINE)
    task_id = task.pk

    with django_capture_on_commit_callbacks(execute=True):
        response = annotate(key, task_id, {"answer": {"objects": [FACE]}})

    assert response.status_code == 200, response.content
    task.refresh_from_db()
    assert task.prelabel_run_id == run.pk and task.stage == "Review"
    written = AnswerWrite.objects.get(run=run, task=task)
    assert written.outcome == AnswerWrite.Outcome.WRITTEN
    assert written.previous_answer == MINE
    event = TaskEvent.objects.get(task=task, name=events.ANSWER_WRITTEN)
    assert event.data["via"] == "workflow stage"

    result = run_undo(run, by=workspace.admin)

    assert result.restored == [task_id]
    task.refresh_from_db()
    assert task.answer == MINE
    # The stage moved it to Review since: its stage and status stay.
    assert (task.stage, task.status) == ("Review", Task.Status.SUBMITTED)


def test_undo_is_for_admins_and_finished_runs(workspace: Any, make_plugin: Any) -> None:
    plugin = make_plugin().plugin
    connect_instance(plugin)
    run = new_run(workspace, plugin, "coins")
    admin, annotator = bearer(workspace.admin), bearer(workspace.annotator)

    assert post_json(annotator, f"/api/runs/{run.pk}/undo", {}).status_code == 403
    busy = post_json(admin, f"/api/runs/{run.pk}/undo", {})
    assert busy.status_code == 409
    assert "still queued" in busy.json()["errors"]["__all__"][0]
    page = Client()
    page.force_login(workspace.annotator)
    assert page.post(f"/runs/{run.pk}/undo/").status_code == 403
    # Another organization's admin does not even see it.
    outsider = bearer(workspace.outsider)
    assert post_json(outsider, f"/api/runs/{run.pk}/undo", {}).status_code == 404
    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED)
    nothing = post_json(admin, f"/api/runs/{run.pk}/undo", {})
    assert nothing.status_code == 200
    assert nothing.json()["message"].startswith("Nothing to undo")


def test_the_run_dialog_offers_replace_submitted_to_admins_only(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect_instance(plugin)
    url = f"/projects/{workspace.project.pk}/plugins/{plugin.pk}/run/"
    admin, annotator = Client(), Client()
    admin.force_login(workspace.admin)
    annotator.force_login(workspace.annotator)

    assert "Replace submitted answers" in admin.get(url).content.decode()
    assert "Replace submitted answers" not in annotator.get(url).content.decode()
    form = {
        "external_ids": "coins",
        "config_json": "{}",
        "map_0": "face-box",
        "replace_submitted": "on",
    }
    forged = annotator.post(url, form, HTTP_HX_REQUEST="true")
    assert "HX-Redirect" not in forged
    assert "Only admins of this organization" in forged.content.decode()
    assert not Run.objects.exists()
    chosen = admin.post(url, form, HTTP_HX_REQUEST="true")
    assert "HX-Redirect" in chosen, chosen.content.decode()
    assert Run.objects.get().replace_submitted is True


def test_the_asset_and_task_pages_list_a_batch_run_that_wrote_them(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.BATCH_MODEL).plugin
    run, job = leased_project_run(workspace, plugin)
    record = {"externalId": "coins", "objects": [dict(FACE)]}
    response = Client().post(
        "/v2/import/labels",
        json.dumps({"project": job["projectId"], "jsonContent": [record]}),
        content_type="application/json",
        HTTP_APIKEY=job["apiKey"],
    )
    assert response.status_code == 200, response.content
    asset = workspace.asset("coins")
    page = Client()
    page.force_login(workspace.annotator)

    asset_page = page.get(f"/projects/{workspace.project.pk}/assets/{asset.pk}/")
    task_page = page.get(f"/projects/{workspace.project.pk}/tasks/{asset.task.pk}/")

    for html in (asset_page.content.decode(), task_page.content.decode()):
        assert f'href="/runs/{run.pk}/"' in html
