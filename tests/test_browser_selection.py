"""Select, then run, and Preview, in a real browser (Chromium, Playwright)
against a live hub and real plugin processes on the real SDK: ticked rows and
"all N matching" become the run's exact assets; a dry run of the example Model
and Batch Model plugins draws their boxes in the dialog next to what the tasks
hold, and writes nothing (answers, history and the write ledger unchanged)
until *Run on all*."""

from __future__ import annotations

import re
from typing import Any

from plugins_app.plugins.models import PluginType
from plugins_app.runs.models import PreviewAnswer, Run
from plugins_app.workspace.models import AnswerWrite, Task, TaskEvent
from tests.conftest import RegisteredPlugin, Workspace
from tests.hub import LiveHub
from tests.test_browser import (  # noqa: F401 - pytest fixtures
    ECHO,
    Tab,
    browser,
    expect,
    log_in,
    start_plugin,
    tab,
    wait_until_live,
)


def table_url(hub: LiveHub, workspace: Workspace, query: str = "") -> str:
    return f"{hub.url}/projects/{workspace.project.pk}/assets/{query}"


def tick(page: Any, *external_ids: str) -> None:
    for external_id in external_ids:
        row = page.locator("#asset-table tbody tr").filter(
            has=page.get_by_role("link", name=external_id, exact=True)
        )
        row.locator(".row-check").check()


