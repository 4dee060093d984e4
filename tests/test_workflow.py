"""Workflow Plugin stages without sockets: editing the workflow, a task entering
the stage becoming one workflow run (on commit → Celery), the job's fields,
per-instance workflow capacity, POST /v2/annotate applying an answer once and
moving the task on, failures keeping the task in the stage, and retries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from plugins_app.celery import app as celery_app
from plugins_app.plugins import stages
from plugins_app.plugins.models import Plugin, PluginType, Preset
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.logs import PluginLogRecord, logs_ingest
from plugins_app.runs.models import Run, WorkItem
from plugins_app.runs.responses import item_respond
from plugins_app.runs.workflow import workflow_stage_retry
from plugins_app.wire.models import OutboxMessage
from plugins_app.workspace import events, lifecycle
from plugins_app.workspace.models import Project, Task, TaskEvent
from tests.builders import CHANNEL, connect_instance, new_run

BOX = {"x": 1, "y": 2, "width": 3, "height": 4}
FACE = {"schemaId": "face-box", "bounding-box": BOX}
STAGE = "Auto-label"


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Celery tasks run in the on-commit listener's thread instead of a broker:
    the same code as the worker runs (the end-to-end test uses a real one)."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


@pytest.fixture
def model(make_plugin: Any) -> Plugin:
    return make_plugin(name="Auto labeler").plugin


def add_stage(project: Project, plugin: Plugin, **kwargs: Any) -> Project:
    return stages.workflow_plugin_stage_add(
        project,
        name=kwargs.pop("name", STAGE),
        plugin_id=plugin.pk,
        preset_id=kwargs.pop("preset_id", None),
        overwrite=kwargs.pop("overwrite", True),
    )


def enter_stage(
    capture: Any, workspace: Any, *external_ids: str, stage: str = STAGE
) -> list[Task]:
    tasks = []
    with capture(execute=True):
        for external_id in external_ids:
            task = workspace.asset(external_id).task
            tasks.append(lifecycle.task_move(task, to_stage=stage))
    return tasks


def jobs_sent(channel: str = CHANNEL) -> list[dict[str, Any]]:
    rows = OutboxMessage.objects.filter(method="send", target=channel)
    return [r.message["job"] for r in rows.order_by("id")]


def annotate(key: str, task_id: int, body: Any, query: str = "") -> Any:
    url = f"/v2/annotate/{task_id}{query or '?nextStage=true&isPlugin=true'}"
    return Client().post(
        url, json.dumps(body), content_type="application/json", HTTP_APIKEY=key
    )


def stage_entries(task: Task, stage: str) -> int:
    return TaskEvent.objects.filter(
        task=task, name=events.TASK_STAGE_ENTERED, data__to=stage
    ).count()


# --- editing the workflow ------------------------------------------------------------
def test_an_admin_adds_a_plugin_stage_before_review_from_the_project_page(
    workspace: Any, model: Plugin
) -> None:
    preset = Preset.objects.create(
        project=workspace.project,
        plugin=model,
        name="faces",
        class_mapping={"face": "face-box"},
    )
    client = Client()
    client.force_login(workspace.admin)
    url = f"/projects/{workspace.project.pk}/workflow/stages/"

    response = client.post(
        url,
        {"name": STAGE, "plugin": model.pk, "preset": preset.pk, "overwrite": "on"},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    assert "Plugin stage added." in response.content.decode()
    workspace.project.refresh_from_db()
    assert [s["name"] for s in workspace.project.workflow] == [
        "Start",
        "Label",
        STAGE,
        "Review",
        "Complete",
    ]
    stage = workspace.project.workflow[2]
    assert stage == {
        "name": STAGE,
        "type": "plugin",
        "plugin": model.pk,
        "preset": preset.pk,
        "overwrite": True,
    }


def test_a_stage_without_preset_gets_the_suggested_mapping_and_default_config(
    workspace: Any, model: Plugin
) -> None:
    add_stage(workspace.project, model)

    stage = workspace.project.workflow[2]
    assert stage["class_mapping"] == {"face": "face-box", "coin": "coin-box"}
    assert stage["config_json"] == model.default_config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "Label"}, "already has a stage named “Label”"),
        ({"name": ""}, "Give the stage a name."),
        ({"plugin": "batch"}, "Choose a Model plugin active on this project."),
        ({"preset": "other"}, "is not one of Auto labeler's presets"),
    ],
    ids=["duplicate", "no-name", "not-a-model", "foreign-preset"],
)
def test_it_refuses_a_bad_stage_and_keeps_the_workflow(
    workspace: Any, model: Plugin, make_plugin: Any, data: dict[str, Any], message: str
) -> None:
    batch = make_plugin(type=PluginType.BATCH_MODEL).plugin
    other = Preset.objects.create(project=workspace.project, plugin=batch, name="x")
    post = {"name": STAGE, "plugin": model.pk, **data}
    post["plugin"] = batch.pk if post["plugin"] == "batch" else post["plugin"]
    if post.get("preset") == "other":
        post["preset"] = other.pk
    before = list(workspace.project.workflow)
    client = Client()
    client.force_login(workspace.admin)

    response = client.post(
        f"/projects/{workspace.project.pk}/workflow/stages/",
        post,
        HTTP_HX_REQUEST="true",
    )

    assert message in response.content.decode().replace("&#x27;", "'")
    workspace.project.refresh_from_db()
    assert workspace.project.workflow == before


def test_only_admins_edit_the_workflow(workspace: Any, model: Plugin) -> None:
    client = Client()
    client.force_login(workspace.annotator)
    url = f"/projects/{workspace.project.pk}/workflow/stages/"

    response = client.post(url, {"name": STAGE, "plugin": model.pk})

    assert response.status_code == 403
    workspace.project.refresh_from_db()
    assert len(workspace.project.workflow) == 4


def test_an_admin_sets_labels_per_asset_and_bad_values_are_refused(
    workspace: Any,
) -> None:
    url = f"/projects/{workspace.project.pk}/workflow/labels-per-asset/"
    admin = Client()
    admin.force_login(workspace.admin)
    section = admin.get(f"/projects/{workspace.project.pk}/workflow/").content.decode()
    assert 'id="labels-per-asset"' in section

    saved = admin.post(url, {"labels_per_asset": "3"}, HTTP_HX_REQUEST="true")
    assert "Each asset now needs 3 label(s)." in saved.content.decode()
    for bad in ("0", "11", "two", "<b>1</b>"):
        refused = admin.post(url, {"labels_per_asset": bad}, HTTP_HX_REQUEST="true")
        page = refused.content.decode()
        assert "must be a whole number from 1 to 10" in page, bad
        assert "<b>1</b>" not in page
    workspace.project.refresh_from_db()
    assert workspace.project.labels_per_asset == 3

    annotator = Client()
    annotator.force_login(workspace.annotator)
    assert annotator.post(url, {"labels_per_asset": "1"}).status_code == 403
    section = annotator.get(f"/projects/{workspace.project.pk}/workflow/")
    assert 'id="labels-per-asset"' not in section.content.decode()
    workspace.project.refresh_from_db()
    assert workspace.project.labels_per_asset == 3


def test_a_stage_with_tasks_in_it_cannot_be_removed(
    workspace: Any, model: Plugin
) -> None:
    add_stage(workspace.project, model)
    Task.objects.filter(pk=workspace.asset("coins").task.pk).update(stage=STAGE)
    client = Client()
    client.force_login(workspace.admin)
    url = f"/projects/{workspace.project.pk}/workflow/remove/"

    refused = client.post(url, {"stage": STAGE}, HTTP_HX_REQUEST="true")
    assert "1 task(s) are in “Auto-label”" in refused.content.decode()
    Task.objects.filter(stage=STAGE).update(stage="Review")
    removed = client.post(url, {"stage": STAGE}, HTTP_HX_REQUEST="true")

    assert "Stage removed." in removed.content.decode()
    workspace.project.refresh_from_db()
    assert [s["name"] for s in workspace.project.workflow] == [
        "Start",
        "Label",
        "Review",
        "Complete",
    ]


# --- a task entering the stage -------------------------------------------------------
def test_a_task_entering_the_stage_gets_one_workflow_run_and_job(
    workspace: Any,
    model: Plugin,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    add_stage(workspace.project, model, overwrite=False)
    connect_instance(model)

    (task,) = enter_stage(django_capture_on_commit_callbacks, workspace, "astronaut")

    run = Run.objects.get(task=task)
    assert run.trigger == "workflow" and run.plugin == model
    assert run.status == Run.Status.RUNNING
    assert run.class_mapping == [
        {"schemaId": "face-box", "modelClass": "face"},
        {"schemaId": "coin-box", "modelClass": "coin"},
    ]
    (job,) = jobs_sent()
    assert job["workflow"] is True
    assert job["taskId"] == str(task.pk)
    assert job["overwrite"] is False
    assert job["assetId"] == str(task.asset_id)
    assert job["externalId"] == "astronaut"
    assert job["projectId"] == str(workspace.project.pk)


def test_a_duplicate_stage_event_does_not_handle_the_task_twice(
    workspace: Any,
    model: Plugin,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    add_stage(workspace.project, model)
    connect_instance(model)
    (task,) = enter_stage(django_capture_on_commit_callbacks, workspace, "astronaut")

    # The same event heard again (a redelivered Celery message, say).
    with django_capture_on_commit_callbacks(execute=True):
        events.emit(task, events.TASK_STAGE_ENTERED, data={"to": STAGE})

    assert Run.objects.filter(task=task).count() == 1
    assert len(jobs_sent()) == 1


def test_it_never_sends_an_instance_more_workflow_jobs_than_it_declared(
    workspace: Any,
    model: Plugin,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """The SDK runs workflow jobs on `concurrency` slots (1 by default) and
    answers {"error": true} when they are full; the instance declares more with
    ?concurrency=N in HOST. Ordinary Model jobs do not take those slots."""
    add_stage(workspace.project, model)
    one_slot = connect_instance(model, "test!one")
    tasks = enter_stage(
        django_capture_on_commit_callbacks, workspace, "astronaut", "coins", "camera"
    )

    leased = WorkItem.objects.filter(state=WorkItem.State.LEASED)
    assert leased.count() == 1 and leased.get().instance == one_slot
    # An interactive run still goes to the same instance (plugin concurrency 8).
    interactive = new_run(workspace, model, "chelsea")
    assert dispatch_pending(model.pk) == 1
    assert interactive.items.get().state == WorkItem.State.LEASED
    # A second instance that declared two slots takes the other two.
    two_slots = connect_instance(model, "test!two")
    two_slots.capacity = 2
    two_slots.save()
    assert dispatch_pending(model.pk) == 2
    assert leased.filter(run__trigger="workflow", instance=two_slots).count() == 2
    assert {i.run.task for i in leased.filter(run__trigger="workflow")} == set(tasks)
    assert dispatch_pending(model.pk) == 0


def test_jobs_of_other_runs_do_not_wait_behind_full_workflow_slots(
    workspace: Any,
    model: Plugin,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    add_stage(workspace.project, model)
    connect_instance(model)
    enter_stage(django_capture_on_commit_callbacks, workspace, "astronaut", "coins")
    # A two-asset run queued after them, at the same (batch) priority.
    batch = new_run(workspace, model, "camera", "chelsea")

    assert dispatch_pending(model.pk) == 2

    states = dict(WorkItem.objects.values_list("asset__external_id", "state"))
    assert states == {
        "astronaut": WorkItem.State.LEASED,
        "coins": WorkItem.State.PENDING,
        "camera": WorkItem.State.LEASED,
        "chelsea": WorkItem.State.LEASED,
    }
    assert batch.items.filter(state=WorkItem.State.LEASED).count() == 2


# --- the answer: POST /v2/annotate ----------------------------------------------------
@pytest.fixture
def in_stage(
    workspace: Any,
    model: Plugin,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> dict[str, Any]:
    add_stage(workspace.project, model)
    connect_instance(model)
    (task,) = enter_stage(django_capture_on_commit_callbacks, workspace, "astronaut")
    (job,) = jobs_sent()
    return {"task": task, "key": job["apiKey"], "job": job, "run": task.runs.get()}


@pytest.mark.parametrize(
    "body",
    [
        # 1.4.x: AnnotationPayload.toDict()
        {
            "answer": {"objects": [FACE], "classifications": [], "relations": []},
            "brushDataUrl": None,
            "medicalBrushDataUrl": None,
            "duration": 0,
        },
        # 1.3.22: the callback's plain dict as the answer
        {"answer": {"externalId": "astronaut", "objects": [FACE]}, "duration": 0},
    ],
    ids=["sdk-1.4", "sdk-1.3.22"],
)
def test_annotate_stores_the_answer_and_moves_the_task_on_once(
    in_stage: dict[str, Any],
    body: dict[str, Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    task, key, run = in_stage["task"], in_stage["key"], in_stage["run"]

    with django_capture_on_commit_callbacks(execute=True):
        first = annotate(key, task.pk, body)
        again = annotate(key, task.pk, body)

    assert first.status_code == 200, first.content
    assert first.json()["data"] == {"task": str(task.pk), "stage": "Review"}
    # The run ended with the first answer, and its key with it.
    assert again.status_code == 401
    task.refresh_from_db()
    run.refresh_from_db()
    assert task.stage == "Review" and task.status == Task.Status.SUBMITTED
    assert [t["schemaId"] for t in task.answer["tools"]] == ["face-box"]
    assert task.prelabel_run == run
    assert run.status == Run.Status.SUCCEEDED
    assert stage_entries(task, "Review") == 1
    moved = TaskEvent.objects.get(
        task=task, name=events.TASK_STAGE_ENTERED, data__to="Review"
    )
    assert moved.data["answer"] == task.answer  # for the export's stageHistory
    assert TaskEvent.objects.filter(task=task, name=events.RUN_SUCCEEDED).count() == 1


def test_an_invalid_answer_fails_the_run_and_keeps_the_task_in_the_stage(
    in_stage: dict[str, Any],
) -> None:
    task, key, run = in_stage["task"], in_stage["key"], in_stage["run"]
    outside = {**FACE, "bounding-box": {"x": -50, "y": 2, "width": 3, "height": 4}}

    response = annotate(key, task.pk, {"answer": {"objects": [outside]}})

    assert response.status_code == 400
    assert "rejected" in response.json()["message"]
    task.refresh_from_db()
    run.refresh_from_db()
    assert task.stage == STAGE and task.answer == {}
    assert run.status == Run.Status.FAILED
    assert run.error.startswith("The plugin's answer was rejected:")


def test_an_answer_for_a_job_not_held_is_refused(
    in_stage: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    """A late answer while the job waits in the queue again (its holder was
    lost): refused, nothing stored, the task stays."""
    task, key, run = in_stage["task"], in_stage["key"], in_stage["run"]
    WorkItem.objects.filter(run=run).update(state=WorkItem.State.PENDING)

    response = annotate(key, task.pk, {"answer": {"objects": [FACE]}})

    assert response.status_code == 409
    assert "already pending" in response.json()["message"]
    task.refresh_from_db()
    assert task.stage == STAGE and task.answer == {}


def test_a_missing_answer_fails_the_run(in_stage: dict[str, Any]) -> None:
    """1.3.22 posts {"answer": null} after its callback raised."""
    task, key, run = in_stage["task"], in_stage["key"], in_stage["run"]

    response = annotate(key, task.pk, {"answer": None, "duration": 0})

    assert response.status_code == 400
    run.refresh_from_db()
    assert run.status == Run.Status.FAILED
    assert "posted no answer" in run.error
    task.refresh_from_db()
    assert task.stage == STAGE


def test_annotate_refuses_another_task_and_a_non_workflow_key(
    workspace: Any, in_stage: dict[str, Any], model: Plugin
) -> None:
    task, key = in_stage["task"], in_stage["key"]
    body = {"answer": {"objects": [FACE]}}
    other_project_task = workspace.other_project.tasks.first()
    same_project_other_task = workspace.asset("coins").task

    assert annotate(key, other_project_task.pk, body).status_code == 404
    assert annotate(key, same_project_other_task.pk, body).status_code == 403
    interactive = new_run(workspace, model, "coins")
    assert dispatch_pending(model.pk) == 1
    interactive_key = jobs_sent()[-1]["apiKey"]
    assert interactive.items.get().state == WorkItem.State.LEASED
    assert annotate(interactive_key, task.pk, body).status_code == 403
    task.refresh_from_db()
    assert task.stage == STAGE


def test_a_plugin_error_keeps_the_task_in_the_stage_and_it_can_be_retried(
    workspace: Any,
    in_stage: dict[str, Any],
    model: Plugin,
    django_capture_on_commit_callbacks: Any,
) -> None:
    task, run, job = in_stage["task"], in_stage["run"], in_stage["job"]
    item = run.items.get()
    # 1.4.x logs the callback's exception, then answers {"error": true}.
    failed = PluginLogRecord(job["session"], "ERROR", "Workflow plugin failed", {})
    logs_ingest([failed], channel_name=CHANNEL)

    assert item_respond(
        session=job["session"], payload={"error": True}, channel_name=CHANNEL
    )

    run.refresh_from_db()
    task.refresh_from_db()
    assert run.status == Run.Status.FAILED and task.stage == STAGE
    item.refresh_from_db()
    assert item.state == WorkItem.State.FAILED
    client = Client()
    client.force_login(workspace.annotator)
    section = client.get(f"/projects/{workspace.project.pk}/workflow/")
    html = section.content.decode()
    assert f'data-task="{task.pk}"' in html and "Failed" in html
    assert "The plugin reported an error" in html
    assert "Retry all failed (1)" in html

    with django_capture_on_commit_callbacks(execute=True):
        retried = client.post(
            f"/projects/{workspace.project.pk}/workflow/retry/",
            {"stage": STAGE, "task": task.pk},
            HTTP_HX_REQUEST="true",
        )

    assert "Sent 1 task(s) to the plugin again." in retried.content.decode()
    runs = Run.objects.filter(task=task).order_by("id")
    assert [r.status for r in runs] == [Run.Status.FAILED, Run.Status.RUNNING]
    new_key = jobs_sent()[-1]["apiKey"]
    with django_capture_on_commit_callbacks(execute=True):
        done = annotate(new_key, task.pk, {"answer": {"objects": [FACE]}})
    assert done.status_code == 200
    task.refresh_from_db()
    assert task.stage == "Review"
    # Nothing left to retry: a retry of all failed sends nothing.
    assert workflow_stage_retry(workspace.project, STAGE) == 0


def test_the_task_page_shows_the_failure_and_retries_the_task(
    workspace: Any,
    in_stage: dict[str, Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    task, run, job = in_stage["task"], in_stage["run"], in_stage["job"]
    failed = PluginLogRecord(job["session"], "ERROR", "CUDA out of memory", {})
    logs_ingest([failed], channel_name=CHANNEL)
    item_respond(session=job["session"], payload={"error": True}, channel_name=CHANNEL)
    client = Client()
    client.force_login(workspace.annotator)
    page_url = f"/projects/{workspace.project.pk}/tasks/{task.pk}/"

    page = client.get(page_url).content.decode()

    assert 'id="task-plugin-stage"' in page and "CUDA out of memory" in page
    assert f'href="/runs/{run.pk}/"' in page and 'id="task-retry"' in page
    with django_capture_on_commit_callbacks(execute=True):
        retried = client.post(
            f"/projects/{workspace.project.pk}/workflow/retry/",
            {"stage": STAGE, "task": task.pk, "next": page_url},
        )
    assert retried.status_code == 302 and retried["Location"] == page_url
    assert Run.objects.filter(task=task, status=Run.Status.RUNNING).count() == 1
    again = client.get(page_url).content.decode()
    assert "Running" in again and 'id="task-retry"' not in again


def test_a_refusal_from_busy_slots_puts_the_job_back_in_the_queue(
    in_stage: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    """1.4.x answers {"error": true} at once, without a log line, when all its
    workflow slots are taken: the job is not failed, nor its attempt counted."""
    run, job = in_stage["run"], in_stage["job"]
    item = run.items.get()

    with django_capture_on_commit_callbacks(execute=True):
        outcome = item_respond(
            session=job["session"], payload={"error": True}, channel_name=CHANNEL
        )

    assert outcome == "busy"
    item.refresh_from_db()
    run.refresh_from_db()
    # Sent again at once (eager Celery ignores the countdown), attempt 1 again.
    assert (item.state, item.attempts) == (WorkItem.State.LEASED, 1)
    assert run.status == Run.Status.RUNNING
    assert len(jobs_sent()) == 2
    assert "workflow slots were all busy" in "".join(
        run.log_lines.values_list("message", flat=True)
    )


def test_a_broken_preset_fails_the_stage_run_with_a_clear_error(
    workspace: Any,
    model: Plugin,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    preset = Preset.objects.create(
        project=workspace.project,
        plugin=model,
        name="Ghosts",
        class_mapping={"face": "face-box"},
    )
    add_stage(workspace.project, model, preset_id=preset.pk)
    # Edited after the stage was set up (an admin may change any preset).
    Preset.objects.filter(pk=preset.pk).update(class_mapping={"face": "ghost-box"})
    connect_instance(model)

    (task,) = enter_stage(django_capture_on_commit_callbacks, workspace, "astronaut")

    run = Run.objects.get(task=task)
    assert run.status == Run.Status.FAILED
    assert run.error == (
        "“face” is mapped to “ghost-box” (from preset “Ghosts”), which is not a "
        "label of this project's ontology: choose another label."
    )
    assert jobs_sent() == []
    task.refresh_from_db()
    assert task.stage == STAGE
