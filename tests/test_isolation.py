"""Organizations stay apart: an outsider gets 404 on everything of acme's, and a
job's apiKey works only on its run's project and only while the run lasts."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from plugins_app.exports.uploads import upload_grant, upload_store
from plugins_app.hosted.models import HostedCode
from plugins_app.plugins.models import Plugin, PluginInstance, PluginType
from plugins_app.runs.creation import RunRequest, run_create
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.models import Run, RunApiKey
from plugins_app.runs.responses import item_respond
from plugins_app.runs.sweep import runs_sweep
from plugins_app.wire.models import OutboxMessage
from tests.builders import connect_instance, new_run, pass_deadline

CHANNEL = "test!abc"


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def bearer(username: str) -> Client:
    out = io.StringIO()
    call_command("create_api_token", username, stdout=out)
    token = json.loads(out.getvalue())["token"]
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def leased_run(workspace: Any, plugin: Any, external_id: str = "astronaut") -> Run:
    """A run whose job went out: returns the run; its job is in the outbox."""
    connect_instance(plugin, CHANNEL, address="127.0.0.1:1")
    run = new_run(workspace, plugin, external_id, user=workspace.admin)
    assert dispatch_pending(plugin.pk) == 1
    return run


def job_of(run: Run) -> dict[str, Any]:
    session = run.items.get().session
    for row in OutboxMessage.objects.filter(method="send", target=CHANNEL):
        if row.message["job"]["session"] == session:
            return row.message["job"]
    raise AssertionError("no job sent for this run")


@pytest.fixture
def acme(workspace: Any, make_plugin: Any) -> dict[str, Any]:
    plugin = make_plugin().plugin
    run = leased_run(workspace, plugin)
    asset = workspace.asset("astronaut")
    # A file an export plugin uploaded for this run (the run page's download).
    grant = upload_grant(run, name="acme-export.zip", file_type="exports")
    upload_store(grant.token, io.BytesIO(b"face-box secrets"), declared=None)
    return {"plugin": plugin, "run": run, "asset": asset, "upload": grant.upload}


def acme_pages(workspace: Any, acme: dict[str, Any]) -> list[str]:
    project, plugin = workspace.project.pk, acme["plugin"].pk
    asset = acme["asset"].pk
    return [
        f"/projects/{project}/",
        f"/projects/{project}/assets/{asset}/",
        f"/projects/{project}/assets/{asset}/image",
        f"/plugins/{plugin}/",
        f"/plugins/{plugin}/code/status/",
        f"/projects/{project}/plugins/{plugin}/run/",
        f"/projects/{project}/plugins/{plugin}/run/?asset=astronaut",
        f"/runs/{acme['run'].pk}/",
        f"/projects/{project}/tasks/{acme['asset'].task.pk}/",
        f"/projects/{project}/workflow/",
        f"/runs/{acme['run'].pk}/exports/{acme['upload'].pk}/",
    ]


def test_it_shows_acmes_pages_to_acme(workspace: Any, acme: dict[str, Any]) -> None:
    """The control for the 404s below: the same URLs work for a member."""
    client = client_for(workspace.annotator)

    for url in acme_pages(workspace, acme):
        assert client.get(url).status_code == 200, url


def test_it_answers_404_to_an_outsider_on_every_page(
    workspace: Any, acme: dict[str, Any]
) -> None:
    client = client_for(workspace.outsider)

    for url in acme_pages(workspace, acme):
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"face-box" not in response.content


def test_it_answers_404_to_an_outsider_managing_acmes_plugin(
    workspace: Any, acme: dict[str, Any]
) -> None:
    plugin = acme["plugin"]
    old_hash = plugin.secret_hash
    client = client_for(workspace.outsider)  # an admin, of the other organization

    assert client.get(f"/plugins/{plugin.pk}/edit/").status_code == 404
    edited = client.post(
        f"/plugins/{plugin.pk}/edit/",
        {"name": "Hijacked", "type": "model", "class_names_text": "x"},
    )
    assert edited.status_code == 404
    assert client.post(f"/plugins/{plugin.pk}/rotate/").status_code == 404
    uploaded = client.post(
        f"/plugins/{plugin.pk}/code/",
        {"code": SimpleUploadedFile("main.py", b"x = 1"), "memory_limit_mb": 256},
    )
    assert uploaded.status_code == 404
    assert not HostedCode.objects.filter(plugin=plugin).exists()
    plugin.refresh_from_db()
    assert plugin.name != "Hijacked" and plugin.secret_hash == old_hash


def test_it_answers_404_to_an_outsider_editing_acmes_workflow_and_presets(
    workspace: Any, acme: dict[str, Any]
) -> None:
    from plugins_app.plugins.models import Preset

    project, plugin = workspace.project, acme["plugin"]
    preset = Preset.objects.create(project=project, plugin=plugin, name="p")
    workflow = list(project.workflow)
    client = client_for(workspace.outsider)  # an admin, of the other organization
    base = f"/projects/{project.pk}"

    posts = {
        f"{base}/workflow/stages/": {"name": "Bot", "plugin": plugin.pk},
        f"{base}/workflow/remove/": {"stage": "Label"},
        f"{base}/workflow/retry/": {"stage": "Label", "mode": "all"},
        f"{base}/presets/{preset.pk}/delete/": {},
    }
    for url, data in posts.items():
        assert client.post(url, data).status_code == 404, url
    dialog = f"{base}/plugins/{plugin.pk}/run/"
    assert client.get(dialog, {"preset": preset.pk}).status_code == 404
    project.refresh_from_db()
    assert project.workflow == workflow
    assert Preset.objects.filter(pk=preset.pk).exists()


def test_it_answers_404_to_an_outsider_posting_a_run(
    workspace: Any, acme: dict[str, Any]
) -> None:
    before = Run.objects.count()
    url = f"/projects/{workspace.project.pk}/plugins/{acme['plugin'].pk}/run/"

    response = client_for(workspace.outsider).post(
        url, {"external_ids": "coins", "config_json": "{}"}, HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 404
    assert Run.objects.count() == before


def test_it_answers_404_for_acmes_asset_under_the_outsiders_project(
    workspace: Any, acme: dict[str, Any]
) -> None:
    """Even through a project the outsider may see, acme's asset ids stay hidden."""
    theirs = workspace.other_project.pk
    client = client_for(workspace.outsider)

    assert client.get(f"/projects/{theirs}/").status_code == 200
    asset = acme["asset"].pk
    assert client.get(f"/projects/{theirs}/assets/{asset}/").status_code == 404
    assert client.get(f"/projects/{theirs}/assets/{asset}/image").status_code == 404


