"""Undo on the run page in a real browser (Chromium, Playwright): an admin
confirms, the htmx button posts with the page's CSRF header, the section
swaps in place with what was restored and what was kept, and why."""

from __future__ import annotations

from typing import Any

from plugins_app.plugins.models import PluginType
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.models import Run
from plugins_app.runs.responses import item_respond
from plugins_app.workspace.lifecycle import task_submit
from plugins_app.workspace.models import Task
from plugins_app.workspace.services import prelabels_import
from tests.builders import CHANNEL, connect_instance, new_run
from tests.test_browser import (  # noqa: F401 - pytest fixtures
    Tab,
    browser,
    expect,
    log_in,
    tab,
)

BOX = {"x": 1, "y": 2, "width": 30, "height": 40}


def finished_batch_run(workspace: Any, plugin: Any, external_ids: list[str]) -> Run:
    """A Batch Model run whose job went out, that imported one box per asset
    (the service /v2/import/labels calls) and answered: finished."""
    connect_instance(plugin, CHANNEL)
    run = new_run(workspace, plugin, mapping={"face": "face-box"})
    assert dispatch_pending(plugin.pk) == 1
    records = [
        {"externalId": e, "objects": [{"schemaId": "face-box", "bounding-box": BOX}]}
        for e in external_ids
    ]
    result = prelabels_import(
        project=workspace.project, records=records, mapping=run.class_mapping, run=run
    )
    assert not result.errors and result.labeled == len(external_ids)
    session = run.items.get().session
    item_respond(session=session, payload={"response": "ok"}, channel_name=CHANNEL)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    return run


def test_an_admin_undoes_a_run_from_its_page(
    workspace: Any,
    make_plugin: Any,
    live_hub: Any,
    tab: Tab,  # noqa: F811
) -> None:
    plugin = make_plugin(type=PluginType.BATCH_MODEL).plugin
    run = finished_batch_run(workspace, plugin, ["astronaut", "coins", "camera"])
    coins = workspace.asset("coins").task
    task_submit(coins, user=workspace.annotator)  # bob accepts the pre-label

    page = tab.page
    log_in(page, live_hub, "alice")
    page.goto(f"{live_hub.url}/runs/{run.pk}/")
    expect(page.locator("#run-write-counts")).to_contain_text("3 written")
    navigations = tab.mark()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#run-undo").click()

    result = page.locator("#run-undo-result")
    expect(result).to_contain_text("Undone: 2 task(s) got their answer back")
    section = page.locator("#run-writes")
    expect(section).to_contain_text(f"task {coins.pk} was changed by bob on")
    expect(section).to_contain_text("Undone by alice")
    expect(page.locator("#run-undo")).to_have_count(0)  # nothing left to undo
    tab.assert_not_reloaded(navigations)
    for external_id, answer in (("astronaut", {}), ("camera", {})):
        assert Task.objects.get(asset=workspace.asset(external_id)).answer == answer
    coins.refresh_from_db()
    assert coins.answer["tools"][0]["bounding-box"] == BOX


def test_an_annotator_sees_no_undo_button(
    workspace: Any,
    make_plugin: Any,
    live_hub: Any,
    tab: Tab,  # noqa: F811
) -> None:
    plugin = make_plugin(type=PluginType.BATCH_MODEL).plugin
    run = finished_batch_run(workspace, plugin, ["astronaut"])
    page = tab.page
    log_in(page, live_hub, "bob")
    page.goto(f"{live_hub.url}/runs/{run.pk}/")
    expect(page.locator("#run-write-counts")).to_contain_text("1 written")
    expect(page.locator("#run-undo")).to_have_count(0)
