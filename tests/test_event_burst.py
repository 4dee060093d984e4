"""100 submissions in a burst each trigger exactly one run: the submits go
through the JSON API, each commit's listener queues a Celery task on the
filesystem broker, and two real Celery workers create the runs. Every trigger
is then delivered a second time (as a broker may redeliver): still one run per
(plugin, event)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Count
from django.test import Client

from plugins_app.plugins.models import PluginType
from plugins_app.plugins.triggers import plugin_set_triggers
from plugins_app.runs.models import Run
from plugins_app.runs.tasks import create_event_run
from plugins_app.workspace import events
from plugins_app.workspace.models import Asset, Task, TaskEvent
from tests.hub import PluginProcess, start_celery_worker, wait_for

BURST = 100


@pytest.fixture
def two_workers(transactional_db: Any, tmp_path: Path) -> Iterator[list[PluginProcess]]:
    workers = [start_celery_worker(tmp_path, beat=False, env={}) for _ in range(2)]
    yield workers
    for worker in workers:
        worker.stop()


def test_100_submissions_in_a_burst_each_trigger_exactly_one_run(
    workspace: Any, make_plugin: Any, two_workers: list[PluginProcess]
) -> None:
    plugin = make_plugin(type=PluginType.EVENT, class_names=[], name="QA").plugin
    plugin_set_triggers(
        plugin, projects=[workspace.project], event_names=[events.LABEL_SUBMITTED]
    )
    template = workspace.asset("astronaut")
    tasks = []
    for index in range(BURST):
        asset = Asset.objects.create(
            project=workspace.project,
            external_id=f"burst-{index:03}",
            file=template.file,
            width=template.width,
            height=template.height,
        )
        tasks.append(Task.objects.create(project=workspace.project, asset=asset))
    client = Client()
    client.force_login(workspace.annotator)

    for task in tasks:
        response = client.post(
            f"/api/tasks/{task.pk}/submit",
            json.dumps({"answer": {"tools": []}}),
            content_type="application/json",
        )
        assert response.status_code == 200, response.content

    submitted = TaskEvent.objects.filter(
        name=events.LABEL_SUBMITTED, task__in=tasks
    ).values_list("pk", flat=True)
    assert len(submitted) == BURST
    logs = lambda: "\n".join(w.log() for w in two_workers)  # noqa: E731
    try:
        wait_for(lambda: Run.objects.count() >= BURST, timeout=120, what="100 runs")
    except AssertionError:
        raise AssertionError(f"{Run.objects.count()} runs\n{logs()}")
    # Redeliver every trigger, then wait until the workers have drained them.
    for event_id in submitted:
        create_event_run.delay(plugin.pk, event_id)
    wait_for(
        lambda: logs().count("create_event_run[") >= 4 * BURST,
        timeout=120,
        what="the redelivered triggers to be handled",
    )

    runs = Run.objects.filter(plugin=plugin)
    assert runs.count() == BURST
    per_event = runs.values("event").annotate(n=Count("id"))
    assert sorted(row["event"] for row in per_event) == sorted(submitted)
    assert {row["n"] for row in per_event} == {1}
    assert set(runs.values_list("trigger", flat=True)) == {events.LABEL_SUBMITTED}
    assert sorted(runs.values_list("task_id", flat=True)) == sorted(t.pk for t in tasks)
    assert "Traceback" not in logs()