def open_dialog(page: Any, registered: RegisteredPlugin) -> Any:
    page.locator("#selection-plugin").select_option(value=str(registered.plugin.pk))
    page.locator("#run-on-selection").click()
    dialog = page.locator("dialog#dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_contain_text(registered.plugin.name)
    return dialog


def map_classes(dialog: Any, registered: RegisteredPlugin, **labels: str) -> None:
    for name in registered.plugin.class_names:
        dialog.get_by_label(name, exact=True).select_option(value=labels.get(name, ""))


def run_from_dialog(page: Any, dialog: Any, button: str = "Run") -> Run:
    dialog.get_by_role("button", name=button, exact=True).click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    return Run.objects.get(pk=int(page.url.rstrip("/").rsplit("/", 1)[1]))


def run_assets(run: Run) -> list[str]:
    return sorted(i.asset.external_id for i in run.items.select_related("asset"))


def test_three_ticked_rows_are_the_runs_assets(
    workspace: Workspace,
    make_plugin: Any,
    plugin_runner: Any,
    live_hub: LiveHub,
    tab: Tab,  # noqa: F811
) -> None:
    registered = make_plugin(name="Echo")
    process = start_plugin(plugin_runner, ECHO, registered)
    page = tab.page
    log_in(page, live_hub, "bob")
    page.goto(f"{live_hub.url}/projects/{workspace.project.pk}/")
    page.locator("#open-asset-table").click()
    expect(page.locator("#asset-table tbody tr")).to_have_count(32)
    picked = ["camera", "coins", "moon"]
    tick(page, *picked)
    expect(page.locator("#selection-count")).to_have_text(
        "3 asset(s) selected on this page."
    )
    dialog = open_dialog(page, registered)
    expect(dialog.locator("#run-selection")).to_contain_text("3 asset(s)")
    # The dialog carries the filter, not fields of ids to type.
    expect(dialog.get_by_label("Asset external IDs")).to_have_count(0)
    map_classes(dialog, registered, face="face-box")
    wait_until_live(page, registered, process)
    run = run_from_dialog(page, dialog)
    assert run_assets(run) == picked
    assert sorted(run.selection["ids"]) == sorted(workspace.asset(e).pk for e in picked)


def test_all_matching_a_filter_runs_on_every_match_beyond_the_page(
    workspace: Workspace,
    make_plugin: Any,
    plugin_runner: Any,
    live_hub: LiveHub,
    tab: Tab,  # noqa: F811
) -> None:
    registered = make_plugin(name="Echo")
    process = start_plugin(plugin_runner, ECHO, registered)
    Task.objects.filter(asset__external_id__in=["astronaut", "moon"]).update(
        status=Task.Status.SUBMITTED
    )
    matching = sorted(
        workspace.batch_a.assets.filter(task__status=Task.Status.TODO).values_list(
            "external_id", flat=True
        )
    )
    page = tab.page
    log_in(page, live_hub, "bob")
    page.goto(table_url(live_hub, workspace))
    form = page.locator("#asset-filters")
    form.get_by_label("Batch").select_option(label="Batch A")
    form.get_by_label("Status").select_option(value="TODO")
    form.get_by_role("button", name="Search").click()
    expect(page.locator("#selection-bar")).to_have_attribute(
        "data-total", str(len(matching))
    )
    # Five a page: "all matching" must reach past what the page shows.
    page.goto(page.url + "&per_page=5")
    expect(page.locator("#asset-table tbody tr")).to_have_count(5)
    page.get_by_role("button", name=f"Select all {len(matching)} matching").click()
    expect(page.locator("#selection-count")).to_have_text(
        f"All {len(matching)} matching assets are selected."
    )
    dialog = open_dialog(page, registered)
    expect(dialog.locator("#run-selection")).to_contain_text(
        f"{len(matching)} asset(s): batch Batch A, status To-Do"
    )
    map_classes(dialog, registered, face="face-box")
    wait_until_live(page, registered, process)
    run = run_from_dialog(page, dialog)
    assert run_assets(run) == matching
    assert run.selection == {"batch": workspace.batch_a.pk, "status": "TODO"}


def snapshot() -> tuple[dict[int, Any], int, int]:
    answers = {
        t.pk: (t.answer, t.status, t.prelabel_run_id) for t in Task.objects.all()
    }
    return answers, TaskEvent.objects.count(), AnswerWrite.objects.count()


def preview_and_check(
    page: Any,
    dialog: Any,
    registered: RegisteredPlugin,
    process: Any,
    picked: list[str],
) -> Run:
    """Preview the ticked assets: the plugin's boxes are drawn next to the
    task's (empty) answer, with the validation report; nothing is written."""
    before = snapshot()
    map_classes(dialog, registered, face="face-box", coin="coin-box")
    wait_until_live(page, registered, process)
    dialog.get_by_role("button", name="Preview").click()
    preview = dialog.locator(".run-preview")
    try:
        expect(preview).to_have_attribute("data-status", "succeeded", timeout=120_000)
    except AssertionError:
        run = Run.objects.filter(dry_run=True).first()
        lines = list(run.log_lines.values_list("message", flat=True)) if run else []
        raise AssertionError(f"{lines}\n{process.log()}") from None
    rows = preview.locator(".preview-row")
    expect(rows).to_have_count(len(picked))
    # The dialog's form is still there around it, for Run on all.
    expect(dialog.locator("form#run-form fieldset.mapping")).to_be_visible()
    astronaut = rows.filter(has_text="astronaut")
    face = astronaut.locator(".preview-proposed rect.shape")
    expect(face.first.locator("title")).to_have_text("Face")
    expect(astronaut.locator(".preview-current rect.shape")).to_have_count(0)
    expect(astronaut.locator(".preview-current figcaption")).to_contain_text(
        "The task now: 0 object(s)"
    )
    expect(astronaut.locator(".preview-valid")).to_be_visible()
    coins = rows.filter(has_text="coins")
    expect(coins.locator(".preview-proposed rect.shape").first).to_be_visible()
    run = Run.objects.get(dry_run=True)
    assert run.status == Run.Status.SUCCEEDED, (run.error, process.log())
    assert sorted(
        PreviewAnswer.objects.filter(run=run).values_list(
            "asset__external_id", flat=True
        )
    ) == sorted(picked)
    assert snapshot() == before, "a dry run wrote to a task"
    return run


def test_a_model_preview_draws_boxes_and_writes_nothing(
    workspace: Workspace,
    make_plugin: Any,
    plugin_runner: Any,
    live_hub: LiveHub,
    tab: Tab,  # noqa: F811
) -> None:
    registered = make_plugin(
        name="Face and coin detector", class_names=["face", "coin", "blob"]
    )
    process = start_plugin(plugin_runner, "examples/model_plugin.py", registered)
    page = tab.page
    log_in(page, live_hub, "bob")
    page.goto(table_url(live_hub, workspace))
    picked = ["astronaut", "coins"]
    tick(page, *picked)
    dialog = open_dialog(page, registered)
    preview_and_check(page, dialog, registered, process, picked)

    # Run on all: the same dialog, now for real, on the same assets.
    run = run_from_dialog(page, dialog, button="Run on all")
    assert not run.dry_run and run_assets(run) == picked


def test_a_batch_model_preview_holds_its_imports_and_writes_nothing(
    workspace: Workspace,
    make_plugin: Any,
    plugin_runner: Any,
    live_hub: LiveHub,
    tab: Tab,  # noqa: F811
) -> None:
    registered = make_plugin(
        type=PluginType.BATCH_MODEL,
        name="Batch detector",
        class_names=["face", "coin", "blob"],
        timeout=120,
    )
    process = start_plugin(plugin_runner, "examples/batch_model_plugin.py", registered)
    page = tab.page
    log_in(page, live_hub, "alice")  # an admin: undo would show if it applied
    page.goto(table_url(live_hub, workspace))
    picked = ["astronaut", "coins"]
    tick(page, *picked)
    dialog = open_dialog(page, registered)
    run = preview_and_check(page, dialog, registered, process, picked)
    assert "nothing was written" in " ".join(
        run.log_lines.values_list("message", flat=True)
    )
    dialog.get_by_role("button", name="Cancel").first.click()
    expect(page.locator("dialog#dialog")).not_to_be_visible()
    # The ledger knows the dry run; it is marked so, with nothing to undo.
    page.goto(f"{live_hub.url}/runs/{run.pk}/")
    expect(page.locator("#run-dry-run")).to_have_text(
        "Preview (dry run): nothing written"
    )
    expect(page.locator("#run-status")).to_have_text("Succeeded")
    expect(page.locator("#run-undo")).to_have_count(0)
    # Its page shows what it answered, as the dialog did (no Run on all there).
    answers = page.locator("#run-preview-answers .preview-row")
    expect(answers).to_have_count(len(picked))
    expect(answers.locator(".preview-proposed rect.shape").first).to_be_visible()
    expect(page.locator("#preview-run-all")).to_have_count(0)
