"""Export runs with the real SDK (1.3.22 and 1.4.x) in their own environments:
the Run dialog picks stages and batches, a real Celery worker builds the v3
NDJSON export, the script downloads it without credentials, uploads its file
through getUploadUrl/getSignedUrl/PUT, and the user downloads that file from the
run page. What is downloaded is compared with the database."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.test import Client

from plugins_app.exports.models import ExportSnapshot, ExportUpload
from plugins_app.plugins.models import PluginType
from plugins_app.runs.models import Run
from plugins_app.workspace.models import Task
from tests.hub import SCRIPTS, LiveHub, PluginProcess, wait_for

ROOT = Path(__file__).resolve().parent.parent
PASSTHROUGH = SCRIPTS / "export_passthrough.py"
EXAMPLE = ROOT / "examples" / "export_plugin.py"
TITLES = {"face-box": "Face", "coin-box": "Coin"}


def label_tasks(workspace: Any) -> set[str]:
    """Every other task of the project is Complete with two boxes; returns the
    external IDs a Complete + Batch A export must hold."""
    expected = set()
    tasks = Task.objects.filter(project=workspace.project).select_related("asset")
    for index, task in enumerate(tasks.order_by("pk")):
        box = {"x": index, "y": 2, "width": 10, "height": 12}
        task.answer = {
            "tools": [
                {"schemaId": "face-box", "bounding-box": box},
                {"schemaId": "coin-box", "bounding-box": dict(box, x=index + 1)},
            ],
            "classifications": [],
            "relations": [],
        }
        task.stage = "Complete" if index % 2 == 0 else "Label"
        task.save()
        if task.stage == "Complete" and task.asset.batches.filter(
            pk=workspace.batch_a.pk
        ):
            expected.add(task.asset.external_id)
    # The other organization's project has Complete tasks too: never exported.
    Task.objects.filter(project=workspace.other_project).update(stage="Complete")
    assert expected
    return expected


def run_export(workspace: Any, plugin: Any, config: str = "{}") -> tuple[Run, Client]:
    client = Client()
    client.force_login(workspace.annotator)
    dialog = client.get(f"/projects/{workspace.project.pk}/plugins/{plugin.pk}/run/")
    assert b'name="stages"' in dialog.content and b'name="batches"' in dialog.content
    response = client.post(
        f"/projects/{workspace.project.pk}/plugins/{plugin.pk}/run/",
        {
            "stages": ["Complete"],
            "batches": [workspace.batch_a.pk],
            "config_json": config,
        },
        HTTP_HX_REQUEST="true",
    )
    assert "HX-Redirect" in response, response.content.decode()
    run = Run.objects.latest("id")
    wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, timeout=120, what="end")
    run.refresh_from_db()
    return run, client


def downloaded(client: Client, run: Run) -> zipfile.ZipFile:
    """What the user gets: the link on the run page, fetched as the user."""
    page = client.get(f"/runs/{run.pk}/").content.decode()
    upload = ExportUpload.objects.get(run=run, uploaded_at__isnull=False)
    link = f"/runs/{run.pk}/exports/{upload.pk}/"
    assert f'href="{link}"' in page and upload.name in page
    response = client.get(link)
    assert response.status_code == 200
    assert upload.name in response["Content-Disposition"]
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


@pytest.mark.parametrize("sdk", ["1.3.22", "1.4"])
def test_a_sample_style_export_downloads_exactly_the_chosen_tasks(
    sdk: str,
    workspace: Any,
    make_plugin: Any,
    plugin_runner: Any,
    celery_worker: PluginProcess,
    live_hub: LiveHub,
) -> None:
    expected = label_tasks(workspace)
    registered = make_plugin(type=PluginType.EXPORT, class_names=[])
    process = plugin_runner(PASSTHROUGH, registered, sdk=sdk)
    run, client = run_export(workspace, registered.plugin)
    assert run.status == Run.Status.SUCCEEDED, (run.error, process.log())
    assert run.inputs == {"stages": ["Complete"]}
    snapshot = ExportSnapshot.objects.get(run=run)
    assert snapshot.state == "ready" and snapshot.lines == len(expected)
    # 1.3.22 calls /v2/exportV3, 1.4.x /v2/export.
    path = "/v2/exportV3" if sdk == "1.3.22" else "/v2/export)"
    assert run.log_lines.filter(message__contains=path).exists()

    archive = downloaded(client, run)
    lines = [
        json.loads(line) for line in archive.read("export.ndjson").decode().splitlines()
    ]
    assert json.loads(archive.read("meta.json"))["numTasks"] == len(expected)
    assert {line["externalId"] for line in lines} == expected
    for line in lines:
        task = Task.objects.select_related("asset").get(pk=line["task"]["taskId"])
        assert task.project_id == workspace.project.pk
        assert line["assetId"] == str(task.asset_id)
        assert line["task"]["stage"] == "Complete"
        assert "Batch A" in line["batches"]
        tools = line["task"]["tools"]
        assert [t["bounding-box"] for t in tools] == [
            t["bounding-box"] for t in task.answer["tools"]
        ]
        assert [t["title"] for t in tools] == [
            TITLES[t["schemaId"]] for t in task.answer["tools"]
        ]
        assert all(t["objectId"] for t in tools)
    # The asset links in the export work without credentials, like the SDK's.
    image = httpx.get(lines[0]["asset"])
    assert image.status_code == 200 and image.headers["content-type"].startswith(
        "image/"
    )


@pytest.mark.parametrize("sdk", ["1.3.22", "1.4"])
def test_the_example_export_plugin_gives_the_user_a_csv_of_the_boxes(
    sdk: str,
    workspace: Any,
    make_plugin: Any,
    plugin_runner: Any,
    celery_worker: PluginProcess,
) -> None:
    expected = label_tasks(workspace)
    registered = make_plugin(type=PluginType.EXPORT, class_names=[])
    process = plugin_runner(EXAMPLE, registered, sdk=sdk)
    run, client = run_export(workspace, registered.plugin, '{"separator": ";"}')
    assert run.status == Run.Status.SUCCEEDED, (run.error, process.log())

    archive = downloaded(client, run)
    rows = list(
        csv.reader(io.StringIO(archive.read("boxes.csv").decode()), delimiter=";")
    )
    assert rows[0] == ["externalId", "stage", "class", "x", "y", "width", "height"]
    want = sorted(
        [
            task.asset.external_id,
            "Complete",
            TITLES[tool["schemaId"]],
            *(str(tool["bounding-box"][k]) for k in ("x", "y", "width", "height")),
        ]
        for task in Task.objects.filter(asset__external_id__in=expected)
        .filter(project=workspace.project)
        .select_related("asset")
        for tool in task.answer["tools"]
    )
    assert sorted(rows[1:]) == want
    summary = json.loads(archive.read("summary.json"))
    assert summary == {
        "tasks": len(expected),
        "boxes": {"Face": len(expected), "Coin": len(expected)},
    }
