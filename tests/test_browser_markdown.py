"""The Markdown Run dialog in a real browser: the CSV goes up as a multipart
htmx request, the real SDK plugin creates the documents, and the asset page
renders one as sanitized HTML in a sandboxed frame."""

from __future__ import annotations

import re
from typing import Any

from plugins_app.plugins.models import PluginInstance, PluginType
from plugins_app.runs.models import Run
from plugins_app.workspace.models import Asset
from tests.conftest import Workspace
from tests.hub import LiveHub
from tests.test_browser import (  # noqa: F401 - fixtures
    browser,
    expect,
    log_in,
    open_run_dialog,
    poll,
    tab,
)

CSV = b"title,body\nHello,<img src=x onerror=alert(1)> **bold**\nBye,plain\n"


def test_it_runs_a_markdown_plugin_with_an_uploaded_csv(
    workspace: Workspace,
    make_plugin: Any,
    plugin_runner: Any,
    live_hub: LiveHub,
    tab: Any,  # noqa: F811
) -> None:
    registered = make_plugin(
        type=PluginType.MARKDOWN, class_names=[], name="Markdown docs"
    )
    process = plugin_runner(
        "examples/markdown_plugin.py", registered, sdk="1.4", wait_live=False
    )
    page = tab.page
    log_in(page, live_hub, "bob")
    dialog = open_run_dialog(page, live_hub, workspace, registered)

    # The browser itself asks for the file and the template first.
    dialog.get_by_role("button", name="Run", exact=True).click()
    expect(dialog.get_by_label("CSV file")).to_have_attribute("required", "")
    assert not Run.objects.exists()
    dialog.get_by_label("CSV file").set_input_files(
        files=[{"name": "docs.csv", "mimeType": "text/csv", "buffer": CSV}]
    )
    dialog.get_by_label("Markdown template").fill("# |title|\n\n|body|")
    live = PluginInstance.objects.live().filter(plugin=registered.plugin)
    poll(page, live.exists, lambda: f"the plugin to connect:\n{process.log()}", 30)
    dialog.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=30_000)

    run = Run.objects.get(pk=int(page.url.rstrip("/").rsplit("/", 1)[1]))
    assert run.inputs["csv_name"] == "docs.csv"
    doc = Asset.objects.get(created_by_run=run, external_id="00000.md")
    page.goto(f"{live_hub.url}/projects/{workspace.project.pk}/")
    page.locator("#project-assets a", has_text="00000.md").click()
    # Sanitized HTML in a sandboxed frame (no allow-scripts): the tag is
    # rendered, its handler and its non-same-origin src are gone.
    frame = page.locator("#asset-markdown")
    expect(frame).to_have_attribute("sandbox", "")
    body = page.frame_locator("#asset-markdown").locator("body")
    expect(body.locator("h1")).to_have_text("Hello")
    expect(body.locator("strong")).to_have_text("bold")
    expect(body.locator("img")).to_have_count(1)
    expect(body.locator("img[onerror], img[src]")).to_have_count(0)
    expect(body).not_to_contain_text("onerror")
    assert page.url.endswith(f"/assets/{doc.pk}/")
