"""The real imerit-ango client (1.3.22 and 1.4.x, each in its own venv) against a
live hub: connect, show live, get a run started through the Run dialog's
endpoint, log, answer, and the pre-label is stored."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from plugins_app.runs.models import Run, RunLogLine, WorkItem
from plugins_app.workspace.models import Task
from tests.hub import SCRIPTS, wait_for

SDKS = ["1.3.22", "1.4"]
ECHO = SCRIPTS / "echo_model.py"


def start_run_from_dialog(
    workspace: Any, plugin: Any, external_ids: str, **extra: str
) -> Run:
    client = Client()
    client.force_login(workspace.annotator)
    data = {"external_ids": external_ids, "config_json": '{"max_detections": 5}'}
    data.update({"map_0": "face-box", "map_1": "coin-box"})
    data.update(extra)
    response = client.post(
        f"/projects/{workspace.project.pk}/plugins/{plugin.pk}/run/",
        data,
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200, response.content.decode()
    assert "HX-Redirect" in response, response.content.decode()
    return Run.objects.latest("id")


def wait_finished(run: Run, timeout: float = 30) -> Run:
    wait_for(
        lambda: Run.objects.get(pk=run.pk).is_finished, timeout=timeout, what="run end"
    )
    run.refresh_from_db()
    return run


@pytest.mark.parametrize("sdk", SDKS)
def test_it_runs_the_example_plugin_end_to_end(
    sdk: str, workspace: Any, make_plugin: Any, plugin_runner: Any
) -> None:
    registered = make_plugin()
    process = plugin_runner("examples/model_plugin.py", registered, sdk=sdk)
    run = start_run_from_dialog(workspace, registered.plugin, "astronaut")
    run = wait_finished(run, timeout=60)
    assert run.status == Run.Status.SUCCEEDED, (run.error, process.log())
    task = Task.objects.get(asset=workspace.asset("astronaut"))
    assert task.status == Task.Status.TODO
    assert task.prelabel_run_id == run.pk
    faces = [t for t in task.answer["tools"] if t["schemaId"] == "face-box"]
    assert faces, task.answer
    box = faces[0]["bounding-box"]
    # The astronaut's face spans about x 175-265, y 65-165 (see examples/tests).
    assert 100 < box["x"] + box["width"] / 2 < 260
    assert 40 < box["y"] + box["height"] / 2 < 200
    plugin_lines = RunLogLine.objects.filter(run=run).exclude(level="HUB")
    assert plugin_lines.exists()


@pytest.mark.parametrize("sdk", SDKS)
def test_it_spreads_runs_over_two_instances_each_handled_once(
    sdk: str, workspace: Any, make_plugin: Any, plugin_runner: Any
) -> None:
    registered = make_plugin()
    first = plugin_runner(ECHO, registered, sdk=sdk)
    second = plugin_runner(ECHO, registered, sdk=sdk)
    ids = ["astronaut", "coins", "camera", "coffee", "chelsea", "rocket"]
    runs = [start_run_from_dialog(workspace, registered.plugin, e) for e in ids]
    for run in runs:
        assert wait_finished(run).status == Run.Status.SUCCEEDED, run.error
    sessions = set(
        WorkItem.objects.filter(run__in=runs).values_list("session", flat=True)
    )
    handled = [session for p in (first, second) for session in p.handled()]
    assert sorted(handled) == sorted(sessions)  # each exactly once
    assert all(p.handled() for p in (first, second)), "both instances got work"


def test_it_times_out_a_plain_dict_model_under_1_4_and_names_the_cause(
    workspace: Any, make_plugin: Any, plugin_runner: Any
) -> None:
    from plugins_app.runs.sweep import runs_sweep

    registered = make_plugin(timeout=1)
    plugin_runner(ECHO, registered, sdk="1.4", env={"ECHO_MODE": "plain_dict"})
    run = start_run_from_dialog(workspace, registered.plugin, "astronaut")
    wait_for(
        lambda: RunLogLine.objects.filter(run=run, message="echo done").exists(),
        what="the plugin's log",
    )
    wait_for(
        lambda: runs_sweep()["timed_out"] or Run.objects.get(pk=run.pk).is_finished
    )
    run.refresh_from_db()
    assert run.status == Run.Status.TIMED_OUT
    assert "plain dict" in run.error and "AnnotationPayload" in run.error
    assert Task.objects.get(asset=workspace.asset("astronaut")).answer == {}


@pytest.mark.parametrize("sdk", SDKS)
def test_it_fails_a_run_with_the_plugins_last_error_log(
    sdk: str, workspace: Any, make_plugin: Any, plugin_runner: Any
) -> None:
    registered = make_plugin()
    plugin_runner(ECHO, registered, sdk=sdk, env={"ECHO_MODE": "error"})
    run = wait_finished(start_run_from_dialog(workspace, registered.plugin, "coins"))
    assert run.status == Run.Status.FAILED
    assert "model weights not found" in run.error


@pytest.mark.parametrize("sdk", SDKS)
def test_it_rejects_an_invalid_answer_and_leaves_the_asset_untouched(
    sdk: str, workspace: Any, make_plugin: Any, plugin_runner: Any
) -> None:
    registered = make_plugin()
    plugin_runner(ECHO, registered, sdk=sdk, env={"ECHO_MODE": "invalid"})
    run = wait_finished(start_run_from_dialog(workspace, registered.plugin, "coins"))
    assert run.status == Run.Status.FAILED
    assert "rejected" in run.error and "objects[0]" in run.error
    assert Task.objects.get(asset=workspace.asset("coins")).answer == {}