def test_it_keeps_acmes_runs_and_plugins_out_of_the_outsiders_lists(
    workspace: Any, acme: dict[str, Any]
) -> None:
    client = client_for(workspace.outsider)
    run, plugin = acme["run"], acme["plugin"]

    runs = client.get("/runs/").content.decode()
    filtered = client.get(f"/runs/?project={workspace.project.pk}").content.decode()
    plugins = client.get("/plugins/").content.decode()
    home = client.get("/").content.decode()

    assert f'href="/runs/{run.pk}/"' not in runs
    assert "No runs yet." in runs and "No runs match these filters." in filtered
    assert f'href="/runs/{run.pk}/"' not in filtered
    assert plugin.public_id not in plugins and plugin.name not in plugins
    assert f'href="/projects/{workspace.project.pk}/"' not in home
    assert f'href="/runs/{run.pk}/"' not in home
    # And the member sees them (the control).
    member = client_for(workspace.annotator).get("/runs/").content.decode()
    assert f'href="/runs/{run.pk}/"' in member


def test_it_answers_404_to_an_outsider_on_the_api(
    workspace: Any, acme: dict[str, Any]
) -> None:
    outsider, member = bearer("charlie"), bearer("bob")
    run, plugin = acme["run"], acme["plugin"]
    urls = [
        f"/api/plugins/{plugin.pk}",
        f"/api/plugins/{plugin.pk}/code",
        f"/api/runs/{run.pk}",
        f"/api/runs/{run.pk}/logs",
        f"/api/tasks/{acme['asset'].task.pk}",
        f"/api/tasks/{acme['asset'].task.pk}/events",
        f"/api/projects/{workspace.project.pk}/tasks",
    ]

    for url in urls:
        assert member.get(url).status_code == 200, url
        assert outsider.get(url).status_code == 404, url
    assert outsider.post(f"/api/plugins/{plugin.pk}/rotate-secret").status_code == 404
    upload = {"code": SimpleUploadedFile("main.py", b"x = 1")}
    assert outsider.post(f"/api/plugins/{plugin.pk}/code", upload).status_code == 404
    assert [p["id"] for p in outsider.get("/api/projects").json()] == [
        workspace.other_project.pk
    ]
    assert outsider.get("/api/plugins").json() == []
    assert outsider.get("/api/runs").json() == []
    assert outsider.get(f"/api/runs?project={workspace.project.pk}").json() == []
    created = outsider.post(
        "/api/runs",
        json.dumps(
            {
                "plugin_id": plugin.pk,
                "project_id": workspace.project.pk,
                "external_ids": ["coins"],
            }
        ),
        content_type="application/json",
    )
    assert created.status_code == 404
    assert Run.objects.count() == 1


