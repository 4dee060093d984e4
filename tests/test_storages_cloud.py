"""Storages (encrypted credentials, scoped to projects), the REST calls File
Explorer and Markdown plugins make (/v2/storages, /v2/project/{id}/cloud,
/v2/batches/{id}), and the Run dialog of both types."""

from __future__ import annotations

import base64
import html
import json
import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client, TestCase

from plugins_app.plugins.models import PluginType
from plugins_app.runs.models import Run, WorkItem
from plugins_app.workspace.crypto import SecretUnreadable, derived_key
from plugins_app.workspace.models import Asset, Batch, Project, Storage, Task
from tests.builders import connect_instance
from tests.test_isolation import CHANNEL, client_for, job_of

pytestmark = pytest.mark.django_db


def make_storage(workspace: Any, project: Project | None = None, **kw: Any) -> Storage:
    storage = Storage(
        organization=kw.pop("organization", workspace.org),
        project=project,
        name=kw.pop("name", "Acme bucket"),
        provider=Storage.Provider.S3_COMPATIBLE,
        bucket="acme-data",
        region="us-east-1",
        endpoint_url="http://127.0.0.1:9",
    )
    storage.set_credentials(kw.pop("public", "AKIAACME"), kw.pop("private", "s3cr3t"))
    storage.save()
    return storage


def post_dialog(workspace: Any, plugin: Any, data: dict[str, Any]) -> Any:
    return client_for(workspace.annotator).post(
        f"/projects/{workspace.project.pk}/plugins/{plugin.pk}/run/",
        {"config_json": "{}", **data},
        HTTP_HX_REQUEST="true",
    )


def leased_job(workspace: Any, plugin: Any, data: dict[str, Any]) -> dict[str, Any]:
    """Run through the dialog with a (socketless) live instance: the job it sent."""
    connect_instance(plugin, CHANNEL, address="127.0.0.1:1")
    # The instance is free, so the run is leased in the transaction that
    # creates it and its job goes out when that commits.
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = post_dialog(workspace, plugin, data)
    assert "HX-Redirect" in response, response.content.decode()
    run = Run.objects.latest("id")
    assert run.items.get().state == WorkItem.State.LEASED
    return job_of(run)


def v2(key: str, method: str, path: str, body: Any = None) -> Any:
    client = Client()
    if method == "get":
        return client.get(f"/v2/{path}", HTTP_APIKEY=key)
    return client.post(
        f"/v2/{path}",
        json.dumps(body),
        content_type="application/json",
        HTTP_APIKEY=key,
    )


@pytest.fixture
def explorer(workspace: Any, make_plugin: Any) -> Any:
    return make_plugin(type=PluginType.FILE_EXPLORER, class_names=[]).plugin


@pytest.fixture
def markdown(workspace: Any, make_plugin: Any) -> Any:
    return make_plugin(type=PluginType.MARKDOWN, class_names=[]).plugin


# --- storages -------------------------------------------------------------------
def test_it_stores_storage_keys_encrypted(workspace: Any) -> None:
    make_storage(workspace, private="very-secret-key")

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM workspace_storage")
        row = " ".join(str(v) for v in cursor.fetchone())
    assert "very-secret-key" not in row and "AKIAACME" not in row
    assert Storage.objects.get().credentials() == {
        "publicKey": "AKIAACME",
        "privateKey": "very-secret-key",
    }


def test_it_says_clearly_when_the_key_changed(workspace: Any, settings: Any) -> None:
    storage = make_storage(workspace)
    settings.HUB_STORAGE_KEYS = [derived_key("another secret").decode()]

    with pytest.raises(SecretUnreadable, match="HUB_STORAGE_KEYS"):
        Storage.objects.get(pk=storage.pk).credentials()


def test_it_decrypts_old_keys_after_a_rotation(workspace: Any, settings: Any) -> None:
    storage = make_storage(workspace)
    old = derived_key(settings.SECRET_KEY).decode()
    settings.HUB_STORAGE_KEYS = [derived_key("new secret").decode(), old]

    assert Storage.objects.get(pk=storage.pk).credentials()["privateKey"] == "s3cr3t"


