"""The plugin dashboard in a real browser (Chromium, Playwright): the page
renders its figures and sparklines, and when a run finishes the numbers and
the sparkline move without a reload: the hub pushes the figures fragment
over the page's websocket (its htmx poll, every 30 s, is only a fallback and
too slow for this test's wait)."""

from __future__ import annotations

from typing import Any

from tests.builders import connect_instance, new_run
from tests.test_browser import (  # noqa: F401 - pytest fixtures
    Tab,
    browser,
    expect,
    log_in,
    tab,
)
from tests.test_ledger import respond


def test_the_dashboard_updates_live_when_a_run_finishes(
    workspace: Any,
    make_plugin: Any,
    live_hub: Any,
    tab: Tab,  # noqa: F811
) -> None:
    plugin = make_plugin().plugin
    connect_instance(plugin)
    page = tab.page
    log_in(page, live_hub, "bob")  # a member, not an admin
    page.goto(f"{live_hub.url}/plugins/{plugin.pk}/")
    page.locator("#plugin-dashboard-link").click()
    expect(page.locator("#dashboard-instances")).to_contain_text("test!instance:1")
    spark = page.locator("#spark-items_per_minute")
    expect(spark).to_have_attribute("data-last", "0.0")
    flat = spark.locator("polyline").get_attribute("points")
    expect(page.locator("#dashboard-errors")).to_contain_text("No error")
    expect(page.locator("#alert-rule-form")).to_have_count(0)  # admins only
    navigations = tab.mark()

    run = new_run(workspace, plugin, "astronaut", dispatch=True)
    assert respond(run.items.get()) == "done"

    # One item answered in the last 5-minute bucket: 0.2 a minute.
    expect(spark).to_have_attribute("data-last", "0.2")
    expect(page.locator("#dashboard-items")).to_contain_text("done 1")
    assert spark.locator("polyline").get_attribute("points") != flat
    expect(page.locator("#dashboard-failing")).to_have_count(0)

    # A job fails after it: the page says since when, and links the run.
    failed = new_run(workspace, plugin, "coins", dispatch=True)
    assert respond(failed.items.get(), error="model crashed") == "error"
    failing = page.locator("#dashboard-failing")
    expect(failing).to_contain_text("Failing since")
    expect(failing).to_contain_text("the last 1 job that ended failed (1 error")
    expect(page.locator("#dashboard-failing-run")).to_have_attribute(
        "href", f"/runs/{failed.pk}/"
    )
    tab.assert_not_reloaded(navigations)
