"""GET /metrics (Prometheus text from the database; a bearer token, or loopback
clients only without one; no production start without a token) and the JSON
log format (`HUB_LOG_FORMAT=json`)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import timedelta
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.test import Client, override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from plugins_app.ops.logging import JsonFormatter
from plugins_app.plugins.models import FailedHeartbeat, PluginInstance
from plugins_app.runs.models import Run, WorkItem
from tests.builders import connect_instance

ROOT = Path(__file__).resolve().parent.parent
_sessions = count()


def scrape(client: Client, **headers: str) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def make_run(workspace: Any, plugin: Any, status: str) -> Run:
    return Run.objects.create(
        organization=workspace.org,
        project=workspace.project,
        plugin=plugin,
        status=status,
    )


def make_item(run: Run, state: str, wait: float | None = None, **kw: Any) -> WorkItem:
    """An item; with `wait`, leased that many seconds after it was queued."""
    fields: dict[str, Any] = {}
    if wait is not None:
        leased = kw.pop("leased_at", timezone.now() - timedelta(minutes=1))
        fields = {"leased_at": leased, "queued_at": leased - timedelta(seconds=wait)}
    return WorkItem.objects.create(
        run=run, plugin=run.plugin, session=f"s{next(_sessions)}", state=state, **fields
    )


class TestMetrics:
    def test_it_reports_zeros_on_an_empty_hub(self, db: Any, client: Client) -> None:
        samples = scrape(client)
        for status in Run.Status.values:
            assert samples[("pluginhub_runs", (("status", status),))] == 0
        for state in WorkItem.State.values:
            assert samples[("pluginhub_work_items", (("state", state),))] == 0
        assert samples[("pluginhub_items_in_flight", ())] == 0
        assert samples[("pluginhub_failed_heartbeats_total", ())] == 0
        assert samples[("pluginhub_dispatch_latency_seconds_count", ())] == 0
        assert samples[("pluginhub_dispatch_latency_seconds_sum", ())] == 0

    def test_it_counts_rows(
        self, workspace: Any, make_plugin: Any, client: Client
    ) -> None:
        detector = make_plugin(name="Detector").plugin
        idle = make_plugin(name="Idle").plugin
        running = make_run(workspace, detector, Run.Status.RUNNING)
        make_run(workspace, detector, Run.Status.RUNNING)
        make_run(workspace, detector, Run.Status.FAILED)
        make_item(running, WorkItem.State.LEASED, wait=0.2)
        make_item(running, WorkItem.State.LEASED, wait=3)
        make_item(running, WorkItem.State.PENDING)
        connect_instance(detector, "a!1")
        connect_instance(detector, "a!2")
        gone = connect_instance(detector, "a!3")
        PluginInstance.objects.filter(pk=gone.pk).update(disconnected_at=timezone.now())
        stale = timezone.now() - timedelta(hours=1)
        old = connect_instance(idle, "b!1")
        PluginInstance.objects.filter(pk=old.pk).update(last_heartbeat=stale)
        for _ in range(3):
            FailedHeartbeat.objects.create(address="10.0.0.9:4000", reason="x")

        samples = scrape(client)

        assert samples[("pluginhub_runs", (("status", "running"),))] == 2
        assert samples[("pluginhub_runs", (("status", "failed"),))] == 1
        assert samples[("pluginhub_runs", (("status", "queued"),))] == 0
        assert samples[("pluginhub_work_items", (("state", "leased"),))] == 2
        assert samples[("pluginhub_work_items", (("state", "pending"),))] == 1
        assert samples[("pluginhub_items_in_flight", ())] == 2
        connected = "pluginhub_connected_instances"
        by_detector = (("name", "Detector"), ("plugin", detector.public_id))
        assert samples[(connected, by_detector)] == 2
        by_idle = (("name", "Idle"), ("plugin", idle.public_id))
        assert samples[(connected, by_idle)] == 0
        assert samples[("pluginhub_failed_heartbeats_total", ())] == 3

    def test_it_buckets_dispatch_latency_of_the_last_hour(
        self, workspace: Any, make_plugin: Any, client: Client
    ) -> None:
        run = make_run(workspace, make_plugin().plugin, Run.Status.RUNNING)
        for wait in (0.003, 0.2, 0.2, 4, 45):
            make_item(run, WorkItem.State.DONE, wait=wait)
        two_hours_ago = timezone.now() - timedelta(hours=2)
        make_item(run, WorkItem.State.DONE, wait=0.001, leased_at=two_hours_ago)

        samples = scrape(client)

        def bucket(le: str) -> float:
            return samples[("pluginhub_dispatch_latency_seconds_bucket", (("le", le),))]

        assert bucket("0.005") == 1
        assert bucket("0.1") == 1
        assert bucket("0.25") == 3
        assert bucket("2.5") == 3
        assert bucket("5.0") == 4
        assert bucket("30.0") == 4
        assert bucket("+Inf") == 5
        assert samples[("pluginhub_dispatch_latency_seconds_count", ())] == 5
        total = samples[("pluginhub_dispatch_latency_seconds_sum", ())]
        assert total == pytest.approx(0.003 + 0.2 + 0.2 + 4 + 45)

    def test_the_text_has_the_expected_lines(self, db: Any, client: Client) -> None:
        text = client.get("/metrics").content.decode()
        assert "# TYPE pluginhub_runs gauge" in text
        assert 'pluginhub_runs{status="queued"} 0.0' in text
        assert "# TYPE pluginhub_failed_heartbeats_total counter" in text
        assert "# TYPE pluginhub_dispatch_latency_seconds histogram" in text
        assert 'pluginhub_dispatch_latency_seconds_bucket{le="0.005"} 0.0' in text


@pytest.mark.django_db
class TestMetricsToken:
    @override_settings(HUB_METRICS_TOKEN="s3cret-token")
    def test_it_needs_the_token_when_set(self, client: Client) -> None:
        response = client.get("/metrics")
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")
        assert b"pluginhub" not in response.content

    @override_settings(HUB_METRICS_TOKEN="s3cret-token")
    def test_it_refuses_a_wrong_token(self, client: Client) -> None:
        for header in ("Bearer wrong", "Bearer s3cret-toke", "Basic s3cret-token"):
            response = client.get("/metrics", headers={"Authorization": header})
            assert response.status_code == (401 if "Basic" in header else 403)
            assert b"pluginhub" not in response.content

    @override_settings(HUB_METRICS_TOKEN="s3cret-token")
    def test_it_serves_with_the_token(self, client: Client) -> None:
        samples = scrape(client, Authorization="Bearer s3cret-token")
        assert samples[("pluginhub_items_in_flight", ())] == 0

    @override_settings(HUB_METRICS_TOKEN="")
    def test_it_is_open_to_loopback_without_a_token_setting(
        self, client: Client
    ) -> None:
        assert client.get("/metrics").status_code == 200
        assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200

    @override_settings(HUB_METRICS_TOKEN="")
    def test_it_refuses_other_clients_without_a_token_setting(
        self, client: Client
    ) -> None:
        for address in ("203.0.113.5", "10.0.0.7", "2001:db8::1", ""):
            response = client.get("/metrics", REMOTE_ADDR=address)
            assert response.status_code == 403
            assert b"HUB_METRICS_TOKEN" in response.content
            assert b"pluginhub" not in response.content


def asgi_get(path: str, client: tuple[str, int], headers: dict[str, str]) -> Any:
    """GET through the real ASGI application with this peer in the scope (as
    uvicorn puts it there); returns (status, body)."""
    from plugins_app.asgi import application

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": client,
        "server": ("127.0.0.1", 8000),
    }

    async def request() -> tuple[int, bytes]:
        communicator = ApplicationCommunicator(application, scope)
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(timeout=10)
        body = b""
        while True:
            message = await communicator.receive_output(timeout=10)
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        return start["status"], body

    return async_to_sync(request)()


@pytest.mark.django_db(transaction=True)
class TestMetricsOverAsgi:
    @override_settings(HUB_METRICS_TOKEN="")
    def test_it_tells_loopback_from_other_peers_by_the_scope_client(self) -> None:
        status, body = asgi_get("/metrics", ("127.0.0.1", 50000), {})
        assert status == 200 and b"pluginhub_runs" in body
        status, body = asgi_get("/metrics", ("198.51.100.4", 50000), {})
        assert status == 403 and b"pluginhub" not in body
        # A forged header does not make a remote peer local.
        status, _ = asgi_get(
            "/metrics", ("198.51.100.4", 50000), {"X-Forwarded-For": "127.0.0.1"}
        )
        assert status == 403

    @override_settings(HUB_METRICS_TOKEN="s3cret-token")
    def test_a_remote_peer_with_the_token_is_served(self) -> None:
        status, _ = asgi_get("/metrics", ("198.51.100.4", 50000), {})
        assert status == 401
        status, body = asgi_get(
            "/metrics",
            ("198.51.100.4", 50000),
            {"Authorization": "Bearer s3cret-token"},
        )
        assert status == 200 and b"pluginhub_runs" in body


class TestMetricsOnTheLiveServer:
    def test_loopback_is_served_without_a_token(self, live_hub: Any) -> None:
        response = httpx.get(live_hub.url + "/metrics", timeout=10)
        assert response.status_code == 200
        assert "pluginhub_runs" in response.text

    def test_the_token_is_needed_once_set(self, live_hub: Any, settings: Any) -> None:
        settings.HUB_METRICS_TOKEN = "live-token"
        url = live_hub.url + "/metrics"
        assert httpx.get(url, timeout=10).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.get(url, headers=wrong, timeout=10).status_code == 403
        right = {"Authorization": "Bearer live-token"}
        response = httpx.get(url, headers=right, timeout=10)
        assert response.status_code == 200 and "pluginhub_runs" in response.text


class TestMetricsTokenRequiredInProduction:
    """settings.py refuses to load (so `manage.py`, uvicorn and Celery all refuse
    to start) for a production hub without HUB_METRICS_TOKEN."""

    PRODUCTION = {
        "DATABASE_URL": "postgres://hub@127.0.0.1:5432/hub",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "DEBUG": "false",
    }

    def manage_check(self, tmp: Path, **env: str) -> subprocess.CompletedProcess:
        environ = {
            k: v
            for k, v in os.environ.items()
            if k not in ("HUB_METRICS_TOKEN", "REDIS_URL", "DATABASE_URL", "DEBUG")
        }
        environ.pop("HUB_TEST_DB", None)
        environ.update(
            DJANGO_SETTINGS_MODULE="plugins_app.settings", HUB_VAR_DIR=str(tmp), **env
        )
        return subprocess.run(
            [sys.executable, "manage.py", "check"],
            env=environ,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def test_it_refuses_to_start_without_a_token(self, tmp_path: Path) -> None:
        result = self.manage_check(tmp_path, **self.PRODUCTION)
        assert result.returncode != 0
        assert "ImproperlyConfigured" in result.stderr
        assert "HUB_METRICS_TOKEN is not set" in result.stderr

    def test_it_refuses_postgres_alone_too(self, tmp_path: Path) -> None:
        result = self.manage_check(
            tmp_path, DATABASE_URL=self.PRODUCTION["DATABASE_URL"]
        )
        assert "HUB_METRICS_TOKEN is not set" in result.stderr

    def test_it_starts_with_a_token(self, tmp_path: Path) -> None:
        result = self.manage_check(
            tmp_path, HUB_METRICS_TOKEN="t" * 32, **self.PRODUCTION
        )
        assert result.returncode == 0, result.stderr

    def test_the_embedded_mode_starts_without_one(self, tmp_path: Path) -> None:
        result = self.manage_check(tmp_path)
        assert result.returncode == 0, result.stderr


# --- JSON logs ------------------------------------------------------------------
def format_record(level: int, msg: str, *args: Any, **kw: Any) -> dict[str, Any]:
    logger = logging.getLogger("plugins_app.test")
    record = logger.makeRecord(
        logger.name, level, __file__, 1, msg, args, kw.pop("exc_info", None), **kw
    )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    return json.loads(line)


class TestJsonLogs:
    def test_it_writes_the_core_fields_and_extras(self) -> None:
        entry = format_record(
            logging.WARNING,
            "run %s failed",
            7,
            extra={"run_id": 7, "ip": "10.0.0.9", "at": timezone.now()},
        )
        assert entry["level"] == "WARNING"
        assert entry["logger"] == "plugins_app.test"
        assert entry["message"] == "run 7 failed"
        assert entry["run_id"] == 7
        assert entry["ip"] == "10.0.0.9"
        assert isinstance(entry["at"], str)  # not JSON: written with str()
        assert entry["time"].endswith("+00:00")
        assert timezone.datetime.fromisoformat(entry["time"]).tzinfo is not None
        assert "exc_info" not in entry
        assert "args" not in entry and "msg" not in entry

    def test_it_writes_the_exception(self) -> None:
        try:
            raise ValueError("bad frame\nsecond line")
        except ValueError:
            entry = format_record(logging.ERROR, "boom", exc_info=sys.exc_info())
        assert entry["message"] == "boom"
        assert entry["exc_info"].startswith("Traceback")
        assert "ValueError: bad frame\nsecond line" in entry["exc_info"]

    def test_settings_select_it(self, tmp_path: Path) -> None:
        script = (
            "import django, logging; django.setup(); "
            "logging.getLogger('plugins_app.x').warning("
            "'hello %s', 'you', extra={'run_id': 5})"
        )
        result = run_django(script, tmp_path, HUB_LOG_FORMAT="json")
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stderr.splitlines()]
        assert lines[-1]["message"] == "hello you"
        assert lines[-1]["run_id"] == 5
        assert lines[-1]["logger"] == "plugins_app.x"

    def test_plain_stays_the_default(self, tmp_path: Path) -> None:
        script = (
            "import django, logging; django.setup(); "
            "logging.getLogger('plugins_app.x').warning('hello')"
        )
        result = run_django(script, tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip().endswith("WARNING plugins_app.x hello")

    def test_it_refuses_an_unknown_format(self, tmp_path: Path) -> None:
        script = "import django; django.setup()"
        result = run_django(script, tmp_path, HUB_LOG_FORMAT="xml")
        assert result.returncode != 0
        assert "HUB_LOG_FORMAT must be plain or json" in result.stderr


def run_django(script: str, tmp: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("HUB_LOG_FORMAT", "REDIS_URL")
    }
    environ.update(
        DJANGO_SETTINGS_MODULE="plugins_app.settings", HUB_VAR_DIR=str(tmp), **env
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
