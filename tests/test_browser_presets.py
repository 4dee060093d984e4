"""Presets in a real browser (Chromium, Playwright): save the Run dialog's
mapping and config as a preset, load it back into a fresh dialog with htmx, and
see the warning once an ontology change broke it."""

from __future__ import annotations

import copy
from typing import Any

from plugins_app.demo.seed import DEMO_ONTOLOGY
from plugins_app.plugins.models import Preset
from tests.test_browser import (  # noqa: F401 - pytest fixtures
    Plugins,
    Tab,
    browser,
    expect,
    log_in,
    open_run_dialog,
    tab,
)


def choose_preset(page: Any, dialog: Any, name: str) -> None:
    """Pick a preset once htmx has wired the freshly swapped-in dialog (a change
    fired before that would go unheard)."""
    page.wait_for_function(
        "() => { const s = document.querySelector('#dialog select[name=preset]');"
        " return s !== null && s['htmx-internal-data'] !== undefined }"
    )
    dialog.get_by_label("Preset", exact=True).select_option(label=name)


def test_it_saves_a_preset_and_loads_it_into_the_dialog(
    workspace: Any,
    make_plugin: Plugins,
    live_hub: Any,
    tab: Tab,  # noqa: F811
) -> None:
    registered = make_plugin(name="Detector")
    page = tab.page
    log_in(page, live_hub, "bob")
    dialog = open_run_dialog(page, live_hub, workspace, registered)

    dialog.get_by_label("face", exact=True).select_option(value="face-box")
    dialog.get_by_label("coin", exact=True).select_option(value="object-box")
    dialog.get_by_label("Config JSON").fill('{"threshold": 0.9}')
    dialog.get_by_label("Save as preset").fill("Coins as objects")
    dialog.get_by_role("button", name="Save preset").click()

    expect(dialog.get_by_role("status")).to_have_text(
        "Saved preset “Coins as objects”."
    )
    preset = Preset.objects.get()
    assert preset.class_mapping == {"face": "face-box", "coin": "object-box"}
    assert preset.config_json == '{"threshold": 0.9}'
    assert preset.created_by == workspace.annotator

    # A fresh dialog suggests its own mapping; choosing the preset refills it.
    page.reload()
    dialog = open_run_dialog(page, live_hub, workspace, registered)
    coin = dialog.get_by_label("coin", exact=True)
    expect(coin).to_have_value("coin-box")  # the suggestion (title "Coin")
    expect(dialog.get_by_label("Config JSON")).to_have_value('{"max_detections": 25}')
    dialog.get_by_label("Asset external IDs").fill("coins")
    choose_preset(page, dialog, "Coins as objects")

    expect(coin).to_have_value("object-box")
    expect(dialog.get_by_label("face", exact=True)).to_have_value("face-box")
    expect(dialog.get_by_label("Config JSON")).to_have_value('{"threshold": 0.9}')
    expect(dialog.get_by_label("Asset external IDs")).to_have_value("coins")
    expect(dialog.locator("#preset-warning")).to_have_count(0)

    # The ontology loses "Object": the preset list and the dialog say so.
    ontology = copy.deepcopy(DEMO_ONTOLOGY)
    ontology["tools"] = [t for t in ontology["tools"] if t["schemaId"] != "object-box"]
    workspace.project.ontology = ontology
    workspace.project.save(update_fields=["ontology"])
    page.goto(f"{live_hub.url}/projects/{workspace.project.pk}/")
    row = page.locator("#preset-list tr", has_text="Coins as objects")
    expect(row).to_contain_text("⚠ broken")
    expect(row).to_contain_text("“coin” is mapped to “object-box”")
    dialog = open_run_dialog(page, live_hub, workspace, registered)
    choose_preset(page, dialog, "Coins as objects")
    expect(dialog.locator("#preset-warning")).to_contain_text(
        "“coin” is mapped to “object-box”, which is not a label of this project's"
    )


def test_an_admin_adds_a_plugin_stage_with_a_preset_and_retries_a_task(
    workspace: Any,
    make_plugin: Plugins,
    live_hub: Any,
    tab: Tab,  # noqa: F811
) -> None:
    from plugins_app.runs.models import Run
    from plugins_app.workspace.models import Task

    registered = make_plugin(name="Detector")
    Preset.objects.create(
        project=workspace.project,
        plugin=registered.plugin,
        name="Faces",
        class_mapping={"face": "face-box"},
    )
    page = tab.page
    log_in(page, live_hub, "alice")
    page.goto(f"{live_hub.url}/projects/{workspace.project.pk}/")
    form = page.locator("#stage-add-form")
    form.get_by_label("Stage name").fill("Auto-label")
    form.get_by_label("Model plugin").select_option(label="Detector (offline)")
    form.get_by_label("Preset").select_option(label="Detector: Faces")
    form.get_by_role("button", name="Add stage").click()

    expect(page.get_by_role("status")).to_have_text("Plugin stage added.")
    stages = page.locator("#workflow-stages li")
    expect(stages).to_have_count(5)
    expect(stages.nth(2)).to_contain_text("Auto-label")
    expect(stages.nth(2)).to_contain_text("Detector (preset “Faces”)")
    workspace.project.refresh_from_db()
    assert workspace.project.workflow[2]["preset"] == Preset.objects.get().pk

    # A task put in the stage without the stage event (as Ango's requeue into a
    # Plugin stage does): shown as not sent; Retry sends it (it then waits for
    # the offline plugin).
    Task.objects.filter(pk=workspace.asset("coins").task.pk).update(stage="Auto-label")
    page.reload()
    row = page.locator(".stage-tasks tr", has_text="coins")
    expect(row).to_contain_text("not sent")
    row.get_by_role("button", name="Retry").click()

    expect(page.get_by_role("status")).to_have_text(
        "Sent 1 task(s) to the plugin again."
    )
    row = page.locator(".stage-tasks tr", has_text="coins")
    expect(row).to_contain_text("Queued")
    run = Run.objects.get(task=workspace.asset("coins").task)
    assert run.trigger == "workflow"
    assert run.class_mapping == [{"schemaId": "face-box", "modelClass": "face"}]
