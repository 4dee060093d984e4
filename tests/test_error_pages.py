"""Error pages in the app's layout, the favicon, and a 403 that logs one line.
DEBUG is off in the tests, as in production, so Django renders the templates."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import path

from plugins_app.urls import urlpatterns as hub_urlpatterns
from tests.conftest import Workspace


def _boom(request: Any) -> Any:
    raise RuntimeError("boom")


# The hub's URLs plus one view that fails, for the 500 page.
urlpatterns = [path("boom/", _boom), *hub_urlpatterns]


def test_debug_is_off() -> None:
    assert settings.DEBUG is False


def test_404_is_in_the_layout_with_navigation(workspace: Workspace) -> None:
    client = Client()
    client.force_login(workspace.annotator)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    body = response.content.decode()
    assert 'id="error-page"' in body and "404 · Not found" in body
    assert "/no/such/page/" in body
    assert 'href="/runs/"' in body  # the signed-in navigation
    assert "css/hub.css" in body


def test_403_is_in_the_layout_and_logs_one_line(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client()
    client.force_login(workspace.annotator)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get("/plugins/new/")
    assert response.status_code == 403
    body = response.content.decode()
    assert "403 · Not allowed" in body and "Only admins register plugins" in body
    assert 'href="/runs/"' in body
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.getMessage() == "Forbidden (Permission denied): /plugins/new/"
    formatted = logging.Formatter().format(record)
    assert "Traceback" not in formatted and "\n" not in formatted


@pytest.mark.urls("tests.test_error_pages")
def test_500_is_in_the_layout_and_keeps_its_traceback(
    workspace: Workspace, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(workspace.annotator)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = client.get("/boom/")
    assert response.status_code == 500
    body = response.content.decode()
    assert "500 · Something went wrong" in body
    assert 'href="/runs/"' in body and "css/hub.css" in body
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert "Traceback" in logging.Formatter().format(record)


def test_favicon_is_linked_and_served(workspace: Workspace) -> None:
    client = Client()
    client.force_login(workspace.annotator)
    page = client.get("/").content.decode()
    assert 'rel="icon" href="/static/img/favicon.svg"' in page
    redirect = client.get("/favicon.ico")
    assert redirect.status_code == 302
    assert redirect["Location"] == "/static/img/favicon.svg"
    assert Client().get("/favicon.ico").status_code == 302  # signed out too
    svg = client.get("/static/img/favicon.svg")
    assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml"
