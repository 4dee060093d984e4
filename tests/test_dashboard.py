"""The plugin dashboard: its figures after a scripted sequence of runs (answers,
an error, a time-out, a retry) made through the ledger's services, read by the
page, the JSON API and /metrics, and again by a hub process started afresh on
the same database; the admin's alert thresholds raising a banner and one e-mail,
then clearing; another organization's admin sees none of it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from plugins_app.dashboard.alerts import alerts_check
from plugins_app.dashboard.figures import WINDOWS, plugin_figures
from plugins_app.dashboard.models import Alert
from plugins_app.dashboard.tasks import check_plugin_alerts
from plugins_app.plugins.models import Plugin
from plugins_app.runs.models import Run, WorkItem
from plugins_app.runs.sweep import runs_sweep
from plugins_app.workspace import events
from plugins_app.workspace.models import (
    Asset,
    LabelingJob,
    Membership,
    Project,
    Task,
)
from tests.builders import connect_instance, new_run, pass_deadline
from tests.hub import free_port, start_hub_process
from tests.test_api import api_token, bearer
from tests.test_ledger import respond


def scripted_runs(workspace: Any, plugin: Plugin) -> datetime:
    """Run 1: three assets, two answered (one of them after its holder went
    silent: a retry), one the plugin reports an error for. Run 2: one asset
    that times out. Answers are then dated so their latencies are 2 s and 4 s.
    Returns the time the answers are dated from."""
    connect_instance(plugin)
    first = new_run(workspace, plugin, "astronaut", "coins", "camera", dispatch=True)
    astronaut, coins, camera = first.items.order_by("asset__external_id")
    # `camera`'s holder goes silent: the sweep puts it back and dispatches it
    # again (attempt 2).
    WorkItem.objects.filter(pk=camera.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    runs_sweep()
    camera.refresh_from_db()
    assert (camera.state, camera.attempts) == (WorkItem.State.LEASED, 2)
    assert respond(astronaut) == "done"
    assert respond(camera) == "done"
    assert respond(coins, error="model crashed") == "error"
    second = new_run(workspace, plugin, "coins", dispatch=True)
    pass_deadline(second)
    runs_sweep()
    assert Run.objects.get(pk=second.pk).status == Run.Status.TIMED_OUT
    assert second.items.get().failure == WorkItem.Failure.TIMEOUT
    base = timezone.now() - timedelta(minutes=10)
    for item, seconds in ((astronaut, 2), (camera, 4)):
        WorkItem.objects.filter(pk=item.pk).update(
            leased_at=base, finished_at=base + timedelta(seconds=seconds)
        )
    return base


EXPECTED = {
    "items": {
        "done": 2,
        "skipped": 0,
        "failed": 2,
        "cancelled": 0,
        "pending": 0,
        "leased": 0,
    },
    "ended": 4,
    "errors": 1,
    "timeouts": 1,
    "error_rate": 0.25,
    "timeout_rate": 0.25,
    "retries": 1,
    "latency_p50": 2.0,
    "latency_p95": 4.0,
    # Two answered items over the hour's 60 minutes.
    "items_per_minute": round(2 / 60, 4),
}


def assert_expected(figures: dict[str, Any], first_run: int, second_run: int) -> None:
    for key, value in EXPECTED.items():
        assert figures[key] == value, key
    # Failing since run 1's error (after its answers), the time-out of run 2
    # the second failure in a row.
    error = WorkItem.objects.get(run_id=first_run, failure=WorkItem.Failure.ERROR)
    failing = figures["failing"]
    since, last_answer = failing["since"], failing["last_answer_at"]
    if isinstance(since, str):  # the JSON API's, to the millisecond
        since, last_answer = map(datetime.fromisoformat, (since, last_answer))
    assert abs(since - error.finished_at) < timedelta(milliseconds=1)
    assert last_answer < since
    assert (failing["items"], failing["errors"], failing["timeouts"]) == (2, 1, 1)
    assert (failing["first_run"], failing["first_item"]) == (first_run, error.pk)
    assert figures["runs"]["failed"] == 1  # run 1: an item failed with an error
    assert figures["runs"]["timed_out"] == 1
    assert [e["run"] for e in figures["last_errors"]] == [second_run, first_run]
    assert "No answer from the plugin" in figures["last_errors"][0]["error"]
    assert sum(figures["series"]["items_per_minute"]) * 5 == pytest.approx(2)
    assert sum(figures["series"]["errors"]) == 1
    assert sum(figures["series"]["timeouts"]) == 1
    assert sum(figures["series"]["retries"]) == 1


def run_ids(plugin: Plugin) -> tuple[int, int]:
    first, second = Run.objects.filter(plugin=plugin).order_by("id")
    return first.pk, second.pk


def test_the_figures_of_a_scripted_sequence(
    db: Any, workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(max_attempts=2).plugin
    scripted_runs(workspace, plugin)
    figures = plugin_figures(plugin, WINDOWS["hour"])
    assert_expected(figures, *run_ids(plugin))
    assert [i["in_flight"] for i in figures["instances"]] == [0]

    # The JSON API: the same figures, org-scoped; the week window too.
    client = bearer(workspace.annotator)
    response = client.get(f"/api/plugins/{plugin.pk}/dashboard")
    assert response.status_code == 200, response.content
    assert_expected(response.json(), *run_ids(plugin))
    week = client.get(f"/api/plugins/{plugin.pk}/dashboard?window=week").json()
    assert (week["window"], week["errors"], week["retries"]) == ("week", 1, 1)
    assert len(week["series"]["errors"]) == 28  # 6-hour buckets
    assert (
        client.get(f"/api/plugins/{plugin.pk}/dashboard?window=year").status_code == 400
    )

    # The page, its live fragment and the plugin page's link.
    page = Client()
    page.force_login(workspace.annotator)
    html = page.get(f"/plugins/{plugin.pk}/").content.decode()
    assert f'href="/plugins/{plugin.pk}/dashboard/"' in html
    html = page.get(f"/plugins/{plugin.pk}/dashboard/?window=day").content.decode()
    assert "p50 2.0 s · p95 4.0 s" in html
    assert 'id="spark-items_per_minute"' in html and "<polyline" in html
    fragment = page.get(f"/plugins/{plugin.pk}/dashboard/figures/?window=day")
    assert fragment.status_code == 200
    assert "<html" not in fragment.content.decode()
    assert 'id="dashboard-figures"' in fragment.content.decode()
    assert page.get(f"/plugins/{plugin.pk}/dashboard/?window=x").status_code == 400
    first_run = run_ids(plugin)[0]
    assert 'id="dashboard-failing"' in html and "the last 2 jobs that ended" in html
    assert f'href="/runs/{first_run}/" id="dashboard-failing-run"' in html

    # /metrics (loopback, no token configured in the tests).
    text = Client().get("/metrics").content.decode()
    labels = f'name="{plugin.name}",plugin="{plugin.public_id}"'
    assert f"pluginhub_plugin_error_rate{{{labels}}} 0.25" in text
    assert f"pluginhub_plugin_timeout_rate{{{labels}}} 0.25" in text
    assert f"pluginhub_plugin_retries{{{labels}}} 1.0" in text
    assert f'pluginhub_plugin_latency_seconds{{{labels},quantile="0.95"}} 4.0' in text

    # An answer ends the streak; failures after it start a new one.
    connect_instance(plugin)
    answered = new_run(workspace, plugin, "camera", dispatch=True)
    assert respond(answered.items.get()) == "done"
    assert plugin_figures(plugin, WINDOWS["hour"])["failing"] is None
    html = page.get(f"/plugins/{plugin.pk}/dashboard/").content.decode()
    assert 'id="dashboard-failing"' not in html
    failed = new_run(workspace, plugin, "coins", dispatch=True)
    assert respond(failed.items.get(), error="again") == "error"
    failing = plugin_figures(plugin, WINDOWS["hour"])["failing"]
    assert (failing["items"], failing["first_run"]) == (1, failed.pk)
    assert failing["since"] == failed.items.get().finished_at


def test_the_figures_read_a_window_through_the_dashboard_indexes(
    db: Any, workspace: Any, make_plugin: Any
) -> None:
    """The plans SQLite makes for every query of the figures: the items and
    runs of one plugin in the window are found by (plugin, finished_at) and
    (plugin, created_at) (runs 0013), not by reading all the plugin's items,
    and no query scans a whole table."""
    plugin = make_plugin(max_attempts=2).plugin
    scripted_runs(workspace, plugin)
    with CaptureQueriesContext(connection) as captured:
        plugin_figures(plugin, WINDOWS["hour"])
    plans: dict[str, list[str]] = {}
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            cursor.execute(f"EXPLAIN QUERY PLAN {query['sql']}")
            plans[query["sql"]] = [str(row[-1]) for row in cursor.fetchall()]
    lines = [line for plan in plans.values() for line in plan]
    assert not [line for line in lines if line.startswith("SCAN runs_")], plans
    for sql, plan in plans.items():
        if '"runs_workitem"."finished_at" >=' in sql:
            assert any("INDEX item_plugin_finished" in line for line in plan), sql
        if 'FROM "runs_run"' in sql:
            assert any("INDEX run_plugin_created" in line for line in plan), sql
    windowed = [sql for sql in plans if '"runs_workitem"."finished_at" >=' in sql]
    assert len(windowed) >= 4  # counts, percentiles, last errors, sparklines


def test_the_figures_survive_a_hub_restart(
    transactional_db: Any, workspace: Any, make_plugin: Any, tmp_path: Path
) -> None:
    plugin = make_plugin(max_attempts=2).plugin
    scripted_runs(workspace, plugin)
    token = api_token(workspace.annotator.username)
    port = free_port()

    def read() -> dict[str, Any]:
        request = Request(
            f"http://127.0.0.1:{port}/api/plugins/{plugin.pk}/dashboard",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    hub = start_hub_process(port, tmp_path)
    try:
        assert_expected(read(), *run_ids(plugin))
        hub.stop()  # SIGKILL: nothing this process counted survives it
        hub = start_hub_process(port, tmp_path)
        assert_expected(read(), *run_ids(plugin))
    finally:
        hub.stop()


def test_alerts_are_raised_shown_mailed_once_and_cleared(
    db: Any, workspace: Any, make_plugin: Any, django_capture_on_commit_callbacks: Any
) -> None:
    def check() -> dict[str, int]:
        # The mail goes once the alert is committed.
        with django_capture_on_commit_callbacks(execute=True):
            return alerts_check()

    plugin = make_plugin(max_attempts=2).plugin
    admin = Client()
    admin.force_login(workspace.admin)
    url = f"/plugins/{plugin.pk}/alerts/"
    form = {"error_rate_percent": "20", "window": "hour", "min_items": "2"}
    assert admin.post(url, {**form, "error_rate_percent": "250"}).status_code == 400
    assert admin.post(url, {**form, "window": "year"}).status_code == 400
    assert admin.post(url, {**form, "no_instance_minutes": "x"}).status_code == 400
    assert admin.post(url, {**form, "no_instance_minutes": "5"}).status_code == 302
    member = Client()
    member.force_login(workspace.annotator)
    assert member.post(url, form).status_code == 403  # admins set thresholds

    scripted_runs(workspace, plugin)  # 1 error of 4 ended: 25 % >= 20 %
    assert check() == {"raised": 1, "cleared": 0}
    alert = Alert.objects.get()
    assert alert.kind == Alert.Kind.ERROR_RATE and alert.cleared_at is None
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [workspace.admin.email]
    assert plugin.name in mail.outbox[0].subject
    html = member.get(f"/projects/{workspace.project.pk}/").content.decode()
    assert 'class="alert-banner"' in html and "1 of 4 items failed" in html
    outsider = Client()
    outsider.force_login(workspace.outsider)
    assert "alert-banner" not in outsider.get("/").content.decode()
    assert check() == {"raised": 0, "cleared": 0}  # still holds: no new mail
    assert len(mail.outbox) == 1

    # The error leaves the window: the condition clears, and so does the alert.
    WorkItem.objects.filter(failure=WorkItem.Failure.ERROR).update(
        finished_at=timezone.now() - timedelta(hours=2)
    )
    assert check() == {"raised": 0, "cleared": 1}
    alert.refresh_from_db()
    assert alert.cleared_at is not None
    assert "alert-banner" not in member.get("/").content.decode()

    # No live instance while an item has waited 5 minutes.
    run = new_run(workspace, plugin, "astronaut")  # queued, not dispatched
    plugin.instances.all().delete()  # then the instance goes
    assert check()["raised"] == 0  # queued just now
    run.items.update(queued_at=timezone.now() - timedelta(minutes=6))
    assert check() == {"raised": 1, "cleared": 0}
    assert Alert.objects.get(cleared_at=None).kind == Alert.Kind.NO_INSTANCE
    assert len(mail.outbox) == 2
    page = member.get(f"/plugins/{plugin.pk}/dashboard/").content.decode()
    assert "No live instance" in page and "No instance is connected" in page
    connect_instance(plugin)
    # This time through the beat task's body (settings.CELERY_BEAT_SCHEDULE).
    assert check_plugin_alerts() == {"raised": 0, "cleared": 1}
    assert not Alert.objects.filter(cleared_at=None).exists()
    assert len(mail.outbox) == 2  # clearing mails nobody
    beat = settings.CELERY_BEAT_SCHEDULE["check-plugin-alerts"]
    assert beat["task"] == check_plugin_alerts.name


def test_the_banner_shows_to_the_plugins_projects_members_and_the_admins(
    db: Any, workspace: Any, make_plugin: Any
) -> None:
    """The plugin is active on project P only. Bob ran it on P, Dana labeled
    a task of P, Erin is in a labeling job of P, Frank labeled and ran plugins
    on another project of the same organization: he is not told. The
    organization's admin is, though she never touched P."""
    plugin = make_plugin().plugin
    assert list(plugin.projects.all()) == [workspace.project]
    elsewhere = Project.objects.create(organization=workspace.org, name="Q")
    asset = Asset.objects.create(project=elsewhere, external_id="q", file="q.png")
    task = Task.objects.create(project=elsewhere, asset=asset)
    other = make_plugin(name="other").plugin
    other.projects.set([elsewhere])

    def member(name: str) -> Any:
        user = User.objects.create_user(name, f"{name}@x.test", "pw")
        Membership.objects.create(
            user=user, organization=workspace.org, role=Membership.Role.ANNOTATOR
        )
        return user

    dana, erin, frank = member("dana"), member("erin"), member("frank")
    connect_instance(plugin)
    new_run(workspace, plugin)  # by bob
    events.emit(workspace.project.tasks.first(), events.LABEL_SUBMITTED, actor=dana)
    LabelingJob.objects.create(project=workspace.project, name="boxes").members.add(
        erin
    )
    events.emit(task, events.LABEL_SUBMITTED, actor=frank)
    LabelingJob.objects.create(project=elsewhere, name="boxes").members.add(frank)
    Run.objects.create(
        organization=workspace.org, project=elsewhere, plugin=other, created_by=frank
    )
    Alert.objects.create(plugin=plugin, kind=Alert.Kind.NO_INSTANCE, message="gone")

    def sees_banner(user: Any) -> bool:
        browser = Client()
        browser.force_login(user)
        return 'class="alert-banner"' in browser.get("/").content.decode()

    shown = {
        user.username: sees_banner(user)
        for user in (workspace.admin, workspace.annotator, dana, erin, frank)
    }
    assert shown == {
        "alice": True,
        "bob": True,
        "dana": True,
        "erin": True,
        "frank": False,
    }
    assert not sees_banner(workspace.outsider)  # another organization's admin


