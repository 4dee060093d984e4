"""Workflow Plugin stages end to end with real parts: labelers submit on the task
page, the on-commit listener queues the stage on the filesystem broker, a real
Celery worker creates the runs, and the real imerit-ango 1.3.22 / 1.4.x client
answers each job with POST /v2/annotate/{taskId}?nextStage=true(&isPlugin=true);
then a plugin killed mid-stage: its tasks stay visible, are retried from the
project page, and each ends in Review exactly once."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from plugins_app.plugins import stages
from plugins_app.plugins.models import Plugin, PluginInstance
from plugins_app.runs.models import Run, WorkItem
from plugins_app.runs.sweep import runs_sweep
from plugins_app.workspace import events, lifecycle
from plugins_app.workspace.models import Task, TaskEvent
from tests.hub import SCRIPTS, LiveHub, PluginProcess, wait_for

SCRIPT = SCRIPTS / "workflow_model.py"
STAGE = "Auto-label"
ASSETS = ("astronaut", "coins", "camera")
LABEL = {
    "tools": [
        {
            "schemaId": "coin-box",
            "objectId": "mine",
            "bounding-box": {"x": 5, "y": 5, "width": 20, "height": 20},
        }
    ],
    "classifications": [],
    "relations": [],
}


def with_stage(workspace: Any, plugin: Plugin, *, overwrite: bool = True) -> None:
    stages.workflow_plugin_stage_add(
        workspace.project,
        name=STAGE,
        plugin_id=plugin.pk,
        preset_id=None,
        overwrite=overwrite,
    )


def member(workspace: Any) -> Client:
    client = Client()
    client.force_login(workspace.annotator)
    return client


def submit(client: Client, workspace: Any, task: Task) -> None:
    url = f"/projects/{workspace.project.pk}/tasks/{task.pk}/submit/"
    response = client.post(url, {"answer": json.dumps(LABEL)}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "task-action-error" not in response.content.decode()


def tasks_of(workspace: Any) -> list[Task]:
    return [workspace.asset(e).task for e in ASSETS]


def wait_all_in(stage: str, tasks: list[Task], *logs: PluginProcess) -> None:
    ids = [t.pk for t in tasks]

    def arrived() -> bool:
        return Task.objects.filter(pk__in=ids, stage=stage).count() == len(ids)

    try:
        wait_for(arrived, timeout=60, what=f"every task to reach {stage}")
    except AssertionError:
        runs = list(Run.objects.values_list("task_id", "status", "error"))
        detail = "\n".join(f"{p.name}:\n{p.log()}" for p in logs)
        raise AssertionError(f"runs: {runs}\n{detail}")


def assert_moved_on_once(task: Task) -> None:
    """One succeeded workflow run, the plugin's answer stored, one entry into
    Review: the task was neither lost nor handled twice."""
    task.refresh_from_db()
    assert (task.stage, task.status) == ("Review", Task.Status.SUBMITTED)
    succeeded = Run.objects.filter(
        task=task, trigger="workflow", status=Run.Status.SUCCEEDED
    )
    assert succeeded.count() == 1
    assert task.prelabel_run == succeeded.get()
    assert [t["schemaId"] for t in task.answer["tools"]] == ["face-box"]
    entered = TaskEvent.objects.filter(task=task, name=events.TASK_STAGE_ENTERED)
    assert entered.filter(data__to="Review").count() == 1
    assert entered.filter(data__to=STAGE).count() == 1


@pytest.mark.parametrize(
    ("sdk", "slots"),
    [("1.3.22", 1), ("1.4", 1), ("1.4", 2)],
    ids=["1.3.22", "1.4", "1.4-two-slots"],
)
def test_submitted_tasks_move_through_a_plugin_stage(
    sdk: str,
    slots: int,
    workspace: Any,
    make_plugin: Any,
    plugin_runner: Any,
    live_hub: LiveHub,
    celery_worker: PluginProcess,
) -> None:
    registered = make_plugin(name="Auto labeler")
    with_stage(workspace, registered.plugin)
    # Two slots are declared the documented way, in HOST's query string, which
    # the SDK then also prefixes to every REST path (the hub undoes that).
    env = {"CONCURRENCY": str(slots)}
    if slots > 1:
        env["HOST"] = f"{live_hub.url}/?concurrency={slots}"
    plugin = plugin_runner(SCRIPT, registered, sdk=sdk, env=env)
    if slots > 1:
        instance = PluginInstance.objects.live().get(plugin=registered.plugin)
        assert instance.capacity == slots
    tasks = tasks_of(workspace)
    client = member(workspace)

    for task in tasks:
        submit(client, workspace, task)
    wait_all_in("Review", tasks, plugin, celery_worker)

    for task in tasks:
        assert_moved_on_once(task)
        assert f"HANDLED {task.pk}\n" in plugin.log()
        assert plugin.log().count(f"HANDLED {task.pk}\n") == 1
    # Three jobs for an instance with `slots` workflow slots: had the hub sent
    # more at once, 1.4.x would have answered {"error": true} (and a busy
    # refusal would be requeued, never failed).
    assert not Run.objects.exclude(status=Run.Status.SUCCEEDED).exists()
    # The project page lists the stage, now empty.
    section = client.get(f"/projects/{workspace.project.pk}/workflow/")
    assert "No task is in this stage." in section.content.decode()


@pytest.mark.parametrize("sdk", ["1.3.22", "1.4"])
def test_a_stage_without_overwrite_merges_the_answer_into_the_labels(
    sdk: str,
    workspace: Any,
    make_plugin: Any,
    plugin_runner: Any,
    eager_celery: None,
) -> None:
    """overwrite=false: the SDK reads the task (GET /v2/task/{id}, answer.tools)
    and posts the labeler's objects together with the plugin's."""
    registered = make_plugin(name="Auto labeler")
    with_stage(workspace, registered.plugin, overwrite=False)
    plugin = plugin_runner(SCRIPT, registered, sdk=sdk)
    task = workspace.asset("astronaut").task
    client = member(workspace)

    submit(client, workspace, task)
    wait_all_in("Review", [task], plugin)

    task.refresh_from_db()
    assert sorted(t["schemaId"] for t in task.answer["tools"]) == [
        "coin-box",
        "face-box",
    ]
    mine = next(t for t in task.answer["tools"] if t["schemaId"] == "coin-box")
    assert mine["objectId"] == "mine"


@pytest.mark.parametrize("sdk", ["1.3.22", "1.4"])
def test_a_plugin_killed_mid_stage_leaves_its_tasks_visible_and_retryable(
    sdk: str,
    workspace: Any,
    make_plugin: Any,
    plugin_runner: Any,
    eager_celery: None,
) -> None:
    registered = make_plugin(name="Auto labeler", max_attempts=1)
    with_stage(workspace, registered.plugin)
    slow = plugin_runner(SCRIPT, registered, sdk=sdk, env={"WORKFLOW_SLEEP": "30"})
    tasks = tasks_of(workspace)
    for task in tasks:
        lifecycle.task_move(task, to_stage=STAGE)
    wait_for(lambda: "HANDLED" in slow.log(), timeout=20, what="the first job")

    slow.stop()  # SIGKILL while it holds a job

    held = WorkItem.objects.filter(run__trigger="workflow", attempts=1)
    wait_for(
        lambda: held.filter(state=WorkItem.State.FAILED).exists(),
        timeout=20,
        what="the hub to see the plugin gone",
    )
    # The two that never left the queue wait past the plugin's timeout with no
    # instance connected: the sweep (Celery beat) fails them.
    waiting = WorkItem.objects.filter(state=WorkItem.State.PENDING)
    assert waiting.count() == 2
    waiting.update(queued_at=timezone.now() - timedelta(seconds=120))
    assert runs_sweep()["timed_out"] == 2
    client = member(workspace)
    section = client.get(f"/projects/{workspace.project.pk}/workflow/")
    html = section.content.decode()
    for task in tasks:
        task.refresh_from_db()
        assert task.stage == STAGE
        assert f'data-task="{task.pk}"' in html
    assert "connection dropped while holding this job" in html
    assert "No instance of the plugin was connected" in html
    assert "Retry all failed (3)" in html

    fresh = plugin_runner(SCRIPT, registered, sdk=sdk)
    retried = client.post(
        f"/projects/{workspace.project.pk}/workflow/retry/",
        {"stage": STAGE},
        HTTP_HX_REQUEST="true",
    )

    assert "Sent 3 task(s) to the plugin again." in retried.content.decode()
    wait_all_in("Review", tasks, fresh)
    for task in tasks:
        assert_moved_on_once(task)
        assert Run.objects.filter(task=task).count() == 2
