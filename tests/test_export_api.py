"""Export runs through the hub's own endpoints (in process): the v3 export is
built from the chosen stages and batches of the run's project only, streamed
into a zip whose first member is NDJSON; a run's apiKey exports nothing of
another project; upload URLs are one-shot, expiring and bound to their run."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone

from plugins_app.exports.models import ExportSnapshot, ExportUpload
from plugins_app.exports.services import (
    export_storage,
    snapshot_build,
    snapshot_request,
)
from plugins_app.exports.tasks import expire_export_snapshots
from plugins_app.plugins.models import PluginType
from plugins_app.runs.ledger import run_cancel
from plugins_app.runs.models import Run, WorkItem
from plugins_app.runs.responses import item_respond
from plugins_app.web.fragments import render_run_status
from plugins_app.workspace.lifecycle import task_move, task_review, task_submit
from plugins_app.workspace.models import Task
from tests.builders import connect_instance, leased_project_run


@pytest.fixture
def export_run(workspace: Any, make_plugin: Any) -> tuple[Run, dict[str, Any]]:
    plugin = make_plugin(type=PluginType.EXPORT).plugin
    return leased_project_run(workspace, plugin, stages=["Complete"])


def v2(job: dict[str, Any], path: str, **params: Any) -> Any:
    return Client().get(f"/v2/{path}", params, HTTP_APIKEY=job["apiKey"])


def put(url: str, body: bytes) -> Any:
    """The SDK's PUT: no apikey, no content type."""
    path = url.split("://", 1)[1].split("/", 1)[1]
    return Client().generic("PUT", f"/{path}", body)


def grant(job: dict[str, Any], name: str = "out.zip") -> str:
    response = v2(
        job, "getUploadUrl", name=name, project=job["projectId"], type="exports"
    )
    assert response.status_code == 200, response.content
    return response.json()["data"]["uploadUrl"]


# --- the job and the export ----------------------------------------------------
def test_the_export_job_carries_the_chosen_stages_and_batches(
    export_run: tuple[Run, dict[str, Any]],
) -> None:
    run, job = export_run
    assert job["stage"] == ["Complete"]
    assert job["batches"] == [] and job["configJSON"] == "{}"
    assert job["projectId"] == str(run.project_id)


def test_the_build_streams_only_the_runs_project_stages_and_batches(
    workspace: Any, export_run: tuple[Run, dict[str, Any]]
) -> None:
    run, _ = export_run
    tasks = list(Task.objects.filter(project=workspace.project).order_by("pk"))
    for index, task in enumerate(tasks):
        task.stage = ["Complete", "Review", "Label"][index % 3]
        task.answer = {
            "tools": [
                {
                    "schemaId": "face-box",
                    "bounding-box": {"x": 1, "y": 2, "width": 3, "height": 4},
                }
            ],
            "classifications": [],
            "relations": [],
        }
        task.save()
    Task.objects.filter(project=workspace.other_project).update(stage="Complete")
    snapshot, _ = snapshot_request(
        run,
        stages=["Complete", "Review"],
        batch_ids=[str(workspace.batch_b.pk)],
        base_url="http://hub.test/",
        path="/v2/export",
    )
    snapshot_build(snapshot.pk)
    snapshot.refresh_from_db()
    assert snapshot.state == ExportSnapshot.State.READY
    with export_storage().open(snapshot.file, "rb") as stored:
        archive = zipfile.ZipFile(io.BytesIO(stored.read()))
    first = archive.namelist()[0]
    assert first.endswith(".ndjson")
    raw = archive.read(first)
    lines = [json.loads(line) for line in raw.splitlines()]
    want = Task.objects.filter(
        project=workspace.project,
        stage__in=["Complete", "Review"],
        asset__batches=workspace.batch_b,
    )
    assert sorted(int(line["task"]["taskId"]) for line in lines) == sorted(
        want.values_list("pk", flat=True)
    )
    assert raw.count(b"\n") == len(lines) == snapshot.lines > 0  # 1.3.22 counts \n
    line = lines[0]
    assert line["asset"].startswith("http://hub.test/v2/files/")
    assert line["task"]["tools"][0]["title"] == "Face"
    assert line["task"]["stage"] in ("Complete", "Review")