def test_another_organization_sees_no_dashboard(
    db: Any, workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    outsider = Client()
    outsider.force_login(workspace.outsider)
    for url in (
        f"/plugins/{plugin.pk}/dashboard/",
        f"/plugins/{plugin.pk}/dashboard/figures/",
    ):
        assert outsider.get(url).status_code == 404
    assert outsider.post(f"/plugins/{plugin.pk}/alerts/", {}).status_code == 404
    api = bearer(workspace.outsider)
    assert api.get(f"/api/plugins/{plugin.pk}/dashboard").status_code == 404
    assert api.get("/api/plugins/99999999/dashboard").status_code == 404
    rule = {"error_rate_percent": 10, "no_instance_minutes": 3}
    url = f"/api/plugins/{plugin.pk}/alert-rule"
    assert api.put(url, rule, content_type="application/json").status_code == 404


def test_the_json_api_sets_alert_thresholds(
    db: Any, workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    url = f"/api/plugins/{plugin.pk}/alert-rule"
    admin, member = bearer(workspace.admin), bearer(workspace.annotator)

    def put(client: Client, body: dict[str, Any]) -> Any:
        return client.put(url, json.dumps(body), content_type="application/json")

    response = put(admin, {"error_rate_percent": 12.5, "window": "day"})
    assert response.status_code == 200, response.content
    assert response.json() == {
        "error_rate_percent": 12.5,
        "window": "day",
        "min_items": 5,
        "no_instance_minutes": None,
    }
    assert plugin.alert_rule.error_rate == 0.125
    assert put(member, {"error_rate_percent": 50}).status_code == 403
    for bad in (
        {"error_rate_percent": 0},
        {"error_rate_percent": 101},
        {"window": "month"},
        {"no_instance_minutes": -1},
        {"min_items": 10**9},
    ):
        assert put(admin, bad).status_code == 400, bad
    assert put(admin, {"error_rate_percent": "x"}).status_code == 422
    plugin.alert_rule.refresh_from_db()
    assert plugin.alert_rule.window == "day"  # refusals changed nothing
