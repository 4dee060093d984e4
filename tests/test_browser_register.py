"""The register dialog shows only the fields the chosen plugin type has
(plugins/kinds/ register_fields; static/js/hub.js hides the others), and the
same form without JavaScript still holds every field."""

from __future__ import annotations

from typing import Any

from django.test import Client

from tests.test_browser import (  # noqa: F401 - pytest fixtures
    Tab,
    browser,
    expect,
    log_in,
    tab,
)


def test_the_register_dialog_shows_only_the_chosen_types_fields(
    workspace: Any,
    live_hub: Any,
    tab: Tab,  # noqa: F811
) -> None:
    page = tab.page
    log_in(page, live_hub, "alice")
    page.goto(f"{live_hub.url}/plugins/")
    page.get_by_role("button", name="Register a plugin").click()
    dialog = page.locator("#dialog")
    class_names = dialog.locator("textarea[name=class_names_text]")
    events = dialog.locator("input[name=trigger_events]").first
    kind_type = dialog.get_by_label("Type", exact=True)

    expect(class_names).to_be_visible()  # Model, the default type
    expect(events).to_be_hidden()
    model_note = dialog.get_by_text("Labels one asset per job")
    expect(model_note).to_be_visible()

    kind_type.select_option(label="Event-triggered")
    expect(class_names).to_be_hidden()
    expect(events).to_be_visible()
    expect(dialog.get_by_text("there is no Run button")).to_be_visible()
    expect(model_note).to_be_hidden()

    kind_type.select_option(label="Export")
    expect(class_names).to_be_hidden()
    expect(events).to_be_hidden()

    kind_type.select_option(label="Batch Model")
    expect(class_names).to_be_visible()


def test_without_javascript_the_register_form_has_every_field(
    workspace: Any,
) -> None:
    client = Client()
    client.force_login(workspace.admin)

    text = client.get("/plugins/new/").content.decode()

    assert 'name="class_names_text"' in text and 'name="trigger_events"' in text
    assert 'data-kinds="model batch_model"' in text
    assert 'data-kinds="event"' in text