def exported_lines(run: Run, stages: list[str]) -> list[dict[str, Any]]:
    snapshot, _ = snapshot_request(
        run, stages=stages, batch_ids=[], base_url="http://hub.test/", path="/v2/export"
    )
    snapshot_build(snapshot.pk)
    snapshot.refresh_from_db()
    with export_storage().open(snapshot.file, "rb") as stored:
        archive = zipfile.ZipFile(io.BytesIO(stored.read()))
    ndjson = archive.read(archive.namelist()[0])
    return [json.loads(line) for line in ndjson.splitlines()]


def test_each_line_tells_who_did_what_in_each_stage(
    workspace: Any, export_run: tuple[Run, dict[str, Any]]
) -> None:
    run, _ = export_run
    labeled = workspace.asset("astronaut").task
    by_plugin = workspace.asset("coins").task
    for task in (labeled, by_plugin):
        task.stage, task.status = "Label", Task.Status.TODO
        task.save()
    box = {
        "schemaId": "face-box",
        "objectId": "b1",
        "bounding-box": {"x": 1, "y": 2, "width": 3, "height": 4},
    }
    answer = {"tools": [box], "classifications": [], "relations": []}
    task_submit(labeled, user=workspace.annotator, answer=answer)
    task_review(labeled, user=workspace.admin, accept=True)
    # What a Plugin stage's move records: the plugin, and the answer it wrote.
    task_move(
        by_plugin,
        to_stage="Complete",
        actor_label="plugin Detector",
        data={"run": run.pk, "answer": answer},
    )

    lines = {line["externalId"]: line for line in exported_lines(run, ["Complete"])}
    history = lines["astronaut"]["task"]["stageHistory"]
    assert [(h["stage"], h["completedBy"]) for h in history] == [
        ("Label", "bob"),
        ("Review", "alice"),
    ]
    assert history[0]["tools"][0]["title"] == "Face"
    assert history[0]["tools"][0]["objectId"] == "b1"
    assert all(h["duration"] >= 0 and h["completedAt"] for h in history)
    assert lines["astronaut"]["task"]["updatedBy"] == "bob"
    plugin_line = lines["coins"]["task"]
    assert [(h["stage"], h["completedBy"]) for h in plugin_line["stageHistory"]] == [
        ("Label", "plugin Detector")
    ]
    assert plugin_line["stageHistory"][0]["tools"][0]["objectId"] == "b1"
    assert plugin_line["updatedBy"] == "plugin Detector"
    # A task nobody touched has an empty history, as before.
    untouched = exported_lines(run, ["Start", "Label", "Review"])
    assert untouched and all(line["task"]["stageHistory"] == [] for line in untouched)


def test_the_export_waits_for_the_build_and_says_when_no_worker_builds_it(
    export_run: tuple[Run, dict[str, Any]], settings: Any
) -> None:
    _, job = export_run
    settings.HUB_EXPORT_WAIT_SECONDS = 0
    response = v2(job, "export", project=job["projectId"], stage='["Complete"]')
    assert response.status_code == 504
    assert "not built within 0 s" in response.json()["message"]


def test_the_web_process_builds_the_export_when_no_worker_takes_it(
    transactional_db: Any, export_run: tuple[Run, dict[str, Any]], settings: Any
) -> None:
    # Every Celery worker may be busy holding REST connector jobs, one of them
    # this very plugin's: waiting for a worker would never end.
    run, job = export_run
    settings.HUB_EXPORT_BUILD_HERE_AFTER_SECONDS = 0
    settings.HUB_EXPORT_WAIT_SECONDS = 5  # no worker runs in this test
    response = v2(job, "export", project=job["projectId"], stage='["Complete"]')
    assert response.status_code == 200, response.content
    snapshot = ExportSnapshot.objects.get(run=run)
    assert snapshot.state == ExportSnapshot.State.READY
    notes = list(run.log_lines.values_list("message", flat=True))
    assert any("started by the web process" in n for n in notes), notes
    # The worker that takes the queued build later finds it done.
    assert snapshot_build(snapshot.pk) is False
    snapshot.refresh_from_db()
    assert snapshot.state == ExportSnapshot.State.READY
    assert Client().get(response.json()["data"]["exportPath"]).status_code == 200