def test_it_hands_keys_only_to_runs_of_the_owning_project(
    workspace: Any, explorer: Any
) -> None:
    mine = make_storage(workspace, workspace.project, name="Mine")
    shared = make_storage(workspace, None, name="Org-wide")
    other_project = Project.objects.create(organization=workspace.org, name="Q")
    make_storage(workspace, other_project, name="Q only", private="q-secret")
    make_storage(
        workspace, organization=workspace.other_project.organization, name="Rival's"
    )
    job = leased_job(
        workspace, explorer, {"storage": mine.pk, "folder": "img/", "upload": "on"}
    )
    key = job["apiKey"]

    listed = v2(key, "get", "storages").json()["data"]["storages"]
    assert sorted(s["name"] for s in listed) == ["Mine", "Org-wide"]
    one = v2(key, "get", f"storages?_id={shared.pk}").json()["data"]["storages"]
    assert one[0]["privateKey"] == "s3cr3t" and one[0]["publicKey"] == "AKIAACME"
    q = Storage.objects.get(name="Q only").pk
    assert v2(key, "get", f"storages?_id={q}").json()["data"]["storages"] == []
    assert "q-secret" not in v2(key, "get", "storages").content.decode()


def test_the_file_explorer_job_carries_storage_and_folder(
    workspace: Any, explorer: Any
) -> None:
    storage = make_storage(workspace, workspace.project)

    job = leased_job(
        workspace,
        explorer,
        {"storage": storage.pk, "folder": "/img/", "files": "img/a.png\n"},
    )

    assert job["storageId"] == job["integrationId"] == str(storage.pk)
    assert (job["bucket"], job["folder"]) == ("acme-data", "img/")
    assert job["files"] == ["img/a.png"] and job["upload"] is False
    assert "s3cr3t" not in json.dumps(job)


def test_the_dialog_refuses_another_projects_storage(
    workspace: Any, explorer: Any
) -> None:
    other_project = Project.objects.create(organization=workspace.org, name="Q")
    theirs = make_storage(workspace, other_project)
    connect_instance(explorer, CHANNEL)

    response = post_dialog(workspace, explorer, {"storage": theirs.pk})

    assert "HX-Redirect" not in response
    assert "Select a valid choice" in response.content.decode()
    assert not Run.objects.exists()


# --- markdown -----------------------------------------------------------------------
def test_the_markdown_job_carries_the_csv_and_escaped_template(
    workspace: Any, markdown: Any
) -> None:
    csv_bytes = b"title,body\nHello,<b>x</b>\n"
    job = leased_job(
        workspace,
        markdown,
        {
            "csv_file": SimpleUploadedFile("docs.csv", csv_bytes, "text/csv"),
            "markdown_text": "# |title| & <i>|body|</i>",
        },
    )

    assert base64.b64decode(job["inputFile"]) == csv_bytes
    assert job["markdownText"] == "# |title| &amp; &lt;i&gt;|body|&lt;/i&gt;"
    assert job["configJSON"] == "{}"


def test_the_markdown_dialog_needs_a_csv_and_a_template(
    workspace: Any, markdown: Any
) -> None:
    connect_instance(markdown, CHANNEL)

    response = post_dialog(workspace, markdown, {"markdown_text": ""})

    page = response.content.decode()
    assert "HX-Redirect" not in response
    assert page.count("This field is required") == 2
    bad = post_dialog(
        workspace,
        markdown,
        {
            "csv_file": SimpleUploadedFile("x.csv", b"\xff\xfe\x00", "text/csv"),
            "markdown_text": "# |a|",
        },
    )
    assert "Upload a UTF-8 CSV file" in bad.content.decode()
    assert not Run.objects.exists()


# --- /v2/project/{id}/cloud and /v2/batches/{id} ------------------------------------
@pytest.fixture
def md_key(workspace: Any, markdown: Any) -> str:
    job = leased_job(
        workspace,
        markdown,
        {
            "csv_file": SimpleUploadedFile("d.csv", b"a\n1\n", "text/csv"),
            "markdown_text": "|a|",
        },
    )
    return job["apiKey"]


