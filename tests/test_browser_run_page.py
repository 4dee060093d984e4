"""The run page and the finished look in a real browser (Debian's Chromium,
Playwright) against a live hub: an older run's page draws its own output
after a newer run, the gallery pages past 12, dialog URLs opened directly are
pages in the layout, the show-once secret's Copy button fills the clipboard,
and no main page scrolls sideways at 390 px."""

# ruff: noqa: F811 - the browser fixtures are imported, then named as arguments

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from plugins_app.plugins.models import Plugin
from plugins_app.runs.models import Run
from plugins_app.workspace.models import Storage, Task
from tests.builders import bulk_assets, connect_instance, new_run
from tests.conftest import Workspace
from tests.hub import LiveHub
from tests.test_browser import (  # noqa: F401 - pytest fixtures
    CHROMIUM,
    CHROMIUM_ARGS,
    Tab,
    browser,
    expect,
    log_in,
    tab,
)
from tests.test_run_page import CHANNEL, answer_all, box


@pytest.fixture
def plugin(make_plugin: Any) -> Plugin:
    plugin = make_plugin(timeout=5, name="Echo").plugin
    Plugin.objects.filter(pk=plugin.pk).update(concurrency=50)
    connect_instance(plugin, CHANNEL)
    return plugin


def xs(page: Any) -> list[str]:
    shapes = page.locator("#run-assets rect.shape")
    return [shapes.nth(i).get_attribute("x") for i in range(shapes.count())]


def test_an_older_runs_page_still_draws_its_own_output_after_a_newer_run(
    live_hub: LiveHub, workspace: Workspace, plugin: Plugin, tab: Tab
) -> None:
    older = new_run(workspace, plugin, "astronaut", dispatch=True)
    answer_all(older, [box(11)])
    newer = new_run(workspace, plugin, "astronaut", dispatch=True)
    answer_all(newer, [box(77), box(88)])
    page = tab.page
    log_in(page, live_hub, "bob")

    page.goto(f"{live_hub.url}/runs/{older.pk}/")
    expect(page.locator("#run-assets rect.shape")).to_have_count(1)
    assert xs(page) == ["11"]
    expect(page.locator("#run-assets figcaption")).to_contain_text(
        f"replaced since by run #{newer.pk}"
    )
    page.goto(f"{live_hub.url}/runs/{newer.pk}/")
    expect(page.locator("#run-assets rect.shape")).to_have_count(2)
    assert xs(page) == ["77", "88"]


def test_the_run_page_pages_through_assets_beyond_12(
    live_hub: LiveHub, workspace: Workspace, plugin: Plugin, tab: Tab
) -> None:
    ids = bulk_assets(workspace.project, 14)
    run = new_run(workspace, plugin, *ids, dispatch=True)
    answer_all(run, [box(9)])
    page = tab.page
    log_in(page, live_hub, "bob")
    page.goto(f"{live_hub.url}/runs/{run.pk}/")
    navigations = tab.mark()
    figures = page.locator("#run-assets figure")
    expect(figures).to_have_count(12)
    expect(page.locator("#run-gallery-range")).to_have_text(
        "1–12 of 14, each drawn with what this run wrote"
    )

    page.get_by_role("link", name="Next").click()
    expect(page.locator("#run-gallery-2")).to_be_visible()
    expect(figures).to_have_count(2)
    expect(figures.nth(0)).to_have_attribute("data-asset", "bulk-00012")
    expect(page.locator("#run-assets rect.shape")).to_have_count(2)
    tab.assert_not_reloaded(navigations)  # htmx swapped the section only
    page.get_by_role("link", name="Previous").click()
    expect(figures).to_have_count(12)


# Each visible control's type and the look it gets from the stylesheet (JSON
# and code boxes, class "mono", are monospace on purpose).
CONTROL_STYLES = """() => [...document.querySelectorAll(
    '.dialog-page input:not([type=checkbox]):not([type=radio]):not([type=hidden]),'
    + '.dialog-page select, .dialog-page textarea')]
  .filter(e => e.offsetParent !== null && !e.classList.contains('mono'))
  .map(e => { const s = getComputedStyle(e);
    return [e.type, [s.borderTopColor, s.borderRadius, s.fontSize, s.fontFamily]
      .join(' ')] })"""


