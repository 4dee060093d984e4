"""Comparisons end to end: two Batch Model runs import pre-labels through the
service `/v2/import/labels` calls, people correct and accept the tasks, the
comparison is created through the JSON API and computed by its Celery task
(eager), and the page and the API show the figures. Then who may see what, and
input that is refused."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from plugins_app.evaluation.models import Comparison
from plugins_app.evaluation.tasks import compute_comparison
from plugins_app.evaluation.written import answers_written
from plugins_app.plugins.models import PluginType
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.models import Run
from plugins_app.runs.responses import item_respond
from plugins_app.runs.run_answers import run_answers
from plugins_app.workspace import events
from plugins_app.workspace.lifecycle import task_review, task_submit
from plugins_app.workspace.models import Project, Task, TaskEvent
from plugins_app.workspace.services import prelabels_import
from tests.builders import connect_instance, new_run
from tests.test_api import post_json

ASSETS = ["astronaut", "coins", "camera"]
GOOD = {"x": 10, "y": 10, "width": 40, "height": 40}
FAR = {"x": 100, "y": 100, "width": 40, "height": 40}  # IoU 0 with GOOD


def batch_run(workspace: Any, plugin: Any, box: dict[str, int], tag: str) -> Run:
    """A finished Batch Model run that imported one face box per asset."""
    channel = f"test!instance-{plugin.pk}"
    connect_instance(plugin, channel)
    run = new_run(workspace, plugin, mapping={"face": "face-box"})
    assert dispatch_pending(plugin.pk) == 1
    records = [
        {
            "externalId": e,
            "objects": [
                {"objectId": f"{tag}-{e}", "schemaId": "face-box", "bounding-box": box}
            ],
        }
        for e in ASSETS
    ]
    result = prelabels_import(
        project=workspace.project, records=records, mapping=run.class_mapping, run=run
    )
    assert not result.errors and result.labeled == len(ASSETS)
    item_respond(
        session=run.items.get().session,
        payload={"response": "ok"},
        channel_name=channel,
    )
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    return run


@pytest.fixture
def two_reviewed_runs(workspace: Any, make_plugin: Any) -> tuple[Run, Run]:
    """v1 put the faces where the reviewer wants them; v2 (run after, so its
    boxes are what the annotator saw) put them far off. The annotator moves
    v2's boxes onto v1's place (same objectIds) and the admin accepts."""
    v1 = batch_run(
        workspace,
        make_plugin(type=PluginType.BATCH_MODEL, name="det v1").plugin,
        GOOD,
        "v1",
    )
    v2 = batch_run(
        workspace,
        make_plugin(type=PluginType.BATCH_MODEL, name="det v2").plugin,
        FAR,
        "v2",
    )
    for external_id in ASSETS:
        task = Task.objects.get(asset=workspace.asset(external_id))
        answer = copy.deepcopy(task.answer)
        assert answer["tools"][0]["objectId"] == f"v2-{external_id}"
        answer["tools"][0]["bounding-box"] = dict(GOOD)
        task = task_submit(task, user=workspace.annotator, answer=answer)
        task_review(task, user=workspace.admin, accept=True)
    return v1, v2


def logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def create(client: Client, capture: Callable[..., Any], body: dict[str, Any]) -> Any:
    with capture(execute=True):  # the on-commit hand-off to Celery (eager)
        return post_json(client, "/api/comparisons", body)


def test_two_runs_compared_through_the_celery_task_page_and_api(
    two_reviewed_runs: tuple[Run, Run],
    workspace: Any,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    v1, v2 = two_reviewed_runs
    # The version a run recorded when created (plugins/versions.py) names it.
    Run.objects.filter(pk=v2.pk).update(plugin_version="2.0")
    client = logged_in(workspace.admin)

    response = create(
        client, django_capture_on_commit_callbacks, {"runs": [v1.pk, v2.pk]}
    )

    assert response.status_code == 202, response.content
    comparison = Comparison.objects.get(pk=response.json()["id"])
    assert comparison.state == Comparison.State.DONE, comparison.error
    # 1 chunk of tasks (both runs read together), then the figures of each run.
    assert comparison.progress == comparison.total == 1 + 2
    data = client.get(f"/api/comparisons/{comparison.pk}").json()
    assert data["state"] == "done" and data["runs"] == [v1.pk, v2.pk]
    result = data["result"]
    assert (result["reviewed"], result["compared"]) == (3, 3)
    first, second = result["runs"]
    face = first["classes"]["face-box"]
    assert (face["tp"], face["fp"], face["fn"]) == (3, 0, 0)
    assert face["precision"] == face["recall"] == face["f1"] == face["mean_iou"] == 1.0
    assert face["ap"] == pytest.approx(1.0) and first["map"] == pytest.approx(1.0)
    # v1's objects are not the ones the reviewer kept (they took v2's ids):
    # by objectId, people deleted its 3 and added 3.
    assert first["correction"] == {
        "added": 3,
        "deleted": 3,
        "moved": 0,
        "relabelled": 0,
        "kept": 0,
    }
    assert second["plugin_version"] == "2.0"
    assert second["label"] == f"#{v2.pk} det v2 2.0"
    face = second["classes"]["face-box"]
    assert (face["tp"], face["fp"], face["fn"]) == (0, 3, 3)
    assert (face["precision"], face["recall"], face["f1"]) == (0.0, 0.0, 0.0)
    assert second["map"] == 0.0
    assert second["correction"]["moved"] == 3
    assert [row["disagreement"] for row in result["assets"]] == [2, 2, 2]

    listed = client.get(f"/api/comparisons?project={workspace.project.pk}").json()
    assert [c["id"] for c in listed] == [comparison.pk]

    page = client.get(f"/comparisons/{comparison.pk}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert f"#{v1.pk} det v1" in html and f"#{v2.pk} det v2 2.0" in html
    assert 'id="comparison-charts"' in html and "<rect" in html
    task = Task.objects.get(asset=workspace.asset("camera"))
    assert f'href="/projects/{workspace.project.pk}/tasks/{task.pk}/"' in html
    assert f'href="/comparisons/{comparison.pk}/assets/{task.pk}/"' in html

    # The asset on the comparison canvas: the reviewed box and each run's,
    # one layer and colour each, with how the comparison matched each object.
    drawing = client.get(f"/comparisons/{comparison.pk}/assets/{task.pk}/")
    assert drawing.status_code == 200
    state = drawing.context["state"]
    assert 'id="comparison-state"' in drawing.content.decode()
    assert [(layer["key"], layer["colour"]) for layer in state["layers"]] == [
        ("reviewed", "#212529"),
        ("run0", "#0072b2"),
        ("run1", "#e69f00"),
    ]
    reviewed, first, second = (layer["objects"] for layer in state["layers"])
    assert [len(reviewed), len(first), len(second)] == [1, 1, 1]
    assert second[0]["geometry"] == {"x": 100, "y": 100, "w": 40, "h": 40}
    assert first[0]["matches"] == [
        {"layer": "reviewed", "status": "TP", "iou": 1.0, "with": "reviewed-0"}
    ]
    assert second[0]["matches"] == [{"layer": "reviewed", "status": "FP"}]
    assert [m["status"] for m in reviewed[0]["matches"]] == ["TP", "FN"]
    # Next and previous follow the per-asset list (most disagreement first).
    order = [row["task"] for row in result["assets"]]
    at = order.index(task.pk)
    assert state["position"] == at + 1
    expected_next = (
        f"/comparisons/{comparison.pk}/assets/{order[at + 1]}/"
        if at + 1 < len(order)
        else None
    )
    assert state["next"] == expected_next


def test_the_project_page_form_starts_a_comparison(
    two_reviewed_runs: tuple[Run, Run],
    workspace: Any,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    v1, v2 = two_reviewed_runs
    client = logged_in(workspace.annotator)
    url = f"/projects/{workspace.project.pk}/comparisons/"
    assert f'value="{v1.pk}"' in client.get(url).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"runs": [v1.pk, v2.pk], "iou_threshold": "0.7"})

    comparison = Comparison.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/comparisons/{comparison.pk}/"
    assert comparison.iou_threshold == 0.7 and comparison.state == "done"
    refused = client.post(url, {"runs": [v1.pk]})
    assert refused.status_code == 400
    assert "pick between 2 and 6" in refused.content.decode()


def test_organizations_see_only_their_comparisons(
    two_reviewed_runs: tuple[Run, Run],
    workspace: Any,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    v1, v2 = two_reviewed_runs
    mine = create(
        logged_in(workspace.admin),
        django_capture_on_commit_callbacks,
        {"runs": [v1.pk, v2.pk]},
    ).json()["id"]
    outsider = logged_in(workspace.outsider)

    assert outsider.get("/api/comparisons").json() == []
    assert outsider.get(f"/api/comparisons/{mine}").status_code == 404
    assert outsider.get(f"/comparisons/{mine}/").status_code == 404
    assert outsider.get(f"/comparisons/{mine}/progress/").status_code == 404
    task = Task.objects.get(asset=workspace.asset("camera"))
    assert outsider.get(f"/comparisons/{mine}/assets/{task.pk}/").status_code == 404
    assert (
        outsider.get(f"/projects/{workspace.project.pk}/comparisons/").status_code
        == 404
    )
    # Their runs' ids are as unknown to them as any other.
    refused = create(
        outsider, django_capture_on_commit_callbacks, {"runs": [v1.pk, v2.pk]}
    )
    assert refused.status_code == 404
    assert Comparison.objects.count() == 1


def test_bad_choices_are_a_clear_400_or_404(
    two_reviewed_runs: tuple[Run, Run],
    workspace: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    v1, v2 = two_reviewed_runs
    client = logged_in(workspace.admin)

    def refused(body: dict[str, Any]) -> tuple[int, str]:
        response = create(client, django_capture_on_commit_callbacks, body)
        return response.status_code, response.json().get("detail", "")

    assert refused({"runs": [v1.pk]})[0] == 400
    assert refused({"runs": [v1.pk, v1.pk]})[0] == 400  # one run twice
    code, text = refused({"runs": list(range(1, 100_001))})
    assert code == 400 and "between 2 and 6" in text
    code, text = refused({"runs": [v1.pk, v2.pk], "iou_threshold": 1.5})
    assert code == 400 and "iou_threshold" in text
    assert refused({"runs": [v1.pk, 999_999]})[0] == 404
    Run.objects.filter(pk=v2.pk).update(status=Run.Status.RUNNING)
    code, text = refused({"runs": [v1.pk, v2.pk]})
    assert code == 400 and "still running" in text
    elsewhere = Project.objects.create(organization=workspace.org, name="Other")
    Run.objects.filter(pk=v2.pk).update(status=Run.Status.SUCCEEDED, project=elsewhere)
    code, text = refused({"runs": [v1.pk, v2.pk]})
    assert code == 400 and "different projects" in text
    assert Comparison.objects.count() == 0
    assert client.get("/api/comparisons/0").status_code in (404, 422)


@pytest.mark.parametrize(
    "threshold",
    [0, -0.2, 1.5, 1e308, float("nan"), float("inf"), "abc", "", None, [0.5], {"v": 1}],
)
def test_an_iou_threshold_outside_the_range_is_a_clear_4xx(
    two_reviewed_runs: tuple[Run, Run],
    workspace: Any,
    django_capture_on_commit_callbacks: Any,
    threshold: Any,
) -> None:
    v1, v2 = two_reviewed_runs
    client = logged_in(workspace.admin)
    body = {"runs": [v1.pk, v2.pk], "iou_threshold": threshold}
    response = create(client, django_capture_on_commit_callbacks, body)
    # 400 with the field named by the hub's check; 422 where the value is not
    # a number at all (the schema's own check names the field too).
    assert response.status_code in (400, 422), response.content
    assert "iou_threshold" in response.content.decode()
    form = client.post(
        f"/projects/{workspace.project.pk}/comparisons/",
        {"runs": [v1.pk, v2.pk], "iou_threshold": str(threshold)},
    )
    assert form.status_code == 400 or threshold in ("", None)
    assert Comparison.objects.filter(iou_threshold__gt=0.95).count() == 0


def test_runs_that_write_no_labels_and_other_organizations_runs_are_refused(
    two_reviewed_runs: tuple[Run, Run],
    workspace: Any,
    make_plugin: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    v1, _ = two_reviewed_runs
    client = logged_in(workspace.admin)
    export = Run.objects.create(
        organization=workspace.org,
        project=workspace.project,
        plugin=make_plugin(type=PluginType.EXPORT).plugin,
        status=Run.Status.SUCCEEDED,
    )
    response = create(
        client, django_capture_on_commit_callbacks, {"runs": [v1.pk, export.pk]}
    )
    assert response.status_code == 400
    assert "only Model and Batch Model runs" in response.json()["detail"]
    # A run of another organization is as unknown as a missing one (404), on
    # the API and on the project page's form.
    theirs = Run.objects.filter(pk=export.pk)
    theirs.update(
        organization=workspace.other_project.organization,
        project=workspace.other_project,
    )
    assert (
        create(
            client, django_capture_on_commit_callbacks, {"runs": [v1.pk, export.pk]}
        ).status_code
        == 404
    )
    form = client.post(
        f"/projects/{workspace.project.pk}/comparisons/", {"runs": [v1.pk, export.pk]}
    )
    assert form.status_code == 404
    assert (
        client.post(
            f"/projects/{workspace.project.pk}/comparisons/", {"runs": ["x", "1e9"]}
        ).status_code
        == 400
    )
    assert Comparison.objects.count() == 0


def test_the_api_reports_progress_while_it_waits_for_a_worker(
    two_reviewed_runs: tuple[Run, Run],
    workspace: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """No eager Celery here: the comparison waits for a worker, and the API
    says so (state, progress of total) until the task has run."""
    v1, v2 = two_reviewed_runs
    client = logged_in(workspace.admin)
    created = post_json(client, "/api/comparisons", {"runs": [v1.pk, v2.pk]})
    assert created.status_code == 202
    waiting = client.get(f"/api/comparisons/{created.json()['id']}").json()
    assert (waiting["state"], waiting["progress"], waiting["result"]) == (
        "pending",
        0,
        {},
    )
    compute_comparison(waiting["id"])  # the task's body, as a worker runs it
    done = client.get(f"/api/comparisons?project={workspace.project.pk}").json()[0]
    assert done["state"] == "done" and done["progress"] == done["total"] == 3
    face = done["result"]["runs"][0]["classes"]["face-box"]
    assert {"tp", "fp", "fn", "precision", "recall", "f1", "mean_iou", "ap"} <= set(
        face
    )


def test_one_pass_reading_gives_each_runs_answer_as_run_answers_does(
    two_reviewed_runs: tuple[Run, Run], workspace: Any
) -> None:
    """evaluation/written.py (every run at once, only the wanted answers
    decoded) against runs/run_answers.py (one run at a time) on a history with
    a run writing twice, an undo, and changes that recorded no replaced answer."""
    v1, v2 = two_reviewed_runs
    camera = Task.objects.get(asset=workspace.asset("camera"))
    coins = Task.objects.get(asset=workspace.asset("coins"))
    later = {"tools": [{"objectId": "late", "schemaId": "face-box"}]}
    # v1 writes the camera again after the review: its later write is its
    # answer there, which nothing replaced since (the task's answer).
    TaskEvent.objects.create(
        task=camera,
        name=events.ANSWER_WRITTEN,
        data={"run": v1.pk, "previousAnswer": camera.answer},
    )
    Task.objects.filter(pk=camera.pk).update(answer=later)
    # A change that recorded no replaced answer does not end v1's answer there.
    TaskEvent.objects.create(task=camera, name=events.TASK_SENT_BACK, data={})
    # On coins, an undo after the review: it recorded what it replaced.
    TaskEvent.objects.create(
        task=coins,
        name=events.ANSWER_RESTORED,
        data={"run": v2.pk, "previousAnswer": {"tools": [], "undone": True}},
    )
    ids = list(
        Task.objects.filter(project=workspace.project).values_list("pk", flat=True)
    )

    first, second = answers_written([v1.pk, v2.pk], ids)

    for run, found in ((v1, first), (v2, second)):
        expected = {t: answer for t, (answer, _) in run_answers(run, ids).items()}
        assert found == expected, run
    assert first[camera.pk] == later
    assert len(first) == len(second) == len(ASSETS)