def test_it_does_not_run_acmes_plugin_on_the_outsiders_project(
    workspace: Any, acme: dict[str, Any]
) -> None:
    response = bearer("charlie").post(
        "/api/runs",
        json.dumps(
            {
                "plugin_id": acme["plugin"].pk,
                "project_id": workspace.other_project.pk,
                "external_ids": ["coins"],
            }
        ),
        content_type="application/json",
    )

    assert response.status_code == 404
    assert Run.objects.count() == 1


# --- the job's apiKey -------------------------------------------------------------
def v2(api_key: str, path: str) -> Any:
    return Client().get(f"/v2/{path}", HTTP_APIKEY=api_key)


def test_it_mints_a_job_api_key_stored_hashed(
    workspace: Any, acme: dict[str, Any]
) -> None:
    job = job_of(acme["run"])

    assert job["projectId"] == str(workspace.project.pk)
    key = RunApiKey.objects.get(run=acme["run"])
    assert len(job["apiKey"]) >= 32
    assert job["apiKey"] not in key.key_hash
    assert key.is_valid()


def test_it_accepts_a_job_api_key_on_its_own_project(
    workspace: Any, acme: dict[str, Any]
) -> None:
    key = job_of(acme["run"])["apiKey"]
    project = workspace.project.pk

    detail = v2(key, f"project/{project}")
    assets = v2(key, f"project/{project}/assets?limit=100")

    assert detail.status_code == 200
    assert detail.json()["data"]["project"]["_id"] == str(project)
    assert assets.status_code == 200
    assert assets.json()["data"]["total"] == workspace.project.assets.count()
    ids = {int(a["_id"]) for a in assets.json()["data"]["assets"]}
    assert ids == set(workspace.project.assets.values_list("pk", flat=True))


def test_it_refuses_a_job_api_key_on_another_project(
    workspace: Any, acme: dict[str, Any]
) -> None:
    key = job_of(acme["run"])["apiKey"]
    theirs = workspace.other_project.pk

    detail = v2(key, f"project/{theirs}")
    assets = v2(key, f"project/{theirs}/assets")

    assert detail.status_code == 403
    assert assets.status_code == 403
    assert detail.json()["status"] == "fail"
    assert "Theirs" not in detail.content.decode()
    other_task = workspace.other_project.tasks.first()
    assert v2(key, f"task/{other_task.pk}").status_code == 404


def test_it_refuses_a_missing_or_unknown_api_key(
    workspace: Any, acme: dict[str, Any]
) -> None:
    project = workspace.project.pk

    assert Client().get(f"/v2/project/{project}").status_code == 401
    assert v2("0" * 64, f"project/{project}").status_code == 401


def finish_by_error(run: Run) -> None:
    item = run.items.get()
    assert item_respond(
        session=item.session, payload={"error": 1}, channel_name=CHANNEL
    )


def finish_by_timeout(run: Run) -> None:
    Plugin.objects.filter(pk=run.plugin_id).update(max_attempts=1)
    pass_deadline(run)
    assert runs_sweep()["timed_out"] == 1


