"""The processes a hub-vs-bare benchmark measures: the hub (embedded or
production mode) and the bare python-socketio relay under the same uvicorn
settings, a browser login, and the SDK plugin processes that connect to them."""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import sqlite3
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from _processes import (
    BENCH,
    HUB_PYTHON,
    LOCALHOST,
    ROOT,
    SDK_PYTHON,
    Processes,
    free_port,
    http_json,
    wait_until,
)

# What `manage.py runhub` passes: 4 x HUB_MAX_FRAME_BYTES (16 MiB).
HUB_WS_MAX_SIZE = 4 * 16 * 1024 * 1024


@dataclass
class Hub:
    """The hub in embedded mode: SQLite in a temp HUB_VAR_DIR, the in-memory
    channel layer, uvicorn as a subprocess (as `manage.py runhub` starts it).
    With `database_url` (an empty PostgreSQL database) and `redis_url`: the
    same uvicorn in production mode, on the Redis layer named by
    `channel_layer` (the CHANNEL_LAYER setting)."""

    var_dir: Path
    app: str = "plugins_app.asgi:application"
    port: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    database_url: str = ""
    redis_url: str = ""
    channel_layer: str = "pubsub"

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.var_dir / "hub.sqlite3"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.info['token']}"}

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Embedded mode, whatever the caller's shell has set.
        for key in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL"):
            env.pop(key, None)
        env["HUB_VAR_DIR"] = str(self.var_dir)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
            env["REDIS_URL"] = self.redis_url
            env["CHANNEL_LAYER"] = self.channel_layer
            # Production settings refuse to load without it (/metrics).
            env.setdefault("HUB_METRICS_TOKEN", "bench-metrics-token")
        return env

    def connect(self) -> Any:
        """A DB-API connection to the hub's database (autocommit), for the
        watcher: the SQLite file, or PostgreSQL in production mode."""
        if self.database_url:
            import psycopg

            return psycopg.connect(self.database_url, autocommit=True)
        return sqlite3.connect(self.db_path, isolation_level=None, timeout=5)

    def start(self, processes: Processes) -> Hub:
        self.launch(processes)
        return self.wait_ready(processes)

    def launch(self, processes: Processes) -> Hub:
        """Set up the database (blocking, ~3 s) and start uvicorn."""
        self.var_dir.mkdir(parents=True, exist_ok=True)
        setup = subprocess.run(
            [str(HUB_PYTHON), str(BENCH / "hub_setup.py")],
            env=self.env(),
            cwd=ROOT,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if setup.returncode != 0:
            raise RuntimeError(f"hub setup failed:\n{setup.stderr.decode()[-3000:]}")
        self.info = json.loads(setup.stdout.decode().strip().splitlines()[-1])
        self.port = free_port()
        processes.start(
            "hub",
            uvicorn_command(HUB_PYTHON, self.app, self.port),
            env=self.env(),
        )
        return self

    def wait_ready(self, processes: Processes) -> Hub:
        wait_until(
            lambda: http_json(f"{self.url}/login/", timeout=2)[0] == 200,
            timeout=30,
            what="the hub to serve /login/",
            interval=0.1,
            processes=processes,
        )
        return self

    def live_instances(self) -> int:
        status, body = http_json(
            f"{self.url}/api/plugins/{self.info['plugin_pk']}", headers=self.auth
        )
        return int(body["live_instances"]) if status == 200 else 0


def browser_login(hub: Hub) -> str:
    """Log in to the hub as its admin, as a browser does (the login form with
    its CSRF token); returns the session id cookie."""
    conn = http.client.HTTPConnection(LOCALHOST, hub.port, timeout=10)
    try:
        conn.request("GET", "/login/")
        page = conn.getresponse()
        html = page.read().decode()
        csrf_cookie = _cookie(page.getheaders(), "csrftoken")
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        if not match or not csrf_cookie:
            raise RuntimeError("no CSRF token on /login/")
        form = urlencode(
            {
                "username": hub.info["username"],
                "password": hub.info["password"],
                "csrfmiddlewaretoken": match.group(1),
            }
        )
        conn.request(
            "POST",
            "/login/",
            body=form,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"csrftoken={csrf_cookie}",
                "Origin": hub.url,
                "Referer": f"{hub.url}/login/",
            },
        )
        answer = conn.getresponse()
        answer.read()
        session = _cookie(answer.getheaders(), "sessionid")
        if answer.status != 302 or not session:
            raise RuntimeError(f"login failed: HTTP {answer.status}")
        return session
    finally:
        conn.close()


