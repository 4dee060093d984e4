"""A comparison whose worker dies is not left "running" for ever: Celery
beat's sweep queues it again (and a real worker finishes it), or, after the
second lost worker, fails it with the reason and a Retry button."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from plugins_app.evaluation import recovery, services
from plugins_app.evaluation.models import Comparison
from plugins_app.evaluation.tasks import compute_comparison
from plugins_app.plugins.models import PluginType
from plugins_app.runs.models import Run
from plugins_app.workspace import events
from plugins_app.workspace.models import Asset, Task, TaskEvent
from tests.hub import PluginProcess, start_celery_worker, wait_for

BOX = {"x": 10, "y": 10, "width": 40, "height": 30}


def answer(n: int, shift: float) -> dict[str, Any]:
    box = {**BOX, "x": BOX["x"] + shift}
    return {
        "tools": [
            {"objectId": f"{n}-{k}", "schemaId": "face-box", "bounding-box": box}
            for k in range(3)
        ],
        "classifications": [],
    }


def reviewed_history(workspace: Any, make_plugin: Any, assets: int) -> list[Run]:
    """Two finished Model runs and `assets` reviewed tasks whose history says
    what each wrote (written in bulk, as bench/compare.py does)."""
    plugin = make_plugin(type=PluginType.MODEL).plugin
    runs = [
        Run.objects.create(
            organization=workspace.org,
            project=workspace.project,
            plugin=plugin,
            created_by=workspace.admin,
            status=Run.Status.SUCCEEDED,
            finished_at=timezone.now(),
        )
        for _ in range(2)
    ]
    created = Asset.objects.bulk_create(
        Asset(
            project=workspace.project,
            external_id=f"cmp-{n:06d}",
            file="none.png",
            width=200,
            height=200,
        )
        for n in range(assets)
    )
    tasks = Task.objects.bulk_create(
        Task(
            project=workspace.project,
            asset=asset,
            stage="Complete",
            status=Task.Status.REVIEWED,
            answer=answer(n, 0),
        )
        for n, asset in enumerate(created)
    )
    history = []
    for n, task in enumerate(tasks):
        history += [
            TaskEvent(
                task=task,
                name=events.ANSWER_WRITTEN,
                data={"run": runs[0].pk, "previousAnswer": {}},
            ),
            TaskEvent(
                task=task,
                name=events.ANSWER_WRITTEN,
                data={"run": runs[1].pk, "previousAnswer": answer(n, 15)},
            ),
            TaskEvent(
                task=task,
                name=events.LABEL_SUBMITTED,
                actor=workspace.annotator,
                data={"answer": answer(n, 0), "previousAnswer": answer(n, 2)},
            ),
            TaskEvent(
                task=task,
                name=events.LABEL_REVIEWED,
                actor=workspace.admin,
                data={"verdict": "accepted", "answer": answer(n, 0)},
            ),
        ]
    TaskEvent.objects.bulk_create(history, batch_size=2000)
    return runs


def new_comparison(workspace: Any, runs: list[Run]) -> Comparison:
    return Comparison.objects.create(
        organization=workspace.org,
        project=workspace.project,
        created_by=workspace.admin,
        run_ids=[r.pk for r in runs],
    )


def stale(comparison: Comparison, **fields: Any) -> None:
    """As the row of a worker that stopped beating a while ago."""
    long_ago = timezone.now() - timedelta(hours=1)
    Comparison.objects.filter(pk=comparison.pk).update(updated_at=long_ago, **fields)


def test_a_stale_running_comparison_is_queued_again_and_computed(
    workspace: Any,
    make_plugin: Any,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    comparison = new_comparison(workspace, reviewed_history(workspace, make_plugin, 4))
    stale(comparison, state=Comparison.State.RUNNING, attempt=1, progress=1)
    fresh = new_comparison(workspace, Run.objects.order_by("id"))
    Comparison.objects.filter(pk=fresh.pk).update(state=Comparison.State.RUNNING)

    with django_capture_on_commit_callbacks(execute=True):
        assert recovery.comparisons_sweep() == {"requeued": 1, "failed": 0}

    comparison.refresh_from_db()
    assert comparison.state == Comparison.State.DONE, comparison.error
    assert comparison.attempt == 2 and comparison.result["compared"] == 4
    # One that beats recently is left to its worker.
    assert Comparison.objects.get(pk=fresh.pk).state == Comparison.State.RUNNING


def test_a_comparison_lost_twice_fails_with_the_reason_and_retry_computes_it(
    workspace: Any,
    make_plugin: Any,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    comparison = new_comparison(workspace, reviewed_history(workspace, make_plugin, 3))
    stale(comparison, state=Comparison.State.RUNNING, attempt=recovery.MAX_ATTEMPTS)

    assert recovery.comparisons_sweep() == {"requeued": 0, "failed": 1}

    comparison.refresh_from_db()
    assert comparison.state == Comparison.State.FAILED
    assert "stopped 2 times (no progress for 300 s" in comparison.error
    client = Client()
    client.force_login(workspace.annotator)
    page = client.get(f"/comparisons/{comparison.pk}/").content.decode()
    assert comparison.error in page and 'id="comparison-retry"' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/comparisons/{comparison.pk}/retry/")
    assert response.status_code == 302
    comparison.refresh_from_db()
    assert comparison.state == Comparison.State.DONE and comparison.error == ""
    assert comparison.result["compared"] == 3
    # Only a failed one is retried; an outsider cannot.
    assert client.post(f"/comparisons/{comparison.pk}/retry/").status_code == 409
    outsider = Client()
    outsider.force_login(workspace.outsider)
    assert outsider.post(f"/comparisons/{comparison.pk}/retry/").status_code == 404
    assert outsider.post(f"/api/comparisons/{comparison.pk}/retry").status_code == 404


def test_a_superseded_worker_stops_and_writes_nothing(
    workspace: Any, make_plugin: Any
) -> None:
    """The old worker of a re-queued comparison, alive after all, finds at
    its next step that the row is another attempt's: it stops there."""
    comparison = new_comparison(workspace, reviewed_history(workspace, make_plugin, 2))
    comparison.state, comparison.attempt = Comparison.State.RUNNING, 1
    comparison.save()
    Comparison.objects.filter(pk=comparison.pk).update(attempt=2, progress=7)

    with pytest.raises(services.Superseded):
        services._progress(comparison, 1)

    assert Comparison.objects.get(pk=comparison.pk).progress == 7


