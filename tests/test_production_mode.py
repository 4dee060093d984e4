"""Production mode: the same code on PostgreSQL and Redis (channel layer and
Celery broker), every part in its own process: uvicorn, a Celery worker, the
CLI, and real SDK plugins. Skipped only when the services are not reachable."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hub import ROOT, SCRIPTS, PluginProcess, free_port, start_plugin, wait_for

PG = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)


def reachable(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=1).close()
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not (reachable(PG) and reachable(REDIS)),
    reason="production-mode tests need PostgreSQL on 127.0.0.1:5432 and Redis on "
    "127.0.0.1:6379 (both run on CI)",
)


class Stack:
    """A hub in production mode, built from processes."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.db_name = f"pluginhub_{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "plugins_app.settings",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{self.db_name}",
            "REDIS_URL": "redis://127.0.0.1:6379/7",
            "HUB_VAR_DIR": str(tmp / "var"),
            "HUB_SWEEP_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("HUB_TEST_DB", None)
        self.processes: list[PluginProcess] = []

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr + result.stdout
        return result.stdout

    def spawn(self, name: str, *cmd: str) -> PluginProcess:
        log_path = self.tmp / f"{name}.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, *cmd],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        process = PluginProcess(proc=proc, log_path=log_path, name=name)
        self.processes.append(process)
        return process

    def start(self) -> dict[str, Any]:
        subprocess.run(
            ["psql", "-h", PG[0], "-U", "postgres", "-d", "test", "-c",
             f"CREATE DATABASE {self.db_name}"],
            check=True, capture_output=True,
        )  # fmt: skip
        import redis

        redis.Redis.from_url(self.env["REDIS_URL"]).flushdb()
        self.manage("migrate", "--noinput", "-v0")
        credentials = json.loads(self.manage("seed_demo"))
        token = json.loads(self.manage("create_api_token", "annotator"))["token"]
        web = self.spawn(
            "web", "-m", "uvicorn", "plugins_app.asgi:application",
            "--port", str(self.port), "--log-level", "warning",
        )  # fmt: skip
        self.spawn("worker", "-m", "celery", "-A", "plugins_app", "worker", "-B",
                   "--pool", "solo", "--loglevel", "INFO")  # fmt: skip
        wait_for(lambda: _up(self.url) or not web.alive(), timeout=30, what="uvicorn")
        assert web.alive(), web.log()
        return {"credentials": credentials, "token": token}

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        subprocess.run(
            ["psql", "-h", PG[0], "-U", "postgres", "-d", "test", "-c",
             f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)"],
            capture_output=True,
        )  # fmt: skip


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/login/", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Stack, dict[str, Any]]]:
    hub = Stack(tmp_path)
    try:
        info = hub.start()
        yield hub, info
    finally:
        hub.stop()


def test_it_runs_plugins_on_postgresql_and_redis_across_processes(
    stack: tuple[Stack, dict[str, Any]], tmp_path: Path
) -> None:
    hub, info = stack
    model = info["credentials"]["model_plugin"]
    plugins = [
        start_plugin(
            SCRIPTS / "echo_model.py",
            sdk=sdk,
            host=hub.url,
            plugin_id=model["id"],
            secret=model["secret"],
            log_dir=tmp_path,
        )
        for sdk in ("1.3.22", "1.4")
    ]
    hub.processes.extend(plugins)
    api = httpx.Client(
        base_url=hub.url, headers={"Authorization": f"Bearer {info['token']}"}
    )
    plugin = next(p for p in api.get("/api/plugins").json() if p["type"] == "model")
    wait_for(
        lambda: api.get(f"/api/plugins/{plugin['id']}").json()["live_instances"] == 2,
        timeout=30,
        what="both plugins live",
    )
    project = api.get("/api/projects").json()[0]

    # Created in the ASGI process (JSON API) and in a separate process (CLI):
    # both reach plugins through Redis.
    created = api.post(
        "/api/runs",
        json={
            "plugin_id": plugin["id"],
            "project_id": project["id"],
            "class_mapping": {"face": "face-box"},
            "external_ids": ["astronaut", "coins", "camera"],
        },
    )
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    cli = json.loads(
        hub.manage(
            "run_plugin",
            "--plugin",
            plugin["public_id"],
            "--project",
            str(project["id"]),
            "--asset",
            "rocket",
            "--map",
            "face=face-box",
            "--wait",
            "--timeout",
            "60",
        )  # fmt: skip
    )
    assert cli["status"] == "succeeded", cli
    wait_for(
        lambda: api.get(f"/api/runs/{run_id}").json()["status"] == "succeeded",
        timeout=60,
        what="the API run to succeed",
    )
    logs = api.get(f"/api/runs/{run_id}/logs").json()
    assert any(line["message"] == "echo done" for line in logs)
    handled = [
        line
        for p in plugins
        for line in p.log().splitlines()
        if line.startswith("HANDLED")
    ]
    assert len(handled) == 4  # 3 assets + 1, each handled once