def _cookie(headers: list[tuple[str, str]], name: str) -> str:
    for key, value in headers:
        if key.lower() == "set-cookie" and value.startswith(f"{name}="):
            return value.split(";", 1)[0].split("=", 1)[1]
    return ""


def uvicorn_command(python: Path, app: str, port: int, *extra: str) -> list[str]:
    """The same server settings for the hub and the bare relay."""
    return [
        str(python), "-m", "uvicorn", *extra, app,
        "--host", LOCALHOST, "--port", str(port),
        "--ws-max-size", str(HUB_WS_MAX_SIZE),
    ]  # fmt: skip


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every hub-vs-bare benchmark takes."""
    parser.add_argument("--keep", action="store_true", help="keep logs and the DB")
    parser.add_argument(
        "--bare-stack",
        choices=["sdk14", "hub"],
        default="sdk14",
        help="server stack of the bare relay: .venv-sdk14's uvicorn (asyncio, h11,"
        " wsproto; default) or the hub's (uvloop, httptools, websockets)",
    )
    parser.add_argument(
        "--hub-app",
        default="plugins_app.asgi:application",
        help="ASGI app the hub's uvicorn serves (to try a patched hub; put its"
        " module on PYTHONPATH)",
    )


def run_driver(main_async: Callable[[Any], Any], args: argparse.Namespace) -> None:
    """The driver on uvloop when it is installed, as the hub's server runs."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main_async(args))


@dataclass
class BareRelay:
    """bench/bare_relay.py under uvicorn.

    stack "sdk14": the .venv-sdk14 interpreter and its uvicorn 0.24 (asyncio
    loop, h11, wsproto: what that venv has).
    stack "hub": the hub's interpreter and uvicorn (uvloop, httptools,
    websockets), importing python-socketio/engineio/bidict from .venv-sdk14
    through symlinks, so that only the application differs from the hub's."""

    stack: str = "sdk14"
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def start(self, processes: Processes) -> BareRelay:
        self.launch(processes)
        return self.wait_ready(processes)

    def launch(self, processes: Processes) -> BareRelay:
        self.port = free_port()
        env = dict(os.environ)
        python = SDK_PYTHON
        if self.stack == "hub":
            python = HUB_PYTHON
            shim = processes.log_dir / "bare-sio-path"
            shim.mkdir(exist_ok=True)
            site = next((ROOT / ".venv-sdk14" / "lib").glob("python3*/site-packages"))
            for package in ("socketio", "engineio", "bidict"):
                link = shim / package
                if not link.exists():
                    link.symlink_to(site / package)
            env["PYTHONPATH"] = str(shim)
        processes.start(
            "bare",
            uvicorn_command(
                python, "bare_relay:app", self.port, "--app-dir", str(BENCH)
            ),
            env=env,
        )
        return self

    def wait_ready(self, processes: Processes) -> BareRelay:
        wait_until(
            lambda: http_json(f"{self.url}/plugins", timeout=2)[0] == 200,
            timeout=30,
            what="the bare relay to start",
            interval=0.1,
            processes=processes,
        )
        return self

    def live_instances(self) -> int:
        status, body = http_json(f"{self.url}/plugins")
        return int(body["live"]) if status == 200 else 0


@dataclass
class PluginTarget:
    """Where plugin processes connect, and how to count the live ones."""

    prefix: str  # process names are plugin-<prefix>-<n>
    host: str
    plugin_id: str
    secret: str
    live: Callable[[], int]


def start_plugins(
    processes: Processes, targets: Sequence[PluginTarget], count: int
) -> None:
    """Start plugin processes (all targets at once) until `count` are live on
    each target."""
    for target in targets:
        have = target.live()
        env = {
            **os.environ,
            "HOST": target.host,
            "PLUGIN_ID": target.plugin_id,
            "PLUGIN_SECRET": target.secret,
            "PYTHONUNBUFFERED": "1",
        }
        for key in ("DJANGO_SETTINGS_MODULE", "HUB_VAR_DIR", "DATABASE_URL"):
            env.pop(key, None)
        for n in range(have, count):
            processes.start(
                f"plugin-{target.prefix}-{n}",
                [str(SDK_PYTHON), str(BENCH / "plugin_bench.py")],
                env=env,
            )
    for target in targets:
        wait_until(
            lambda t=target: t.live() >= count,
            timeout=60,
            what=f"{count} {target.prefix} plugin(s) to connect",
            interval=0.1,
            processes=processes,
        )