@pytest.fixture
def workers(live_hub: Any, tmp_path: Path) -> Iterator[list[PluginProcess]]:
    started: list[PluginProcess] = []
    yield started
    for worker in started:
        worker.stop()


def test_a_worker_killed_mid_comparison_leaves_it_to_the_next_worker(
    workspace: Any, make_plugin: Any, workers: list[PluginProcess], tmp_path: Path
) -> None:
    assets = 6000
    comparison = new_comparison(
        workspace, reviewed_history(workspace, make_plugin, assets)
    )
    workers.append(start_celery_worker(tmp_path, beat=False, env={}))
    compute_comparison.delay(comparison.pk)

    def started() -> bool:
        comparison.refresh_from_db()
        return comparison.state == Comparison.State.RUNNING and comparison.progress > 0

    wait_for(started, timeout=120, what="the comparison to make progress")
    workers[0].stop()  # SIGKILL, mid-comparison
    comparison.refresh_from_db()
    assert comparison.state == Comparison.State.RUNNING, "not killed mid-way"
    assert comparison.progress < comparison.total

    # A worker with beat: its sweep finds no heartbeat and queues it again.
    env = {"HUB_SWEEP_SECONDS": "0.5", "HUB_COMPARISON_STALE_SECONDS": "8"}
    workers.append(start_celery_worker(tmp_path, beat=True, env=env))

    def ended() -> bool:
        comparison.refresh_from_db()
        return comparison.state in (Comparison.State.DONE, Comparison.State.FAILED)

    wait_for(ended, timeout=180, what="the comparison to end")
    assert comparison.state == Comparison.State.DONE, comparison.error
    assert comparison.attempt == 2
    assert comparison.result["compared"] == assets
    first, second = comparison.result["runs"]
    assert first["overall"]["tp"] == 0  # 15 px off a 40 px box: IoU 0.45
    assert second["overall"]["recall"] == 1.0  # 2 px off: IoU 0.9
    assert "sweep_comparisons" in workers[1].log()
