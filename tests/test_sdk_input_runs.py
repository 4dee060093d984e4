"""File Explorer and Markdown runs with the real SDK (1.3.22 and 1.4.x) running
the example scripts: assets, batches and tasks created through the REST calls
the public samples make, and what the user sees on the project and asset pages.
The File Explorer lists a real S3-compatible server (moto's, on a free port)
with the keys it read from the hub."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from moto.server import ThreadedMotoServer

from plugins_app.plugins.models import PluginType
from plugins_app.runs.models import Run, RunLogLine
from plugins_app.workspace.models import Asset, Batch, Storage, Task
from tests.hub import free_port, wait_for
from tests.test_storages_cloud import framed_markdown

SDKS = ["1.3.22", "1.4"]


@pytest.fixture
def s3_url() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def run_dialog(workspace: Any, plugin: Any, data: dict[str, Any]) -> Run:
    client = Client()
    client.force_login(workspace.annotator)
    response = client.post(
        f"/projects/{workspace.project.pk}/plugins/{plugin.pk}/run/",
        {"config_json": "{}", **data},
        HTTP_HX_REQUEST="true",
    )
    assert "HX-Redirect" in response, response.content.decode()
    run = Run.objects.latest("id")
    wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, timeout=90, what="run")
    run.refresh_from_db()
    return run


def page(workspace: Any, url: str) -> str:
    client = Client()
    client.force_login(workspace.annotator)
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("sdk", SDKS)
def test_a_file_explorer_run_imports_a_bucket_folder(
    sdk: str, workspace: Any, make_plugin: Any, plugin_runner: Any, s3_url: str
) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_url,
        region_name="us-east-1",
        aws_access_key_id="AKIATEST",
        aws_secret_access_key="test-secret",
    )
    s3.create_bucket(Bucket="acme-data")
    for key in ("scans/a.png", "scans/b.png", "scans/deeper/c.png", "other/x.png"):
        s3.put_object(Bucket="acme-data", Key=key, Body=b"png")
    storage = Storage(
        organization=workspace.org,
        project=workspace.project,
        name="Scans",
        provider=Storage.Provider.S3_COMPATIBLE,
        bucket="acme-data",
        region="us-east-1",
        endpoint_url=s3_url,
    )
    storage.set_credentials("AKIATEST", "test-secret")
    storage.save()
    registered = make_plugin(type=PluginType.FILE_EXPLORER, class_names=[])
    process = plugin_runner("examples/file_explorer_plugin.py", registered, sdk=sdk)

    listing = run_dialog(
        workspace, registered.plugin, {"storage": storage.pk, "folder": "scans/"}
    )
    run = run_dialog(
        workspace,
        registered.plugin,
        {"storage": storage.pk, "folder": "scans/", "upload": "on"},
    )

    assert listing.status == Run.Status.SUCCEEDED, (listing.error, process.log())
    notes = " ".join(listing.log_lines.values_list("message", flat=True))
    assert "1 folder(s), 2 file(s): scans/deeper/, scans/a.png, scans/b.png" in notes
    assert run.status == Run.Status.SUCCEEDED, (run.error, process.log())
    created = Asset.objects.filter(created_by_run=run).order_by("external_id")
    assert [a.external_id for a in created] == ["scans/a.png", "scans/b.png"]
    assert {a.url for a in created} == {
        f"{s3_url}/acme-data/scans/a.png",
        f"{s3_url}/acme-data/scans/b.png",
    }
    assert {a.storage_id for a in created} == {storage.pk}
    assert Task.objects.filter(asset__in=created).count() == 2
    assert RunLogLine.objects.filter(
        run=run, message="Plugin session is ended!"
    ).exists()
    messages = list(run.log_lines.values_list("message", flat=True))
    assert "plugin finished: 2 assets are uploaded!" in messages
    project_page = page(workspace, f"/projects/{workspace.project.pk}/")
    assert "scans/a.png" in project_page and "scans/b.png" in project_page


CSV = (
    "title,body,batch\n"
    "Hello,<script>alert(1)</script> is **escaped**,Week 1\n"
    'Second,"a, b and c",Week 2\n'
    "Third,plain,Week 1\n"
)


@pytest.mark.parametrize("sdk", SDKS)
def test_a_markdown_run_creates_documents_and_batches(
    sdk: str, workspace: Any, make_plugin: Any, plugin_runner: Any
) -> None:
    registered = make_plugin(type=PluginType.MARKDOWN, class_names=[])
    process = plugin_runner("examples/markdown_plugin.py", registered, sdk=sdk)

    run = run_dialog(
        workspace,
        registered.plugin,
        {
            "csv_file": SimpleUploadedFile("docs.csv", CSV.encode(), "text/csv"),
            "markdown_text": "# |title| & more\n\n|body|",
            "config_json": '{"upload_batch_size": 2}',
        },
    )

    assert run.status == Run.Status.SUCCEEDED, (run.error, process.log())
    docs = Asset.objects.filter(created_by_run=run).order_by("external_id")
    assert [d.external_id for d in docs] == ["00000.md", "00001.md", "00002.md"]
    assert docs[0].content == (
        "# Hello & more\n\n<script>alert(1)</script> is **escaped**"
    )
    assert docs[1].content == "# Second & more\n\na, b and c"
    assert {d.kind for d in docs} == {Asset.Kind.MARKDOWN}
    week1 = Batch.objects.get(project=workspace.project, name="Week 1")
    assert set(week1.assets.values_list("external_id", flat=True)) == {
        "00000.md",
        "00002.md",
    }
    assert Batch.objects.filter(project=workspace.project, name="Week 2").exists()
    messages = list(run.log_lines.values_list("message", flat=True))
    assert "Files Uploaded: [3/2]" in messages and "Files Uploaded: [3/3]" in messages
    assert run.reported_progress == run.reported_total == 3
    assert any("All markdown files are uploaded!" in m for m in messages)
    shown = page(workspace, f"/projects/{workspace.project.pk}/assets/{docs[0].pk}/")
    document = framed_markdown(shown)
    assert "<h1>Hello &amp; more</h1>" in document
    assert "<script" not in document and "alert(1)" not in document
    assert "<script>alert(1)" not in shown
    project_page = page(workspace, f"/projects/{workspace.project.pk}/")
    assert "Week 1" in project_page and "00002.md" in project_page
