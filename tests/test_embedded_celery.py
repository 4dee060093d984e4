"""Embedded mode with a real Celery worker: the in-memory channel layer does not
cross processes, so work the worker hands out travels through the database
outbox to the ASGI process, where the plugin is connected."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from websockets.sync.client import connect

from plugins_app.runs.models import Run, WorkItem
from plugins_app.runs.tasks import dispatch_plugin_work
from tests.builders import new_run
from tests.hub import SCRIPTS, LiveHub, PluginProcess, start_celery_worker, wait_for

ECHO = SCRIPTS / "echo_model.py"


@pytest.fixture
def celery_worker(live_hub: LiveHub, tmp_path: Path) -> Iterator[PluginProcess]:
    worker = start_celery_worker(tmp_path, beat=True, env={"HUB_SWEEP_SECONDS": "0.5"})
    yield worker
    worker.stop()


def test_it_delivers_a_job_dispatched_by_the_celery_worker(
    workspace: Any, make_plugin: Any, plugin_runner: Any, celery_worker: PluginProcess
) -> None:
    registered = make_plugin()
    process = plugin_runner(ECHO, registered, sdk="1.4")
    run = new_run(workspace, registered.plugin, "astronaut")
    assert run.items.get().state == WorkItem.State.PENDING
    dispatch_plugin_work.delay(registered.plugin.pk)
    wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, what="the run to end")
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, (run.error, celery_worker.log())
    assert "dispatch_plugin_work" in celery_worker.log()
    assert "HANDLED" in process.log()


def test_it_times_out_a_silent_run_from_celery_beat_and_tells_the_watching_browser(
    workspace: Any,
    make_plugin: Any,
    plugin_runner: Any,
    live_hub: LiveHub,
    celery_worker: PluginProcess,
) -> None:
    # A 1.4.x plugin returning a plain dict: the SDK drops its answer silently.
    registered = make_plugin(timeout=2)
    plugin_runner(ECHO, registered, sdk="1.4", env={"ECHO_MODE": "plain_dict"})
    browser = Client()
    browser.force_login(workspace.annotator)
    response = browser.post(
        f"/projects/{workspace.project.pk}/plugins/{registered.plugin.pk}/run/",
        {"external_ids": "coins", "config_json": "{}", "map_0": "face-box"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and "HX-Redirect" in response
    run = Run.objects.latest("id")
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    ws_url = live_hub.url.replace("http", "ws") + f"/ws/runs/{run.pk}/"
    with connect(
        ws_url, additional_headers={"Cookie": cookie, "Origin": live_hub.url}
    ) as watcher:
        fragments = []
        wait_for(
            lambda: (
                fragments.append(watcher.recv(timeout=10))
                or "Timed out" in fragments[-1]
            ),
            timeout=20,
            what="a timed-out fragment",
        )
    run.refresh_from_db()
    assert run.status == Run.Status.TIMED_OUT
    assert "AnnotationPayload" in run.error
    assert "sweep_runs" in celery_worker.log()
