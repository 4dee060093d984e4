"""The run page (issue 11 §4): its gallery draws what *this* run wrote, page by
page, marks what it skipped and why; a run that wrote nothing says so with a
neutral bar; a job that times out is explained at once and not retried unless
the run asked for it. Through the real views, the ledger and the sweep."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from plugins_app.plugins.models import Plugin, PluginType
from plugins_app.runs.creation import RunRequest, run_create
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.ledger import TIMEOUT_CAUSES
from plugins_app.runs.models import Run, RunLogLine, WorkItem
from plugins_app.runs.responses import item_respond
from plugins_app.runs.selectors import run_progress
from plugins_app.runs.sweep import runs_sweep
from plugins_app.runs.undo import run_undo
from plugins_app.workspace.lifecycle import task_submit
from plugins_app.workspace.models import Task
from tests.builders import bulk_assets, connect_instance, new_run, pass_deadline
from tests.hub import SCRIPTS, wait_for
from tests.test_api import bearer, post_json

CHANNEL = "run-page!one"
PLAIN_DICT = {"ECHO_MODE": "plain_dict"}


def box(x: int) -> dict[str, Any]:
    return {
        "schemaId": "face-box",
        "bounding-box": {"x": x, "y": 2, "width": 3, "height": 4},
    }


def answer_all(run: Run, objects: list[dict[str, Any]]) -> None:
    """Every job of the run answered with `objects`, as a plugin would."""
    while item := run.items.filter(state=WorkItem.State.LEASED).first():
        outcome = item_respond(
            session=item.session,
            payload={"response": {"objects": objects}},
            channel_name=item.instance.channel_name,
        )
        assert outcome in ("done", "skipped"), outcome
        dispatch_pending(run.plugin_id)
    run.refresh_from_db()


@pytest.fixture
def plugin(make_plugin: Any) -> Plugin:
    plugin = make_plugin(timeout=5).plugin
    Plugin.objects.filter(pk=plugin.pk).update(concurrency=50)
    connect_instance(plugin, CHANNEL)
    return plugin


def run_page(workspace: Any, run: Run, query: str = "", **headers: str) -> str:
    client = Client()
    client.force_login(workspace.annotator)
    response = client.get(f"/runs/{run.pk}/{query}", **headers)
    assert response.status_code == 200
    return response.content.decode()


def drawn_x(html: str) -> list[str]:
    return re.findall(r'<rect class="shape" x="(\d+)"', html)


def test_an_older_runs_page_draws_its_own_answer_after_a_newer_run(
    workspace: Any, plugin: Plugin
) -> None:
    older = new_run(workspace, plugin, "astronaut", dispatch=True)
    answer_all(older, [box(11)])
    newer = new_run(workspace, plugin, "astronaut", dispatch=True)
    answer_all(newer, [box(77), box(88)])
    task = Task.objects.get(asset=workspace.asset("astronaut"))
    assert task.prelabel_run_id == newer.pk

    assert drawn_x(run_page(workspace, older)) == ["11"]
    assert f"replaced since by run #{newer.pk}" in run_page(workspace, older)
    assert drawn_x(run_page(workspace, newer)) == ["77", "88"]

    # A labeler's edit, then an undo of the newer run: each page still draws
    # what its own run wrote.
    task_submit(task, user=workspace.annotator, answer={"tools": [box(5)]})
    assert drawn_x(run_page(workspace, newer)) == ["77", "88"]
    assert "submitted by bob" in run_page(workspace, newer)
    assert drawn_x(run_page(workspace, older)) == ["11"]


def test_a_watched_run_page_asks_for_its_answers_until_the_run_ends(
    workspace: Any, plugin: Plugin
) -> None:
    run = new_run(workspace, plugin, "astronaut", "coins", dispatch=True)
    writes = f"/runs/{run.pk}/writes/"
    page = run_page(workspace, run)
    assert f'hx-get="{writes}" hx-trigger="every 2s"' in page
    assert "written no task's answer yet" in page

    answer_all(run, [box(7)])
    assert run.is_finished
    section = run_page(workspace, run, "writes/", HTTP_HX_REQUEST="true")
    assert 'id="run-write-rows"' in section and ">coins<" in section
    assert "hx-trigger" not in section  # finished: the asking stops

    # Another organization sees nothing of it.
    client = Client()
    client.force_login(workspace.outsider)
    assert client.get(writes, HTTP_HX_REQUEST="true").status_code == 404


def test_an_undone_runs_page_still_draws_what_it_wrote(
    workspace: Any, plugin: Plugin
) -> None:
    run = new_run(workspace, plugin, "astronaut", dispatch=True)
    answer_all(run, [box(42)])
    run_undo(run, by=workspace.admin)
    html = run_page(workspace, run)
    assert drawn_x(html) == ["42"]
    assert "undone since" in html and ">Undone<" in html


def test_the_gallery_pages_through_every_asset_not_just_12(
    workspace: Any, plugin: Plugin
) -> None:
    ids = bulk_assets(workspace.project, 15)
    run = new_run(workspace, plugin, *ids, dispatch=True)
    answer_all(run, [box(9)])

    first = run_page(workspace, run)
    assert "1–12 of 15" in first
    assert first.count('class="drawn outcome-written"') == 12
    assert 'id="run-gallery-next"' in first
    second = run_page(workspace, run, "?page=2", HTTP_HX_REQUEST="true")
    assert 'id="run-gallery-2"' in second and "13–15 of 15" in second
    assert [f"bulk-{i:05d}" for i in (12, 13, 14)] == re.findall(
        r'data-asset="([^"]+)"', second
    )
    assert "<html" not in second  # the pager swaps the section only
    # Without htmx the same link is a whole page on page 2.
    assert "13–15 of 15" in run_page(workspace, run, "?page=2")


def test_it_marks_an_asset_it_skipped_and_why(workspace: Any, plugin: Plugin) -> None:
    kept = Task.objects.get(asset=workspace.asset("coins"))
    task_submit(kept, user=workspace.annotator, answer={"tools": [box(1)]})
    run = new_run(workspace, plugin, "astronaut", "coins", dispatch=True)
    answer_all(run, [box(30)])

    html = run_page(workspace, run)
    coins = html[html.index('data-asset="coins"') :]
    coins = coins[: coins.index("</figure>")]
    assert "outcome-skipped" in html and "its answer was kept" in coins
    assert "<rect" not in coins  # the person's answer is not drawn as the run's
    assert drawn_x(html) == ["30"]


def test_a_run_that_wrote_nothing_ends_neutral_not_green(
    workspace: Any, plugin: Plugin
) -> None:
    run = new_run(workspace, plugin, "astronaut", "coins", "camera", dispatch=True)
    answer_all(run, [])  # nothing the mapping could keep
    assert run.status == Run.Status.SUCCEEDED

    html = run_page(workspace, run)
    assert "Succeeded, nothing written" in html
    assert "progress-bar status-nothing" in html
    assert "progress-bar status-succeeded" not in html

    written = new_run(workspace, plugin, "astronaut", dispatch=True)
    answer_all(written, [box(3)])
    html = run_page(workspace, written)
    assert "nothing written" not in html and "progress-bar status-succeeded" in html


def test_a_run_whose_every_task_was_kept_says_why_it_wrote_nothing(
    workspace: Any, plugin: Plugin
) -> None:
    task = Task.objects.get(asset=workspace.asset("coins"))
    task_submit(task, user=workspace.annotator, answer={"tools": [box(1)]})
    run = new_run(workspace, plugin, "coins", dispatch=True)
    answer_all(run, [box(30)])
    html = run_page(workspace, run)
    assert "Succeeded, nothing written: every task held a person" in html


def test_a_timeout_is_explained_at_once_and_not_retried(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(timeout=5, max_attempts=3).plugin
    connect_instance(plugin, CHANNEL)
    connect_instance(plugin, "run-page!two")
    run = new_run(workspace, plugin, "astronaut", dispatch=True)

    pass_deadline(run)
    assert runs_sweep() == {"timed_out": 1, "requeued": 0, "dispatched": 0}

    item = run.items.get()
    assert (item.state, item.attempts) == (WorkItem.State.FAILED, 1)
    assert item.failure == WorkItem.Failure.TIMEOUT
    assert "still answers pings: not retried" in item.error
    assert TIMEOUT_CAUSES in item.error
    html = run_page(workspace, run)
    assert 'id="run-timeout-help"' in html
    assert "returns a plain <code>dict</code>" in html
    assert "Retry jobs that time out" in html


def test_a_run_that_asked_for_retries_of_timeouts_gets_them(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(timeout=5, max_attempts=2).plugin
    connect_instance(plugin, CHANNEL)
    response = post_json(
        bearer(workspace.annotator),
        "/api/runs",
        {
            "plugin_id": plugin.pk,
            "project_id": workspace.project.pk,
            "class_mapping": {"face": "face-box"},
            "external_ids": ["astronaut"],
            "retry_timeouts": True,
        },
    )
    assert response.status_code == 201, response.content
    assert response.json()["retry_timeouts"] is True
    run = Run.objects.get(pk=response.json()["id"])
    assert run.inputs["retry_timeouts"] is True

    pass_deadline(run)
    assert runs_sweep() == {"timed_out": 0, "requeued": 1, "dispatched": 1}
    pass_deadline(run)
    assert runs_sweep() == {"timed_out": 1, "requeued": 0, "dispatched": 0}
    assert "Timed out after 2 attempt(s)" in run.items.get().error


def test_the_run_dialog_offers_retries_of_timeouts(
    workspace: Any, plugin: Plugin
) -> None:
    client = Client()
    client.force_login(workspace.annotator)
    url = f"/projects/{workspace.project.pk}/plugins/{plugin.pk}/run/"
    data = {
        "external_ids": "astronaut",
        "config_json": "{}",
        "map_0": "face-box",
        "retry_timeouts": "on",
    }
    response = client.post(url, data, HTTP_HX_REQUEST="true")
    assert "HX-Redirect" in response, response.content.decode()
    assert Run.objects.latest("id").inputs.get("retry_timeouts") is True


# --- with the real SDK --------------------------------------------------------------
def test_batch_progress_moves_as_the_plugin_reports_and_imports(
    workspace: Any, make_plugin: Any, plugin_runner: Any, tmp_path: Any
) -> None:
    registered = make_plugin(type=PluginType.BATCH_MODEL, timeout=120)
    gates = tmp_path / "gates"
    gates.mkdir()
    env = {"GATE_DIR": str(gates), "GATE_CHUNK": "3"}
    process = plugin_runner(SCRIPTS / "gated_batch_import.py", registered, env=env)
    run = run_create(
        RunRequest(
            plugin=registered.plugin,
            project=workspace.project,
            user=workspace.annotator,
            class_mapping={"face": "face-box"},
            config_json="{}",
            external_ids=[],
            batch_ids=[],
        )
    )
    total = run.assets_total
    assert total > 6

    # Logged 3 of N detected, nothing imported yet: the bar moves all the same.
    wait_for(lambda: Run.objects.get(pk=run.pk).reported_progress == 3)
    run.refresh_from_db()
    progress = run_progress(run)
    assert run.assets_labeled == 0 and not run.is_finished
    assert progress.percent == 100 * 3 // total > 0
    assert progress.label == (
        f"0 of {total} assets labeled; the plugin reports 3 of {total} processed"
    )

    # The first import_labels call counts before the run ends.
    (gates / "logged").touch()
    wait_for(lambda: Run.objects.get(pk=run.pk).assets_labeled == 3)
    run.refresh_from_db()
    assert not run.is_finished, process.log()
    assert run_progress(run).label.startswith(f"3 of {total} assets labeled")

    (gates / "imported").touch()
    wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, timeout=60)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, (run.error, process.log())
    assert run_progress(run).label == f"{total} of {total} assets labeled"
    assert run_progress(run).percent == 100


def test_a_plain_dict_under_1_4_times_out_once_explained_not_retried(
    workspace: Any, make_plugin: Any, plugin_runner: Any, live_hub: Any
) -> None:
    registered = make_plugin(timeout=1, max_attempts=3)
    for _ in range(2):  # a second instance the job could have gone to
        plugin_runner(SCRIPTS / "echo_model.py", registered, env=PLAIN_DICT)
    run = new_run(workspace, registered.plugin, "astronaut", dispatch=True)
    wait_for(
        lambda: RunLogLine.objects.filter(run=run, message="echo done").exists(),
        what="the plugin's log",
    )
    wait_for(
        lambda: runs_sweep()["timed_out"] or Run.objects.get(pk=run.pk).is_finished
    )

    run.refresh_from_db()
    item = run.items.get()
    assert run.status == Run.Status.TIMED_OUT
    assert (item.attempts, item.failure) == (1, WorkItem.Failure.TIMEOUT)
    assert RunLogLine.objects.filter(run=run, message="echo got the job").count() == 1
    assert Task.objects.get(asset=workspace.asset("astronaut")).answer == {}
    html = run_page(workspace, run)
    assert 'id="run-timeout-help"' in html and "AnnotationPayload" in html
    assert "Not retried" in html and "still answers pings: not retried" in html
