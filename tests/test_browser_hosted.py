"""Hosted plugins in a real browser (Debian's Chromium, Playwright) against a
live hub and a real Celery worker: an admin uploads the QA example on the
plugin's page and watches the build go from Building to Active without a
reload; a labeler submits a bad invoice on the task page and sees the bot's
issues, the task back in Label and the accuracy arrive by themselves."""

from __future__ import annotations

from typing import Any

from plugins_app.hosted.invoices import INVOICE_ONTOLOGY, invoice_answer
from plugins_app.hosted.models import HostedCode
from plugins_app.plugins.models import PluginType
from plugins_app.plugins.triggers import plugin_set_triggers
from plugins_app.workspace import events
from tests.hosted_support import QA_EXAMPLE
from tests.hub import LiveHub, PluginProcess
from tests.test_browser import (  # noqa: F401 - pytest fixtures
    Plugins,
    Tab,
    browser,
    expect,
    log_in,
    tab,
)


def test_an_admin_uploads_a_hosted_plugin_and_a_submit_gets_its_verdict_live(
    workspace: Any,
    make_plugin: Plugins,
    live_hub: LiveHub,
    celery_worker: PluginProcess,
    tab: Tab,  # noqa: F811
) -> None:
    workspace.project.ontology = INVOICE_ONTOLOGY
    workspace.project.save()
    plugin = make_plugin(type=PluginType.EVENT, name="Invoice QA").plugin
    plugin_set_triggers(
        plugin, projects=[workspace.project], event_names=[events.LABEL_SUBMITTED]
    )
    page = tab.page
    log_in(page, live_hub, "alice")
    page.goto(f"{live_hub.url}/plugins/{plugin.pk}/")
    panel = page.locator("#hosted-panel")
    expect(panel).to_contain_text("No code uploaded")
    navigations = tab.mark()
    panel.locator("input[name=code]").set_input_files(
        files=[
            {
                "name": "main.py",
                "mimeType": "text/x-python",
                "buffer": QA_EXAMPLE.read_bytes(),
            }
        ]
    )
    panel.get_by_label("Memory limit (MB)").fill("300")
    panel.get_by_role("button", name="Upload and build").click()
    # Building first (the worker has not finished), then Active by itself.
    expect(page.locator("#build-status")).to_have_text("Active", timeout=30_000)
    expect(page.locator("#hosted-panel")).to_contain_text("PluginHandler")
    expect(page.locator("#hosted-panel")).to_contain_text("300 MB memory")
    tab.assert_not_reloaded(navigations)
    assert HostedCode.objects.get(plugin=plugin).status == HostedCode.Status.ACTIVE

    task = workspace.asset("astronaut").task
    # The labeler submits this answer from the review canvas as it stands.
    task.answer = invoice_answer("DE89370400440532013000", "CHF")
    task.save(update_fields=["answer"])
    page.goto(f"{live_hub.url}/projects/{workspace.project.pk}/tasks/{task.pk}/")
    expect(page.locator("#canvas")).to_have_attribute("data-ready", "true")
    navigations = tab.mark()
    page.locator("#task-submit").click()
    issues = page.locator("#task-issues")
    expect(issues).to_contain_text("IBAN number should start by FR", timeout=30_000)
    expect(issues).to_contain_text("Authorized currencies are only EUR and USD")
    expect(page.locator("#task-stage")).to_have_text("Label")
    expect(page.locator("#task-metadata")).to_contain_text("accuracy")
    tab.assert_not_reloaded(navigations)
