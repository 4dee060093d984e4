"""A hub in production mode, built from processes, for the tests that need one:
a fresh PostgreSQL database, Redis db 7 (flushed), uvicorn web processes and a
Celery worker with beat, each in its own process that a test may kill and start
again on the same port. Only tests/test_production_*.py use it (they share db 7,
so they must not run in parallel with each other)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import hub_templates
from tests.hub import (
    ROOT,
    SCRIPTS,
    PluginProcess,
    free_port,
    spawn_logged,
    start_plugin,
    wait_for,
)
from tests.hub_templates import psql

PG = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)
ECHO = SCRIPTS / "echo_model.py"
DEMO_PASSWORD = "plugin-hub"


def reachable(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=1).close()
        return True
    except OSError:
        return False


needs_services = pytest.mark.skipif(
    not (reachable(PG) and reachable(REDIS)),
    reason="production-mode tests need PostgreSQL on 127.0.0.1:5432 and Redis on "
    "127.0.0.1:6379 (both run on CI)",
)


class Stack:
    """Web processes named "a", "b", ... (one by default) and a Celery worker
    with beat, on one PostgreSQL database and one Redis."""

    def __init__(self, tmp: Path, *, webs: int = 1, fast_pings: bool = False):
        self.tmp = tmp
        self.db_name = f"pluginhub_{uuid.uuid4().hex[:10]}"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "plugins_app.settings",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{self.db_name}",
            "REDIS_URL": "redis://127.0.0.1:6379/7",
            "HUB_VAR_DIR": str(tmp / "var"),
            "HUB_SWEEP_SECONDS": "1",
            # Production settings refuse to load without it (/metrics).
            "HUB_METRICS_TOKEN": "production-test-metrics-token",
            "PYTHONUNBUFFERED": "1",
        }
        if fast_pings:
            # An instance (and the leases it holds) is seen for ping interval +
            # timeout + 5 s: a dead process's plugins stop counting within ~9 s
            # instead of ~50 s.
            self.env.update(HUB_PING_INTERVAL_MS="2000", HUB_PING_TIMEOUT_MS="2000")
        self.env.pop("HUB_TEST_DB", None)
        self.ports = {chr(ord("a") + n): free_port() for n in range(webs)}
        self.urls = {name: f"http://127.0.0.1:{p}" for name, p in self.ports.items()}
        self.url = self.urls["a"]
        self.webs: dict[str, PluginProcess] = {}
        self.worker: PluginProcess | None = None
        self.processes: list[PluginProcess] = []
        self.info: dict[str, Any] = {}

    # --- processes --------------------------------------------------------------
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
        # A restarted process appends to its log; each is killed whole (a
        # worker's beat child too).
        process = spawn_logged(
            [sys.executable, *cmd],
            self.tmp / f"{name}.log",
            env=self.env,
            name=name,
            group=True,
            append=True,
        )
        self.processes.append(process)
        return process

    def start(self) -> dict[str, Any]:
        """A database, var dir and Redis db as `manage.py migrate`, `seed_demo`
        and `create_api_token annotator` leave them (cloned from a template
        those commands built once: tests/hub_templates.py), then the hub."""
        made = hub_templates.clone(
            hub_templates.DEMO,
            self.db_name,
            Path(self.env["HUB_VAR_DIR"]),
            redis_url=self.env["REDIS_URL"],
        )
        _migrated, seeded, token = made.outputs
        self.info = {
            "credentials": json.loads(seeded),
            "token": json.loads(token)["token"],
        }
        self.start_hub()
        return self.info

    def start_hub(self) -> None:
        """Every web process and the worker with beat; returns once all serve."""
        for name in self.ports:
            self.spawn_web(name)
        self.start_worker()
        for name in self.webs:
            self.wait_web(name)

    def spawn_web(self, name: str) -> PluginProcess:
        """Web process `name` on its port (again, after a kill)."""
        self.webs[name] = self.spawn(
            f"web-{name}", "-m", "uvicorn", "plugins_app.asgi:application",
            "--port", str(self.ports[name]), "--log-level", "warning",
            "--ws-max-size", "67108864",
            "--http", "plugins_app.ops.http_protocol:HttpToolsProtocol",
            "--limit-concurrency", "4000", "--timeout-keep-alive", "5",
        )  # fmt: skip
        return self.webs[name]

    def wait_web(self, name: str) -> None:
        web, url = self.webs[name], self.urls[name]
        wait_for(lambda: up(url) or not web.alive(), timeout=60, what=f"web {name}")
        assert web.alive(), web.log()

    def start_worker(self) -> PluginProcess:
        """The Celery worker with beat (again, after a kill)."""
        self.worker = self.spawn(
            "worker", "-m", "celery", "-A", "plugins_app", "worker", "-B",
            "--pool", "solo", "--loglevel", "INFO",
        )  # fmt: skip
        return self.worker

    def kill_hub(self) -> None:
        """SIGKILL every hub process at once: nothing says goodbye to anyone."""
        hub = [*self.webs.values(), *([self.worker] if self.worker else [])]
        for process in hub:
            process.proc.send_signal(signal.SIGKILL)
        for process in hub:
            process.proc.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        subprocess.run(
            ["psql", "-h", PG[0], "-U", "postgres", "-d", "test", "-c",
             f"DROP DATABASE IF EXISTS {self.db_name} WITH (FORCE)"],
            capture_output=True,
        )  # fmt: skip

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log()[-3000:]}" for p in self.processes)

    # --- talking to it ------------------------------------------------------------
    def api(self, via: str = "a") -> httpx.Client:
        return httpx.Client(
            base_url=self.urls[via],
            headers={"Authorization": f"Bearer {self.info['token']}"},
            timeout=10,
        )

    def sql(self, query: str) -> str:
        return psql(query, db=self.db_name)

    def connect_plugin(
        self,
        to: str,
        log_dir: Path,
        *,
        sdk: str = "1.4",
        env: dict[str, str],
        forever: bool = False,
        concurrency: int | None = None,
    ) -> PluginProcess:
        """The echo plugin connected to web process `to`, declaring how many
        jobs it takes at once if `concurrency` is given."""
        model = self.info["credentials"]["model_plugin"]
        query = f"/?concurrency={concurrency}" if concurrency else ""
        plugin = start_plugin(
            ECHO,
            sdk=sdk,
            host=self.urls[to] + query,
            plugin_id=model["id"],
            secret=model["secret"],
            log_dir=log_dir,
            env=env,
            forever=forever,
        )
        self.processes.append(plugin)
        return plugin


def up(url: str) -> bool:
    try:
        return httpx.get(url + "/login/", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def model_plugin(api: httpx.Client) -> dict[str, Any]:
    return next(p for p in api.get("/api/plugins").json() if p["type"] == "model")


def wait_live(api: httpx.Client, plugin_pk: int, count: int) -> None:
    wait_for(
        lambda: api.get(f"/api/plugins/{plugin_pk}").json()["live_instances"] == count,
        timeout=30,
        what=f"{count} live instance(s)",
    )


def project_of(api: httpx.Client, plugin_pk: int) -> int:
    """The (first) project the plugin is active on."""
    return api.get(f"/api/plugins/{plugin_pk}").json()["project_ids"][0]


def unlabeled_assets(hub: Stack, api: httpx.Client, plugin_pk: int) -> list[str]:
    """The external IDs of the plugin's project whose task holds no person's
    work, in id order (the demo has labeled tasks, and a plugin's answer is
    skipped on those, so a test counting written answers must leave them out)."""
    project = project_of(api, plugin_pk)
    return hub.sql(
        "SELECT a.external_id FROM workspace_asset a JOIN workspace_task t"
        f" ON t.asset_id = a.id WHERE a.project_id = {project}"
        " AND t.status = 'TODO' ORDER BY a.id"
    ).split()


def start_run(api: httpx.Client, plugin_pk: int, *external_ids: str) -> int:
    created = api.post(
        "/api/runs",
        json={
            "plugin_id": plugin_pk,
            "project_id": project_of(api, plugin_pk),
            "class_mapping": {"face": "face-box"},
            "external_ids": list(external_ids),
        },
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


def browser_login(base_url: str) -> str:
    """Log in as the demo annotator through the login form; return the cookie."""
    browser = httpx.Client(base_url=base_url, timeout=10)
    page = browser.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text
    response = browser.post(
        "/login/",
        data={
            "username": "annotator",
            "password": DEMO_PASSWORD,
            "csrfmiddlewaretoken": token.group(1),
        },
    )
    assert response.status_code == 302, response.text
    return f"sessionid={browser.cookies['sessionid']}"


def child_on_fresh_database(
    module: str, var_dir: Path, *, timeout: float = 300
) -> dict[str, Any]:
    """Run `python -m <module>` against a hub (bench/hub_setup.py) on a new
    PostgreSQL database, dropped afterwards, and return the JSON object the
    child prints last: for race tests whose threads need connections of
    their own, which pytest's test database (one connection) cannot give."""
    root = Path(__file__).resolve().parent.parent
    name = module.rsplit(".", 1)[-1].removeprefix("test_")
    database = f"{name}_{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "plugins_app.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
        "HUB_VAR_DIR": str(var_dir),
        "HUB_METRICS_TOKEN": f"{name}-metrics-token",
    }
    for key in ("HUB_TEST_DB", "REDIS_URL"):
        env.pop(key, None)
    python = str(root / ".venv" / "bin" / "python")
    try:
        # As bench/hub_setup.py leaves it (tests/hub_templates.py).
        hub_templates.clone(hub_templates.BENCH, database, var_dir, redis_url=None)
        child = subprocess.run(
            [python, "-m", module],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert child.returncode == 0, child.stderr[-3000:]
        result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
        return result
    finally:
        psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)", db="postgres")


def seeded_model_plugin() -> tuple[Any, Any, Any]:
    """In a child of `child_on_fresh_database` (Django set up): the model
    plugin bench/hub_setup.py seeds, its first project and the admin."""
    from django.contrib.auth import get_user_model

    from plugins_app.plugins.models import Plugin
    from plugins_app.workspace.models import Project

    plugin = Plugin.objects.get(type="model")
    project = Project.objects.get(pk=plugin.projects.values_list("pk").first()[0])
    return plugin, project, get_user_model().objects.get(username="admin")