def finish_by_answer(run: Run) -> None:
    item = run.items.get()
    answer = {
        "objects": [
            {
                "schemaId": "face-box",
                "bounding-box": {"x": 1, "y": 2, "width": 3, "height": 4},
            }
        ]
    }
    outcome = item_respond(
        session=item.session, payload={"response": answer}, channel_name=CHANNEL
    )
    assert outcome == "done"


@pytest.mark.parametrize(
    ("finish", "status"),
    [
        (finish_by_answer, Run.Status.SUCCEEDED),
        (finish_by_error, Run.Status.FAILED),
        (finish_by_timeout, Run.Status.TIMED_OUT),
    ],
    ids=["answered", "failed", "timed-out"],
)
def test_it_refuses_a_job_api_key_after_its_run_finished(
    workspace: Any, acme: dict[str, Any], finish: Any, status: str
) -> None:
    run = acme["run"]
    key = job_of(run)["apiKey"]
    project = workspace.project.pk
    assert v2(key, f"project/{project}").status_code == 200

    finish(run)

    run.refresh_from_db()
    assert run.status == status
    assert RunApiKey.objects.get(run=run).revoked_at is not None
    assert v2(key, f"project/{project}").status_code == 401
    assert v2(key, f"project/{project}/assets").status_code == 401


def test_it_keeps_a_key_valid_while_another_run_of_the_plugin_finishes(
    workspace: Any, acme: dict[str, Any]
) -> None:
    first = acme["run"]
    second = leased_run(workspace, acme["plugin"], "coins")
    first_key, second_key = job_of(first)["apiKey"], job_of(second)["apiKey"]
    assert first_key != second_key

    finish_by_error(first)

    project = workspace.project.pk
    assert v2(first_key, f"project/{project}").status_code == 401
    assert v2(second_key, f"project/{project}").status_code == 200


def test_it_refuses_an_expired_job_api_key(
    workspace: Any, acme: dict[str, Any]
) -> None:
    key = job_of(acme["run"])["apiKey"]
    RunApiKey.objects.filter(run=acme["run"]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    assert v2(key, f"project/{workspace.project.pk}").status_code == 401


def test_it_does_not_import_labels_into_another_project(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.BATCH_MODEL).plugin
    PluginInstance.objects.create(plugin=plugin, channel_name=CHANNEL)
    run = run_create(
        RunRequest(
            plugin=plugin,
            project=workspace.project,
            user=workspace.admin,
            class_mapping={"face": "face-box"},
            config_json="{}",
            external_ids=[],
            batch_ids=[],
        ),
        dispatch=False,
    )
    assert dispatch_pending(plugin.pk) == 1
    key = job_of(run)["apiKey"]
    record = {
        "externalId": "astronaut",
        "objects": [
            {
                "schemaId": "face-box",
                "bounding-box": {"x": 1, "y": 1, "width": 2, "height": 2},
            }
        ],
    }

    response = Client().post(
        "/v2/import/labels",
        json.dumps(
            {"project": str(workspace.other_project.pk), "jsonContent": [record]}
        ),
        content_type="application/json",
        HTTP_APIKEY=key,
    )

    assert response.status_code == 403
    theirs = workspace.other_project.assets.get(external_id="astronaut").task
    assert theirs.answer == {}


def test_it_answers_404_to_an_outsider_submitting_or_reviewing_acmes_task(
    workspace: Any, acme: dict[str, Any]
) -> None:
    task = acme["asset"].task
    theirs = workspace.other_project.pk
    client = client_for(workspace.outsider)
    api = bearer("charlie")

    for project in (workspace.project.pk, theirs):
        base = f"/projects/{project}/tasks/{task.pk}/"
        assert client.get(base).status_code == 404
        assert client.post(base + "submit/", {"answer": "{}"}).status_code == 404
        assert client.post(base + "review/", {"verdict": "accept"}).status_code == 404
    for action, body in (("submit", {}), ("review", {"verdict": "accept"})):
        response = api.post(
            f"/api/tasks/{task.pk}/{action}",
            json.dumps(body),
            content_type="application/json",
        )
        assert response.status_code == 404
    task.refresh_from_db()
    assert not task.events.exists() and task.stage == "Label"