def test_a_built_export_link_works_without_credentials_until_it_expires(
    export_run: tuple[Run, dict[str, Any]],
) -> None:
    run, _ = export_run
    snapshot, token = snapshot_request(
        run, stages=[], batch_ids=[], base_url="http://hub.test", path="/v2/export"
    )
    assert Client().get(f"/v2/exportFiles/{token}").status_code == 404  # not built
    snapshot_build(snapshot.pk)
    got = Client().get(f"/v2/exportFiles/{token}")
    assert got.status_code == 200
    zipfile.ZipFile(io.BytesIO(b"".join(got.streaming_content))).testzip()
    ExportSnapshot.objects.filter(pk=snapshot.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert Client().get(f"/v2/exportFiles/{token}").status_code == 404


# --- authorization ---------------------------------------------------------------
def test_a_runs_key_cannot_export_another_project(
    workspace: Any, export_run: tuple[Run, dict[str, Any]]
) -> None:
    run, job = export_run
    theirs = workspace.other_project.pk
    for path in ("export", "exportV3"):
        assert v2(job, path, project=theirs).status_code == 403
    assert (
        v2(
            job, "getUploadUrl", name="x.zip", project=theirs, type="exports"
        ).status_code
        == 403
    )
    assert not ExportSnapshot.objects.exists() and not ExportUpload.objects.exists()
    assert Client().get("/v2/export", {"project": run.project_id}).status_code == 401


def test_an_unknown_batch_is_refused_with_a_clear_message(
    export_run: tuple[Run, dict[str, Any]],
) -> None:
    _, job = export_run
    response = v2(job, "export", project=job["projectId"], batches='["999999"]')
    assert response.status_code == 400
    assert "999999" in response.json()["message"]
    assert not ExportSnapshot.objects.exists()


def test_a_finished_runs_key_can_neither_export_nor_ask_for_upload_urls(
    workspace: Any, export_run: tuple[Run, dict[str, Any]]
) -> None:
    run, job = export_run
    url = grant(job)
    run_cancel(run, by=workspace.annotator)
    assert v2(job, "export", project=job["projectId"]).status_code == 401
    assert (
        v2(
            job, "getUploadUrl", name="x", project=job["projectId"], type="exports"
        ).status_code
        == 401
    )
    # The grant made before the run ended dies with the run.
    assert put(url, b"late").status_code == 410
    assert not ExportUpload.objects.filter(uploaded_at__isnull=False).exists()


def test_an_upload_url_is_used_once_and_only_for_its_run(
    workspace: Any, make_plugin: Any, export_run: tuple[Run, dict[str, Any]]
) -> None:
    run, job = export_run
    other_run, other_job = leased_project_run(
        workspace, make_plugin(type=PluginType.EXPORT, name="other").plugin
    )
    url = grant(job, "../../etc/passwd")
    assert "?" not in url and "&" not in url
    # getSignedUrl: the SDK passes the upload URL unencoded; another run's key
    # cannot turn this run's upload into a link.
    refused = v2(
        other_job, "getSignedUrl", name=url, project=job["projectId"], type="exports"
    )
    assert refused.status_code == 404
    signed = v2(job, "getSignedUrl", name=url, project=job["projectId"], type="exports")
    assert signed.status_code == 200
    signed_url = signed.json()["data"]["signedUrl"]
    link = "/" + signed_url.split("://", 1)[1].split("/", 1)[1]
    assert Client().get(link).status_code == 404  # nothing uploaded yet

    assert put(url, b"PK-first").status_code == 200
    # The signed link is a capability: no apikey, no login.
    fetched = Client().get(link)
    assert fetched.status_code == 200
    assert b"".join(fetched.streaming_content) == b"PK-first"
    assert Client().get(link[:-2] + "xx").status_code == 404  # tampered
    with override_settings(HUB_SIGNED_URL_SECONDS=-1):
        assert Client().get(link).status_code == 404  # expired
    again = put(url, b"PK-second")
    assert again.status_code == 409
    upload = ExportUpload.objects.get(run=run)
    assert upload.name == "passwd" and upload.size == len(b"PK-first")
    with export_storage().open(upload.file, "rb") as stored:
        assert stored.read() == b"PK-first"

    # The other run cannot claim this run's file as its result.
    other_item = other_run.items.get()
    assert (
        item_respond(
            session=other_item.session,
            payload={
                "export": True,
                "response": signed_url,
                "session": other_item.session,
            },
            channel_name=other_item.instance.channel_name,
        )
        == "invalid"
    )
    item = run.items.get()
    assert (
        item_respond(
            session=item.session,
            payload={"export": True, "response": signed_url, "session": item.session},
            channel_name=item.instance.channel_name,
        )
        == "done"
    )
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    assert WorkItem.objects.get(pk=other_item.pk).state == WorkItem.State.FAILED


def test_an_expired_upload_url_stores_nothing(
    export_run: tuple[Run, dict[str, Any]],
) -> None:
    _, job = export_run
    url = grant(job)
    ExportUpload.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = put(url, b"too late")
    assert response.status_code == 410
    assert "expired" in response.json()["message"]
    assert ExportUpload.objects.get().uploaded_at is None


def test_an_upload_over_the_limit_is_refused(
    export_run: tuple[Run, dict[str, Any]], settings: Any
) -> None:
    _, job = export_run
    settings.HUB_EXPORT_MAX_UPLOAD_BYTES = 10
    response = put(grant(job), b"x" * 11)
    assert response.status_code == 413
    assert "HUB_EXPORT_MAX_UPLOAD_BYTES" in response.json()["message"]
    assert ExportUpload.objects.get().uploaded_at is None


def test_only_export_uploads_are_served(export_run: tuple[Run, dict[str, Any]]) -> None:
    _, job = export_run
    response = v2(
        job, "getUploadUrl", name="b.png", project=job["projectId"], type="brushes"
    )
    assert response.status_code == 400
    assert "exports" in response.json()["message"]


def test_the_run_dialog_refuses_a_stage_the_project_does_not_have(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.EXPORT).plugin
    client = Client()
    client.force_login(workspace.annotator)
    url = f"/projects/{workspace.project.pk}/plugins/{plugin.pk}/run/"
    page = client.get(url).content.decode()
    for stage in ("Label", "Review", "Complete"):
        assert f'value="{stage}"' in page
    response = client.post(
        url, {"stages": ["Nope"], "config_json": "{}"}, HTTP_HX_REQUEST="true"
    )
    assert "Nope" in response.content.decode()
    assert not Run.objects.exists()


def test_the_json_api_starts_an_export_run_with_its_stages(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.EXPORT).plugin
    connect_instance(plugin, "test!api-export")
    out = io.StringIO()
    call_command("create_api_token", workspace.annotator.username, stdout=out)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {json.loads(out.getvalue())['token']}")

    def post(stages: list[str]) -> Any:
        body = {
            "plugin_id": plugin.pk,
            "project_id": workspace.project.pk,
            "batch_ids": [workspace.batch_a.pk],
            "inputs": {"stages": stages},
        }
        return api.post("/api/runs", json.dumps(body), content_type="application/json")

    refused = post(["Shipped"])
    assert refused.status_code == 400
    assert "Shipped" in json.dumps(refused.json()["errors"])
    created = post(["Review", "Complete"])
    assert created.status_code == 201, created.content
    run = Run.objects.get(pk=created.json()["id"])
    assert run.inputs == {"stages": ["Review", "Complete"]}
    assert run.batch_ids == [workspace.batch_a.pk]


def test_expired_export_files_are_deleted_and_uploads_kept(
    export_run: tuple[Run, dict[str, Any]],
) -> None:
    run, job = export_run
    fresh, _ = snapshot_request(
        run, stages=[], batch_ids=[], base_url="http://x", path="/v2/export"
    )
    old, _ = snapshot_request(
        run, stages=[], batch_ids=[], base_url="http://x", path="/v2/export"
    )
    for snapshot in (fresh, old):
        snapshot_build(snapshot.pk)
        snapshot.refresh_from_db()
    put(grant(job), b"the user's file")
    upload = ExportUpload.objects.get(run=run)
    ExportSnapshot.objects.filter(pk=old.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert expire_export_snapshots() == 1
    storage = export_storage()
    assert not storage.exists(old.file) and storage.exists(fresh.file)
    assert storage.exists(upload.file)
    assert ExportSnapshot.objects.get(pk=old.pk).file == ""
    assert expire_export_snapshots() == 0


def test_the_live_run_section_offers_the_file_once_it_is_stored(
    export_run: tuple[Run, dict[str, Any]],
) -> None:
    """What the websocket pushes to a watching run page (web/fragments.py)."""
    run, job = export_run
    assert "run-export-files" not in render_run_status(run)
    put(grant(job, "boxes.zip"), b"PK")
    upload = ExportUpload.objects.get(run=run)
    html = render_run_status(run)
    assert f'href="/runs/{run.pk}/exports/{upload.pk}/"' in html
    assert "Download boxes.zip" in html
