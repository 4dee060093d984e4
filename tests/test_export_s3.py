"""Export files in an S3-compatible bucket (HUB_EXPORT_S3_BUCKET): the built
export and the plugin's upload go through django-storages' S3 backend to a real
S3-compatible HTTP server (moto's, on a free port), and come back through the
hub's links. First in process, then end to end with the real SDK and a Celery
worker configured from the environment the way production is."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.test import Client
from moto.server import ThreadedMotoServer

from plugins_app.exports.models import ExportSnapshot, ExportUpload
from plugins_app.exports.services import snapshot_build, snapshot_request
from plugins_app.plugins.models import PluginType
from plugins_app.runs.models import Run
from tests.builders import leased_project_run
from tests.hub import SCRIPTS, free_port, start_celery_worker, wait_for

BUCKET = "hub-exports"
KEYS = {"AWS_ACCESS_KEY_ID": "AKIATEST", "AWS_SECRET_ACCESS_KEY": "test-secret"}


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    for key, value in KEYS.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    client.endpoint = url  # type: ignore[attr-defined]
    yield client
    server.stop()


@pytest.fixture
def s3_exports(s3: Any, settings: Any) -> Any:
    """The `exports` storage as settings.py builds it from HUB_EXPORT_S3_*."""
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": s3.endpoint,
                "region_name": "us-east-1",
                "location": "exports",
                "default_acl": None,
            },
        },
    }
    return s3


def objects(s3: Any) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {
        o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
        for o in listed
    }


def test_the_export_and_the_upload_live_in_the_bucket(
    workspace: Any, make_plugin: Any, s3_exports: Any
) -> None:
    run, job = leased_project_run(
        workspace, make_plugin(type=PluginType.EXPORT).plugin, stages=[]
    )
    snapshot, token = snapshot_request(
        run, stages=[], batch_ids=[], base_url="http://hub.test", path="/v2/export"
    )
    snapshot_build(snapshot.pk)
    snapshot.refresh_from_db()
    assert snapshot.state == ExportSnapshot.State.READY, snapshot.error
    stored = objects(s3_exports)
    assert list(stored) == [f"exports/{snapshot.file}"]
    got = Client().get(f"/v2/exportFiles/{token}")
    body = b"".join(got.streaming_content)
    assert body == stored[f"exports/{snapshot.file}"]
    lines = zipfile.ZipFile(io.BytesIO(body)).read(
        zipfile.ZipFile(io.BytesIO(body)).namelist()[0]
    )
    assert len(lines.splitlines()) == workspace.project.tasks.count()

    upload_url = (
        Client()
        .get(
            "/v2/getUploadUrl",
            {"name": "result.zip", "project": job["projectId"], "type": "exports"},
            HTTP_APIKEY=job["apiKey"],
        )
        .json()["data"]["uploadUrl"]
    )
    path = "/" + upload_url.split("://", 1)[1].split("/", 1)[1]
    assert Client().generic("PUT", path, b"PK\x03\x04 the result").status_code == 200
    upload = ExportUpload.objects.get(run=run)
    assert objects(s3_exports)[f"exports/{upload.file}"] == b"PK\x03\x04 the result"
    user = Client()
    user.force_login(workspace.annotator)
    download = user.get(f"/runs/{run.pk}/exports/{upload.pk}/")
    assert b"".join(download.streaming_content) == b"PK\x03\x04 the result"


def test_an_export_run_end_to_end_on_s3(
    workspace: Any,
    make_plugin: Any,
    plugin_runner: Any,
    live_hub: Any,
    s3_exports: Any,
    tmp_path: Path,
) -> None:
    """The Celery worker is configured only by the environment (HUB_EXPORT_S3_*),
    as in production; the hub process by the same settings."""
    worker = start_celery_worker(
        tmp_path,
        beat=False,
        env={
            "HUB_EXPORT_S3_BUCKET": BUCKET,
            "HUB_EXPORT_S3_ENDPOINT_URL": s3_exports.endpoint,
            "HUB_EXPORT_S3_REGION": "us-east-1",
            **KEYS,
        },
    )
    try:
        registered = make_plugin(type=PluginType.EXPORT, class_names=[])
        process = plugin_runner(SCRIPTS / "export_passthrough.py", registered)
        client = Client()
        client.force_login(workspace.annotator)
        response = client.post(
            f"/projects/{workspace.project.pk}/plugins/{registered.plugin.pk}/run/",
            {"stages": [], "config_json": "{}"},
            HTTP_HX_REQUEST="true",
        )
        assert "HX-Redirect" in response, response.content.decode()
        run = Run.objects.latest("id")
        wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, timeout=120)
        run.refresh_from_db()
        assert run.status == Run.Status.SUCCEEDED, (run.error, process.log())
    finally:
        worker.stop()
    upload = ExportUpload.objects.get(run=run, uploaded_at__isnull=False)
    snapshot = ExportSnapshot.objects.get(run=run)
    stored = objects(s3_exports)
    assert {f"exports/{snapshot.file}", f"exports/{upload.file}"} <= set(stored)
    archive = zipfile.ZipFile(io.BytesIO(stored[f"exports/{upload.file}"]))
    lines = [json.loads(x) for x in archive.read("export.ndjson").splitlines()]
    assert {line["externalId"] for line in lines} == set(
        workspace.project.assets.values_list("external_id", flat=True)
    )