def test_it_creates_assets_tasks_and_batch_links_from_records(
    workspace: Any, md_key: str
) -> None:
    project = workspace.project.pk
    body = {
        "assets": [
            {"data": "# One", "externalId": "one.md", "batches": ["Batch A"]},
            {"data": "https://b.s3.x.amazonaws.com/k/two.png", "externalId": "k/two"},
        ],
        "uploadLocal": None,
        "priority": 0,
    }

    reply = v2(
        md_key,
        "post",
        f'project/{project}/cloud?batches=["{workspace.batch_b.pk}"]',
        body,
    )

    assert reply.status_code == 200 and reply.json()["status"] == "success"
    one = Asset.objects.get(project=workspace.project, external_id="one.md")
    two = Asset.objects.get(project=workspace.project, external_id="k/two")
    assert (one.kind, one.content) == (Asset.Kind.MARKDOWN, "# One")
    assert (two.kind, two.url) == (Asset.Kind.URL, body["assets"][1]["data"])
    assert set(one.batches.values_list("name", flat=True)) == {"Batch A", "Batch B"}
    assert list(two.batches.values_list("name", flat=True)) == ["Batch B"]
    assert Task.objects.filter(asset__in=[one, two]).count() == 2
    assert one.created_by_run == Run.objects.get()


def test_it_refuses_bad_records_and_writes_nothing(workspace: Any, md_key: str) -> None:
    before = Asset.objects.count()
    body = {
        "assets": [
            {"data": "# ok", "externalId": "fine.md"},
            {"data": "", "externalId": "empty.md"},
            {"data": "# dup", "externalId": "astronaut"},
            {"data": "# b", "externalId": "b.md", "batches": ["No such batch"]},
        ]
    }

    reply = v2(md_key, "post", f"project/{workspace.project.pk}/cloud", body)

    assert reply.status_code == 400 and reply.json()["status"] == "fail"
    assert "3 of 4" in reply.json()["message"]
    assert [e["index"] for e in reply.json()["errors"]] == [1, 2, 3]
    assert Asset.objects.count() == before
    log = Run.objects.get().log_lines.get(level="ERROR").message
    assert "already exists" in log and "No such batch" in log


def test_it_creates_batches_in_both_sdk_shapes_once(
    workspace: Any, md_key: str
) -> None:
    project = workspace.project.pk

    single = v2(md_key, "post", f"batches/{project}", {"name": "Week 1"})
    listed = v2(
        md_key,
        "post",
        f"batches/{project}",
        {
            "batches": [
                {"_id": str(workspace.batch_a.pk), "name": "Batch A"},
                {"name": "Week 2"},
            ]
        },
    )
    again = v2(md_key, "post", f"batches/{project}", {"name": "Week 1"})

    assert single.json()["data"]["project"]["name"] == "Week 1"
    assert (
        again.json()["data"]["project"]["_id"]
        == single.json()["data"]["project"]["_id"]
    )
    names = {b["name"] for b in listed.json()["data"]["project"]["batches"]}
    assert names == {"Batch A", "Batch B", "Week 1", "Week 2"}
    assert Batch.objects.filter(project=workspace.project).count() == 4
    detail = v2(md_key, "get", f"project/{project}").json()["data"]["project"]
    assert {"Week 1", "Week 2"} <= {b["name"] for b in detail["batches"]}
    page = client_for(workspace.annotator).get(f"/projects/{project}/").content.decode()
    assert "Week 1" in page and "Week 2" in page


def test_it_refuses_cloud_and_batches_on_another_project(
    workspace: Any, md_key: str
) -> None:
    theirs = workspace.other_project.pk
    before = (Asset.objects.count(), Batch.objects.count())

    cloud = v2(
        md_key,
        "post",
        f"project/{theirs}/cloud",
        {"assets": [{"data": "# x", "externalId": "x"}]},
    )
    batch = v2(md_key, "post", f"batches/{theirs}", {"name": "sneaky"})

    assert cloud.status_code == batch.status_code == 403
    assert (Asset.objects.count(), Batch.objects.count()) == before


def framed_markdown(page: str) -> str:
    """The document an asset page shows a markdown asset in: the srcdoc of a
    sandboxed iframe (escaped into the attribute)."""
    frame = re.search(r'<iframe [^>]*id="asset-markdown"[^>]*>', page)
    assert frame and " sandbox " in frame.group(0)
    srcdoc = re.search(r'srcdoc="([^"]*)"', frame.group(0))
    assert srcdoc
    return html.unescape(srcdoc.group(1))


