"""Management commands: create_plugin, run_plugin, create_api_token, seed_demo."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from plugins_app.plugins.models import Plugin, PluginInstance, PluginTrigger, PluginType
from plugins_app.runs.models import Run
from plugins_app.workspace.lifecycle import task_submit
from plugins_app.workspace.models import (
    ApiToken,
    Asset,
    Batch,
    Membership,
    Organization,
    Project,
    Task,
    TaskEvent,
)
from tests.hub import SCRIPTS


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- create_plugin --------------------------------------------------------------
def test_it_creates_a_plugin_and_prints_its_credentials(workspace: Any) -> None:
    output = run(
        "create_plugin",
        "--org=acme",
        "--name=CLI detector",
        "--class=face",
        "--class=coin",
        '--config={"threshold": 0.3}',
        "--timeout=45",
        f"--project={workspace.project.pk}",
        f"--project={workspace.other_project.pk}",
    )

    printed = json.loads(output)
    assert set(printed) == {"pk", "id", "secret", "name"}
    plugin = Plugin.objects.get(pk=printed["pk"])
    assert printed["id"] == plugin.public_id
    assert printed["name"] == "CLI detector"
    assert plugin.secret_hash == sha256(printed["secret"])
    assert printed["secret"] not in str(Plugin.objects.values().get())
    assert plugin.organization == workspace.org
    assert plugin.type == PluginType.MODEL
    assert plugin.class_names == ["face", "coin"]
    assert plugin.default_config == '{"threshold": 0.3}'
    assert plugin.timeout_seconds == 45
    # Only the organization's own project is activated.
    assert list(plugin.projects.all()) == [workspace.project]


def test_it_refuses_a_bad_default_config(workspace: Any) -> None:
    for config, message in [("{oops", "not valid JSON"), ("[1]", "a JSON object")]:
        with pytest.raises(CommandError, match=message):
            run("create_plugin", "--org=acme", "--name=X", f"--config={config}")

    assert not Plugin.objects.exists()


def test_it_refuses_an_unknown_organization(workspace: Any) -> None:
    with pytest.raises(CommandError, match="No organization with slug 'nope'"):
        run("create_plugin", "--org=nope", "--name=X")

    assert not Plugin.objects.exists()


# --- run_plugin -------------------------------------------------------------------
def test_it_fails_run_plugin_with_the_errors_as_json(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    PluginInstance.objects.create(plugin=plugin, channel_name="test!abc")

    with pytest.raises(CommandError) as raised:
        run(
            "run_plugin",
            f"--plugin={plugin.public_id}",
            f"--project={workspace.project.pk}",
            "--asset=astronaut",
            "--asset=no-such-asset",
            "--map=face=face-box",
        )

    errors = json.loads(str(raised.value))["errors"]
    assert errors == {"external_ids": ["Not assets of this project: no-such-asset"]}
    assert not Run.objects.exists()


def test_it_refuses_run_plugin_for_an_unknown_plugin(workspace: Any) -> None:
    with pytest.raises(CommandError, match="Unknown plugin or project"):
        run("run_plugin", "--plugin=999", f"--project={workspace.project.pk}")


def test_it_starts_a_run_without_waiting(workspace: Any, make_plugin: Any) -> None:
    plugin = make_plugin().plugin
    PluginInstance.objects.create(plugin=plugin, channel_name="test!abc")

    output = run(
        "run_plugin",
        f"--plugin={plugin.pk}",
        f"--project={workspace.project.pk}",
        "--asset=coins",
        "--map=coin=coin-box",
        "--user=bob",
        '--config={"max_detections": 1}',
    )

    printed = json.loads(output)
    created = Run.objects.get()
    assert printed["id"] == created.pk
    # A live instance is free: the run was leased as it was created.
    assert printed["status"] == "running"
    assert printed["created_by"] == "bob"
    assert created.class_mapping == [{"schemaId": "coin-box", "modelClass": "coin"}]
    assert created.config_json == '{"max_detections": 1}'
    assert [i.asset.external_id for i in created.items.all()] == ["coins"]


def test_it_runs_a_plugin_and_waits_for_the_answer(
    workspace: Any, make_plugin: Any, plugin_runner: Any
) -> None:
    registered = make_plugin()
    plugin_runner(SCRIPTS / "echo_model.py", registered, sdk="1.4")

    output = run(
        "run_plugin",
        f"--plugin={registered.plugin.public_id}",
        f"--project={workspace.project.pk}",
        "--asset=astronaut",
        "--map=face=face-box",
        "--user=alice",
        "--wait",
        "--timeout=30",
    )

    printed = json.loads(output)
    assert printed["status"] == "succeeded", printed
    assert printed["items_done"] == 1 and printed["items_failed"] == 0
    assert printed["finished_at"]
    finished = Run.objects.get(pk=printed["id"])
    assert finished.status == Run.Status.SUCCEEDED
    task = workspace.asset("astronaut").task
    assert task.prelabel_run_id == finished.pk
    assert [t["schemaId"] for t in task.answer["tools"]] == ["face-box"]


# --- create_api_token -------------------------------------------------------------
def test_it_creates_an_api_token_stored_hashed(workspace: Any) -> None:
    token = json.loads(run("create_api_token", "bob", "--name=ci"))["token"]

    stored = ApiToken.objects.get()
    assert stored.user == workspace.annotator and stored.name == "ci"
    assert stored.key_hash == sha256(token)
    with pytest.raises(CommandError, match="No such user"):
        run("create_api_token", "nobody")


# --- seed_demo ------------------------------------------------------------------
def test_it_seeds_the_demo_idempotently(
    db: Any, demo_images: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The images are already in MEDIA_ROOT/demo (session fixture); skip redrawing.
    monkeypatch.setattr(
        "plugins_app.demo.images.generate_demo_images",
        lambda folder: demo_images,
    )
    credentials_file = settings.VAR_DIR / "demo-plugins.json"

    first = json.loads(run("seed_demo"))
    written_first = json.loads(credentials_file.read_text())
    # Photos an older demo put in the invoice project: the untouched one goes,
    # one with history (someone worked on it) stays.
    invoices = Project.objects.get(name="Invoices (hosted QA bot)")
    old = {}
    for name in ("astronaut", "coins"):
        old[name] = Asset.objects.create(
            project=invoices, external_id=name, file=f"demo/{name}.png"
        )
        Task.objects.create(asset=old[name], project=invoices)
    TaskEvent.objects.create(task=old["coins"].task, name="task.metadata", data={})
    second = json.loads(run("seed_demo"))
    assert not Asset.objects.filter(pk=old["astronaut"].pk).exists()
    assert Asset.objects.filter(pk=old["coins"].pk).exists()
    old["coins"].delete()
    written = json.loads(credentials_file.read_text())

    assert Organization.objects.count() == 1
    org = Organization.objects.get(slug="demo")
    assert User.objects.count() == 5
    assert set(Membership.objects.values_list("user__username", "role")) == {
        ("admin", Membership.Role.ADMIN),
        ("reviewer", Membership.Role.REVIEWER),
        ("annotator", Membership.Role.ANNOTATOR),
        ("vehicles", Membership.Role.ANNOTATOR),
        ("scene", Membership.Role.ANNOTATOR),
    }
    assert first["logins"] == dict.fromkeys(
        ("admin", "reviewer", "annotator", "vehicles", "scene"), "plugin-hub"
    )
    # The main project, a consensus project (2 labels per asset), the hosted
    # QA bot's invoices (4 tasks with labels ready to submit) and a parallel-
    # labeling project (two jobs, one labeler each, seeded twice: same jobs).
    assert Project.objects.filter(organization=org).count() == 4
    parallel = Project.objects.get(name="Parallel labeling (Kili)")
    assert [
        (j.name, j.tools, j.classifications, [u.username for u in j.members.all()])
        for j in parallel.jobs.all()
    ] == [
        ("Vehicles", ["motorcycle-box", "rocket-box"], [], ["vehicles"]),
        ("Scene", [], ["weather", "time-of-day"], ["scene"]),
    ]
    assert sorted(parallel.assets.values_list("external_id", flat=True)) == [
        "camera",
        "motorcycle-left",
        "motorcycle-right",
        "rocket",
    ]
    # As the docs walk it: each demo labeler submits their job's part (on their
    # own, no plugin running), then the task is in Review with both parts.
    task = parallel.tasks.get(asset__external_id="motorcycle-left")
    box = {"x": 10, "y": 10, "width": 50, "height": 40}
    for username, part in (
        ("vehicles", {"tools": [{"schemaId": "motorcycle-box", "bounding-box": box}]}),
        ("scene", {"classifications": [{"schemaId": "weather", "answer": "sunny"}]}),
    ):
        task = task_submit(task, user=User.objects.get(username=username), answer=part)
    assert task.stage == "Review"
    assert task.events.filter(name="task.jobs_complete").count() == 1
    assert [t["schemaId"] for t in task.answer["tools"]] == ["motorcycle-box"]
    invoices = Project.objects.get(name="Invoices (hosted QA bot)")
    assert invoices.assets.count() == 4
    assert all(t.answer["tools"] for t in invoices.tasks.all())
    # The invoices are drawn documents (not photos), their labels on the text.
    for asset in invoices.assets.all():
        assert asset.external_id.startswith("invoice-")
        page = Image.open(Path(settings.MEDIA_ROOT) / asset.file).convert("L")
        assert page.size == (asset.width, asset.height)
        for tool in asset.task.answer["tools"]:
            box = tool["bounding-box"]
            inside = page.crop(
                (box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"])
            )
            assert inside.getextrema()[0] < 100, tool  # dark text in the box
    # Two tasks a person labeled and a reviewer accepted, once (the second
    # seed left them alone): the first Export has rows, the canvas human work.
    done = Task.objects.filter(
        project__name="Street & Science Images", stage="Complete"
    )
    assert sorted(t.asset.external_id for t in done) == ["chelsea", "coins-tile-1"]
    for task in done:
        assert task.answer["tools"] and task.submissions.count() == 1
        assert (
            task.events.filter(name="label.reviewed", data__verdict="accepted").count()
            == 1
        )
    assert Asset.objects.count() == 2 * len(demo_images) + 4 + 4 >= 48
    assert Batch.objects.exclude(project=invoices).count() == 6
    assert all(a.batches.count() == 1 for a in Asset.objects.all())
    assert Plugin.objects.count() == 7
    hosted = Plugin.objects.get(name="Invoice QA (hosted)")
    # Uploaded once (the second seed found the same code), built by Celery.
    assert hosted.delivery == "hosted" and hosted.hosted_code.version == 1
    assert written_first["model_plugin"] == first["model_plugin"]
    # Rewritten on the second run, with secrets that match the stored hashes.
    assert written["model_plugin"] == second["model_plugin"]
    assert written["batch_plugin"] == second["batch_plugin"]
    assert written["model_plugin"]["secret"] != first["model_plugin"]["secret"]
    for key, type in (
        ("model_plugin", PluginType.MODEL),
        ("batch_plugin", PluginType.BATCH_MODEL),
        ("qa_plugin", PluginType.EVENT),
        ("consensus_plugin", PluginType.EVENT),
        ("export_plugin", PluginType.EXPORT),
        ("merge_plugin", PluginType.EVENT),
    ):
        plugin = Plugin.objects.get(public_id=written[key]["id"])
        assert plugin.type == type
        assert plugin.secret_hash == sha256(written[key]["secret"])
        assert plugin.organization == org
    assert written["model_plugin"]["id"] == first["model_plugin"]["id"]
    triggers = {
        (t.plugin.name, t.project.labels_per_asset, tuple(t.events))
        for t in PluginTrigger.objects.select_related("plugin", "project")
    }
    assert triggers == {
        ("QA bot", 1, ("label.submitted",)),
        ("Consensus merger", 2, ("label.submitted",)),
        ("Invoice QA (hosted)", 1, ("label.submitted",)),
        ("Job merger", 1, ("task.jobs_complete",)),
    }
    assert credentials_file.stat().st_mode & 0o777 == 0o600


def test_it_exits_1_when_the_awaited_run_did_not_succeed(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    # Counts as live, but nobody answers on this channel.
    PluginInstance.objects.create(plugin=plugin, channel_name="test!abc")
    out = io.StringIO()

    with pytest.raises(SystemExit) as exited:
        call_command(
            "run_plugin",
            f"--plugin={plugin.pk}",
            f"--project={workspace.project.pk}",
            "--asset=astronaut",
            "--map=face=face-box",
            "--wait",
            "--timeout=0.3",
            stdout=out,
        )

    assert exited.value.code == 1
    assert json.loads(out.getvalue())["status"] in ("queued", "running")
