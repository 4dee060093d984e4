"""/api/docs works offline: Swagger UI comes from the hub's own static files
(django-ninja's copies), so with every request to another host cut off the
page still renders the operations, and no request leaves 127.0.0.1."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tests.hub import LiveHub
from tests.test_browser import browser, expect, tab  # noqa: F401 - fixtures


def test_api_docs_render_with_the_network_cut_off(
    live_hub: LiveHub,
    tab: Any,  # noqa: F811
) -> None:
    page = tab.page
    requested: list[str] = []
    aborted: list[str] = []

    def only_the_hub(route: Any) -> None:
        url = route.request.url
        requested.append(url)
        if urlsplit(url).hostname != "127.0.0.1":
            aborted.append(url)
            route.abort()
        else:
            route.continue_()

    page.context.route("**/*", only_the_hub)
    page.goto(f"{live_hub.url}/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Plugin Hub API")
    operations = page.locator(".opblock-summary-path")
    expect(operations.first).to_be_visible()
    assert operations.count() > 5
    expect(
        page.locator(".opblock-summary-path", has_text="/api/runs")
    ).not_to_have_count(0)
    assert requested, "the route saw no request"
    assert not aborted, f"requests left 127.0.0.1: {aborted}"
