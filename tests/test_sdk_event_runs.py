"""Event-triggered plugins end to end, with real parts: a labeler submits on the
task page (Django test client against the shared database), the on-commit
listener queues the trigger on the filesystem broker, a real Celery worker
creates the run and dispatches it (through the outbox) to examples/qa_event_plugin.py
running under the real imerit-ango 1.3.22 / 1.4.x, which opens issues, sets
metadata and requeues the task over the hub's REST endpoints."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from plugins_app.plugins.models import PluginType
from plugins_app.plugins.triggers import plugin_set_triggers
from plugins_app.runs.models import Run
from plugins_app.workspace import events
from plugins_app.workspace.models import Issue, Task
from tests.hub import ROOT, PluginProcess, wait_for

QA = ROOT / "examples" / "qa_event_plugin.py"
GOOD = {
    "tools": [
        {
            "schemaId": "face-box",
            "objectId": "face-1",
            "bounding-box": {"x": 170, "y": 60, "width": 100, "height": 110},
        }
    ],
    "classifications": [],
    "relations": [],
}
TINY = {
    "tools": [
        {
            "schemaId": "face-box",
            "objectId": "speck",
            "bounding-box": {"x": 20, "y": 30, "width": 3, "height": 3},
        }
    ],
    "classifications": [],
    "relations": [],
}


def submit_on_the_task_page(workspace: Any, task: Task, answer: dict[str, Any]) -> None:
    client = Client()
    client.force_login(workspace.annotator)
    url = f"/projects/{workspace.project.pk}/tasks/{task.pk}/submit/"
    response = client.post(url, {"answer": json.dumps(answer)}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "task-action-error" not in response.content.decode()


def finished_run(task: Task, worker: PluginProcess, plugin: PluginProcess) -> Run:
    def done() -> Run | None:
        run = Run.objects.filter(task=task).first()
        return run if run is not None and run.is_finished else None

    try:
        return wait_for(done, timeout=40, what="the triggered run to finish")
    except AssertionError:
        raise AssertionError(f"worker:\n{worker.log()}\nplugin:\n{plugin.log()}")


@pytest.mark.parametrize("sdk", ["1.3.22", "1.4"])
def test_connected_event_plugin_receives_label_submitted_and_requeues_over_rest(
    sdk: str,
    workspace: Any,
    make_plugin: Any,
    plugin_runner: Any,
    celery_worker: PluginProcess,
) -> None:
    registered = make_plugin(
        type=PluginType.EVENT,
        class_names=[],
        name="QA bot",
        default_config='{"min_objects": 1, "min_box_size": 8}',
    )
    plugin_set_triggers(
        registered.plugin,
        projects=[workspace.project],
        event_names=[events.LABEL_SUBMITTED],
    )
    plugin = plugin_runner(QA, registered, sdk=sdk)
    bad = workspace.asset("astronaut").task
    good = workspace.asset("coins").task

    submit_on_the_task_page(workspace, bad, TINY)
    run = finished_run(bad, celery_worker, plugin)

    assert run.status == Run.Status.SUCCEEDED, (run.error, plugin.log())
    assert run.trigger == events.LABEL_SUBMITTED
    bad.refresh_from_db()
    assert (bad.stage, bad.status) == ("Label", Task.Status.TODO)
    assert bad.metadata == {"qa": "failed", "qa_problems": 1}
    issue = Issue.objects.get(task=bad)
    assert "speck" in issue.content and issue.created_by_label == "plugin QA bot"
    assert issue.position["position"] == "[20, 30]"
    names = list(bad.events.values_list("name", flat=True))
    assert names[:3] == [
        events.LABEL_SUBMITTED,
        events.TASK_STAGE_ENTERED,
        events.TASK_SENT_BACK,
    ]
    assert events.RUN_SUCCEEDED in names
    sent_back = bad.events.get(name=events.TASK_SENT_BACK)
    assert sent_back.actor_label == "plugin QA bot"
    # The plugin saw the event's fields (its log lines reached the run).
    lines = "\n".join(run.log_lines.values_list("message", flat=True))
    assert "QA of astronaut submitted by bob in Label" in lines
    # The task page shows the issue, the send-back and the run.
    client = Client()
    client.force_login(workspace.annotator)
    page = client.get(f"/projects/{workspace.project.pk}/tasks/{bad.pk}/")
    html = page.content.decode()
    assert issue.content in html and "task.sent_back" in html
    assert f'href="/runs/{run.pk}/"' in html

    submit_on_the_task_page(workspace, good, GOOD)
    passed = finished_run(good, celery_worker, plugin)

    assert passed.status == Run.Status.SUCCEEDED
    good.refresh_from_db()
    assert (good.stage, good.metadata) == ("Review", {"qa": "passed", "qa_problems": 0})
    assert not Issue.objects.filter(task=good).exists()


CONSENSUS = ROOT / "examples" / "consensus_plugin.py"


def face(x: float, y: float, object_id: str) -> dict[str, Any]:
    return {
        "schemaId": "face-box",
        "objectId": object_id,
        "bounding-box": {"x": x, "y": y, "width": 100, "height": 110},
    }


@pytest.mark.parametrize("sdk", ["1.3.22", "1.4"])
def test_consensus_plugin_merges_the_n_labels_into_one_prelabel_for_review(
    sdk: str,
    workspace: Any,
    make_plugin: Any,
    plugin_runner: Any,
    celery_worker: PluginProcess,
) -> None:
    from django.contrib.auth.models import User

    from plugins_app.workspace.models import Membership

    workspace.project.labels_per_asset = 3
    workspace.project.save()
    dana = User.objects.create_user("dana", "dana@x.test", "pw")
    Membership.objects.create(user=dana, organization=workspace.org)
    registered = make_plugin(
        type=PluginType.EVENT, class_names=[], name="Consensus", default_config="{}"
    )
    plugin_set_triggers(
        registered.plugin,
        projects=[workspace.project],
        event_names=[events.LABEL_SUBMITTED],
    )
    plugin = plugin_runner(CONSENSUS, registered, sdk=sdk)
    task = workspace.asset("astronaut").task
    answers = {
        workspace.annotator: [face(170, 60, "a")],
        workspace.admin: [face(176, 64, "b"), face(20, 20, "stray")],
        dana: [face(173, 62, "c")],
    }

    for index, (user, tools) in enumerate(answers.items()):
        client = Client()
        client.force_login(user)
        response = client.post(
            f"/api/tasks/{task.pk}/submit",
            json.dumps({"answer": {"tools": tools}}),
            content_type="application/json",
        )
        assert response.status_code == 200, response.content
        assert response.json()["labels_submitted"] == index + 1
    run = finished_run(task, celery_worker, plugin)

    assert Run.objects.filter(task=task).count() == 1  # only the N-th triggered
    assert run.status == Run.Status.SUCCEEDED, (run.error, plugin.log())
    task.refresh_from_db()
    assert (task.stage, task.status) == ("Review", Task.Status.SUBMITTED)
    assert task.prelabel_run_id == run.pk
    [merged] = task.answer["tools"]
    assert merged["bounding-box"] == {
        "x": 173.0,
        "y": 62.0,
        "width": 100.0,
        "height": 110.0,
    }
    assert task.metadata == {"consensus_labelers": 3, "consensus_objects": 1}
    lines = "\n".join(run.log_lines.values_list("message", flat=True))
    assert "Merging 3 labels of astronaut (by bob, alice, dana)" in lines