def test_the_asset_page_renders_markdown_sanitized_in_a_sandbox(
    workspace: Any, md_key: str
) -> None:
    evil = "# Title\n\n<script>alert(1)</script>\n\n**bold** [x](javascript:alert(1))"
    v2(
        md_key,
        "post",
        f"project/{workspace.project.pk}/cloud",
        {"assets": [{"data": evil, "externalId": "evil.md"}]},
    )
    asset = Asset.objects.get(external_id="evil.md")

    page = (
        client_for(workspace.annotator)
        .get(f"/projects/{workspace.project.pk}/assets/{asset.pk}/")
        .content.decode()
    )

    # Sanitized: markup kept, the script and the link target gone.
    document = framed_markdown(page)
    assert "<h1>Title</h1>" in document and "<strong>bold</strong>" in document
    assert "<script" not in document and "alert(1)</" not in document
    assert 'href="javascript:' not in document
    assert "<script>alert(1)" not in page


# --- the Storages page ----------------------------------------------------------------
def test_an_admin_adds_a_storage_whose_keys_are_never_shown(workspace: Any) -> None:
    admin = client_for(workspace.admin)
    form = {
        "name": "Scans",
        "provider": "aws",
        "bucket": "acme-scans",
        "region": "eu-west-1",
        "project": workspace.project.pk,
        "public_key": "AKIASCANS",
    }

    half = admin.post("/storages/new/", form, HTTP_HX_REQUEST="true")
    done = admin.post(
        "/storages/new/", {**form, "private_key": "scan-secret"}, HTTP_HX_REQUEST="true"
    )
    page = admin.get("/storages/").content.decode()

    assert "Give both the access key ID and the secret" in half.content.decode()
    assert "HX-Redirect" in done
    storage = Storage.objects.get(name="Scans")
    assert storage.organization == workspace.org
    assert storage.credentials() == {
        "publicKey": "AKIASCANS",
        "privateKey": "scan-secret",
    }
    assert "acme-scans" in page and "scan-secret" not in page
    assert "AKIASCANS" not in page


def test_storages_stay_inside_their_organization(workspace: Any) -> None:
    storage = make_storage(workspace, workspace.project)
    rivals = Project.objects.get(pk=workspace.other_project.pk)
    outsider = client_for(workspace.outsider)

    foreign = outsider.post(
        "/storages/new/",
        {
            "name": "x",
            "provider": "aws",
            "bucket": "b",
            "project": workspace.project.pk,
            "public_key": "a",
            "private_key": "b",
        },
        HTTP_HX_REQUEST="true",
    )

    assert "Select a valid choice" in foreign.content.decode()
    assert outsider.post(f"/storages/{storage.pk}/delete/").status_code == 404
    assert "Acme bucket" not in outsider.get("/storages/").content.decode()
    member_page = client_for(workspace.annotator).get("/storages/").content.decode()
    assert "Only your organization's admins" in member_page
    assert "Acme bucket" not in member_page
    assert client_for(workspace.annotator).get("/storages/new/").status_code == 403
    assert Storage.objects.filter(pk=storage.pk).exists()
    assert not Storage.objects.filter(project=rivals).exists()
    client_for(workspace.admin).post(f"/storages/{storage.pk}/delete/")
    assert not Storage.objects.filter(pk=storage.pk).exists()


def test_the_json_api_takes_a_file_explorer_run_and_checks_its_storage(
    workspace: Any, explorer: Any
) -> None:
    from tests.test_isolation import bearer

    mine = make_storage(workspace, workspace.project)
    other_project = Project.objects.create(organization=workspace.org, name="Q")
    theirs = make_storage(workspace, other_project)
    connect_instance(explorer, CHANNEL)
    api = bearer("bob")

    def post(storage_id: int) -> Any:
        body = {
            "plugin_id": explorer.pk,
            "project_id": workspace.project.pk,
            "inputs": {"storage_id": storage_id, "folder": "img/", "upload": True},
        }
        return api.post("/api/runs", json.dumps(body), "application/json")

    refused, created = post(theirs.pk), post(mine.pk)

    assert refused.status_code == 400 and "storage" in refused.json()["errors"]
    assert created.status_code == 201
    run = Run.objects.get(pk=created.json()["id"])
    assert run.inputs["bucket"] == "acme-data" and run.inputs["folder"] == "img/"