def test_dialog_urls_opened_directly_are_pages_in_the_layout(
    live_hub: LiveHub, workspace: Workspace, plugin: Plugin, tab: Tab
) -> None:
    page = tab.page
    log_in(page, live_hub, "alice")
    project = workspace.project.pk
    for path, heading in (
        ("/plugins/new/", "Register a plugin"),
        (f"/projects/{project}/plugins/{plugin.pk}/run/", "Run Echo"),
        ("/storages/new/", "Add a cloud storage"),
    ):
        page.goto(f"{live_hub.url}{path}")
        expect(page.locator(".topbar nav")).to_contain_text("Projects")
        expect(page.locator(".dialog-page h2").first).to_contain_text(heading)
        expect(page).to_have_title(f"{heading} · Plugin Hub")
        expect(page.locator(".dialog-page form")).to_be_visible()
        # The stylesheet applies: the form sits in a white card.
        background = page.locator(".dialog-page").evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        assert background == "rgb(255, 255, 255)", (path, background)

    # One style for every control: text, url, number, select, textarea.
    page.goto(f"{live_hub.url}/plugins/new/")
    styles = page.evaluate(CONTROL_STYLES)
    kinds = {kind for kind, _ in styles}
    assert {"text", "url", "number", "select-one", "textarea"} <= kinds, kinds
    assert len({style for _, style in styles}) == 1, styles

    # Cancel on the page goes back where it came from.
    page.goto(f"{live_hub.url}/storages/new/")
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_url(f"{live_hub.url}/storages/")


def test_the_show_once_secret_has_a_copy_button_that_fills_the_clipboard(
    live_hub: LiveHub, workspace: Workspace, browser: Any
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=live_hub.url
    )
    page = context.new_page()
    try:
        log_in(page, live_hub, "alice")
        page.goto(f"{live_hub.url}/plugins/")
        page.get_by_role("button", name="Register a plugin").click()
        dialog = page.locator("dialog#dialog")
        dialog.get_by_label("Name", exact=True).fill("Copied")
        dialog.get_by_label("Class names").fill("face")
        dialog.get_by_role("button", name="Register").click()
        secret = dialog.locator("#new-plugin-secret")
        expect(secret).to_be_visible()
        # Wide enough: the whole secret is inside the dialog, none clipped.
        box_secret, box_dialog = secret.bounding_box(), dialog.bounding_box()
        assert (
            box_secret["x"] + box_secret["width"]
            <= box_dialog["x"] + box_dialog["width"]
        )
        dialog.get_by_role("button", name="Copy").nth(1).click()
        expect(dialog.locator("#copy-secret")).to_have_text("Copied")
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == secret.inner_text().strip() and len(copied) >= 32
    finally:
        context.close()


# What sticks out past the viewport, for the failure message.
WIDEST = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
  .filter(e => !e.closest('.table, pre, .log'))
  .slice(0, 5)
  .map(e => `${e.tagName}.${e.className}#${e.id} ${e.getBoundingClientRect().right}`)"""


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


def test_main_pages_have_no_horizontal_scroll_at_390_px(
    live_hub: LiveHub, workspace: Workspace, plugin: Plugin, phone: Any
) -> None:
    run = new_run(workspace, plugin, "astronaut", "coins", dispatch=True)
    answer_all(run, [box(20)])
    Run.objects.filter(pk=run.pk).update(error="x" * 300)
    Storage.objects.create(
        organization=workspace.org,
        name="A storage with a long name " * 3,
        bucket="a-bucket-with-a-rather-long-name-for-a-phone",
    )
    task = Task.objects.get(asset=workspace.asset("astronaut"))
    project = workspace.project.pk
    log_in(phone, live_hub, "alice")
    paths = [
        "/",
        "/plugins/",
        f"/plugins/{plugin.pk}/",
        "/plugins/new/",
        "/runs/",
        f"/runs/{run.pk}/",
        "/storages/",
        "/storages/new/",
        "/members/",
        f"/projects/{project}/",
        f"/projects/{project}/assets/",
        f"/projects/{project}/workflow/",
        f"/projects/{project}/tasks/{task.pk}/",
        f"/projects/{project}/assets/{task.asset_id}/",
        f"/projects/{project}/plugins/{plugin.pk}/run/",
    ]
    wide = {}
    for path in paths:
        response = phone.goto(f"{live_hub.url}{path}")
        assert response.status == 200, path
        width = phone.evaluate("document.documentElement.scrollWidth")
        if width > 390:
            wide[path] = (width, phone.evaluate(WIDEST))
    assert not wide, wide
