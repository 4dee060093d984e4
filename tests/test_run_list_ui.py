"""Small things the runs and plugin pages say: an empty filter result, an
unknown status, heartbeats "just now", and log extras as key=value chips."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.test import Client
from django.utils import timezone

from plugins_app.runs.models import Run, RunLogLine
from plugins_app.web.fragments import log_lines_html
from plugins_app.web.templatetags.relative_time import ago
from tests.builders import connect_instance
from tests.conftest import Workspace


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def a_run(workspace: Workspace, plugin: Any, status: str = Run.Status.SUCCEEDED) -> Run:
    return Run.objects.create(
        organization=workspace.org,
        project=workspace.project,
        plugin=plugin,
        created_by=workspace.admin,
        status=status,
    )


def test_an_empty_filter_result_says_so_with_a_way_out(
    workspace: Workspace, make_plugin: Any
) -> None:
    client = client_for(workspace.annotator)
    assert "No runs yet." in client.get("/runs/").content.decode()

    a_run(workspace, make_plugin().plugin)
    html = client.get("/runs/?status=failed").content.decode()
    assert "No runs yet." not in html
    assert "No runs match these filters." in html
    assert '<a href="/runs/">Clear filters</a>' in html
    # The htmx table swap says the same.
    table = client.get("/runs/?status=failed", HTTP_HX_REQUEST="true")
    assert "No runs match these filters." in table.content.decode()


def test_an_unknown_status_is_named_with_the_valid_ones(
    workspace: Workspace, make_plugin: Any
) -> None:
    run = a_run(workspace, make_plugin().plugin)
    client = client_for(workspace.annotator)

    page = client.get("/runs/?status=bogus")
    assert page.status_code == 400
    html = page.content.decode()
    assert "Unknown status &#x27;bogus&#x27;." in html
    assert "Valid statuses: queued, running," in html
    assert f'<a href="/runs/{run.pk}/">' in html  # the filter is ignored, said so

    api = client.get("/api/runs?status=bogus")
    assert api.status_code == 400
    assert api.json()["detail"].startswith("Unknown status 'bogus'. Valid statuses:")
    assert [r["id"] for r in client.get("/api/runs?status=succeeded").json()] == [
        run.pk
    ]


def test_relative_times_say_just_now_under_a_minute() -> None:
    now = timezone.now()
    assert ago(now - timedelta(seconds=2), now) == "just now"
    assert ago(now + timedelta(seconds=1), now) == "just now"  # a clock ahead
    assert ago(now - timedelta(minutes=3), now) == "3\xa0minutes ago"
    assert ago(None) == "—"


def test_a_fresh_heartbeat_reads_just_now(
    workspace: Workspace, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect_instance(plugin)
    client = client_for(workspace.admin)
    for url in ("/plugins/", f"/plugins/{plugin.pk}/"):
        html = client.get(url).content.decode()
        assert "just now" in html, url
        assert "0\xa0minutes" not in html and "0 minutes" not in html, url


def test_log_extras_are_key_value_chips(workspace: Workspace, make_plugin: Any) -> None:
    run = a_run(workspace, make_plugin().plugin, Run.Status.RUNNING)
    line = RunLogLine.objects.create(
        run=run,
        level="HUB",
        message="Job sent",
        extra={"asset": "astronaut", "attempt": 2, "ok": True, "tags": ["a", "<b>"]},
    )
    html = str(log_lines_html([line]))
    assert "{'asset'" not in html and "True" not in html  # no Python repr
    assert '<span class="chip"><b>asset</b>=astronaut</span>' in html
    assert '<span class="chip"><b>attempt</b>=2</span>' in html
    assert '<span class="chip"><b>ok</b>=true</span>' in html
    assert (
        '<span class="chip"><b>tags</b>=[&quot;a&quot;,&quot;&lt;b&gt;&quot;]</span>'
        in html
    )
    plain = RunLogLine.objects.create(run=run, level="INFO", message="no extras")
    assert "chip" not in str(log_lines_html([plain]))
