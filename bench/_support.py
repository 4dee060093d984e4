"""Shared parts of the benchmarks: subprocesses (all killed at the end), the
embedded hub, the bare relay, the plugin processes, a small keep-alive HTTP/1.1
client, a run-completion watcher on the hub's SQLite file, and statistics.

Everything listens on and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


def django_here() -> None:
    """Django in this process, configured by the environment as it is (the
    parent benchmark sets HUB_VAR_DIR, DATABASE_URL, REDIS_URL)."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "plugins_app.settings")
    import django

    django.setup()


def embedded_django(var_dir: Path, **env: str) -> None:
    """Django in this process, embedded mode (SQLite in `var_dir`, no Redis),
    migrated: for benchmarks that drive the services directly."""
    os.environ["HUB_VAR_DIR"] = str(var_dir)
    os.environ.update(env)
    for key in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(key, None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "plugins_app.settings"
    django_here()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


HUB_PYTHON = ROOT / ".venv" / "bin" / "python"
SDK_PYTHON = ROOT / ".venv-sdk14" / "bin" / "python"
LOCALHOST = "127.0.0.1"
PG_URL = "postgres://postgres@127.0.0.1:5432"  # production-mode benchmarks
# What `manage.py runhub` passes: 4 x HUB_MAX_FRAME_BYTES (16 MiB).
HUB_WS_MAX_SIZE = 4 * 16 * 1024 * 1024


# --- processes --------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Processes:
    """Every subprocess a benchmark starts; `stop_all` ends each one by its pid."""

    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(
        self, name: str, cmd: Sequence[str], env: dict[str, str] | None = None
    ) -> Child:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                list(cmd),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env if env is not None else dict(os.environ),
                cwd=ROOT,
            )
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def pids(self, prefix: str) -> list[int]:
        return [c.proc.pid for c in self.children if c.name.startswith(prefix)]

    def check_alive(self) -> None:
        for child in self.children:
            if child.proc.poll() is not None:
                raise RuntimeError(
                    f"{child.name} exited with {child.proc.returncode}:\n"
                    + child.tail()
                )

    def stop_all(self) -> None:
        # Plugins first (they exit on their own when their server goes away, but
        # never leave that to chance), then the servers.
        for child in sorted(self.children, key=lambda c: not c.name.startswith("plug")):
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for child in self.children:
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait(timeout=5)


def psql(sql: str, db: str = "test") -> None:
    subprocess.run(
        ["psql", "-h", LOCALHOST, "-U", "postgres", "-d", db, "-c", sql],
        check=True,
        capture_output=True,
    )


def in_scratch_hub(
    script: str, child_args: Sequence[str], *, production: bool
) -> dict[str, Any]:
    """Run `script --child *child_args` on a hub that bench/hub_setup.py set
    up in a scratch HUB_VAR_DIR: SQLite there (embedded), or a fresh
    PostgreSQL database (production, dropped afterwards). Returns the JSON
    object the child prints last: the in-process benchmarks' measurement."""
    import tempfile
    import uuid

    with tempfile.TemporaryDirectory(prefix="bench-scratch-") as var_dir:
        env = {**os.environ, "HUB_VAR_DIR": var_dir}
        for key in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"):
            env.pop(key, None)
        database = ""
        if production:
            database = f"bench_scratch_{uuid.uuid4().hex[:8]}"
            psql(f"CREATE DATABASE {database}")
            env["DATABASE_URL"] = f"{PG_URL}/{database}"
            env["HUB_METRICS_TOKEN"] = "bench-metrics-token"
        try:
            setup = [str(HUB_PYTHON), str(BENCH / "hub_setup.py")]
            subprocess.run(setup, env=env, cwd=ROOT, check=True, capture_output=True)
            child = [str(HUB_PYTHON), script, "--child", *child_args]
            out = subprocess.run(
                child, env=env, cwd=ROOT, check=True, capture_output=True, text=True
            )
        finally:
            if database:
                psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of processes, from /proc (0 for a vanished one)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def wait_until(
    condition: Callable[[], Any],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    processes: Processes | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if processes is not None:
            processes.check_alive()
        try:
            value = condition()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def http_json(
    url: str,
    *,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, Any]:
    """One blocking request (setup and checks only; the measured requests go
    through `HttpConn`)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.hostname != LOCALHOST:
        raise ValueError(f"benchmarks only talk to {LOCALHOST}, not {url}")
    conn = http.client.HTTPConnection(LOCALHOST, parts.port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, data.decode(errors="replace")
    finally:
        conn.close()


# --- the servers ---------------------------------------------------------------
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


# --- a minimal keep-alive HTTP/1.1 client ---------------------------------------
class HttpConn:
    """One keep-alive connection with tens of microseconds of client overhead per
    request, so the driver does not dominate a millisecond round trip."""

    def __init__(self, port: int, *, timeout: float = 30) -> None:
        self.port = port
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> HttpConn:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(LOCALHOST, self.port), self.timeout
        )
        return self

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await asyncio.wait_for(self.writer.wait_closed(), 2)
            except (TimeoutError, OSError):
                pass

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        return await asyncio.wait_for(
            self._request(method, path, body, headers or {}), self.timeout
        )

    async def _request(
        self, method: str, path: str, body: Any, headers: dict[str, str]
    ) -> tuple[int, Any]:
        assert self.reader is not None and self.writer is not None
        payload = b"" if body is None else json.dumps(body).encode()
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {LOCALHOST}:{self.port}",
            "Connection: keep-alive",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        if body is not None:
            lines += [
                "Content-Type: application/json",
                f"Content-Length: {len(payload)}",
            ]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length, chunked = -1, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            data = b""
            for _ in range(100_000):
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                data += await self.reader.readexactly(size + 2)
                if size == 0:
                    break
            data = data[:-2]
        else:
            data = await self.reader.readexactly(max(length, 0))
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, data.decode(errors="replace")


# --- run completion, read from the hub's database --------------------------------
class RunWatcher:
    """Resolves a future when a run has `finished_at` in the hub's database
    (`Hub.connect()`). The hub is not asked anything: one indexed SELECT per
    poll, from this process (WAL readers never block the hub's writers)."""

    def __init__(self, conn: Any, *, interval: float = 0.001) -> None:
        self.interval = interval
        self.conn = conn
        self.waiting: dict[int, asyncio.Future[tuple[float, str]]] = {}
        self.task: asyncio.Task[None] | None = None

    def start(self) -> RunWatcher:
        self.task = asyncio.get_running_loop().create_task(self._poll())
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.conn.close()

    def finished(self, run_id: int) -> asyncio.Future[tuple[float, str]]:
        future = asyncio.get_running_loop().create_future()
        self.waiting[run_id] = future
        return future

    async def _poll(self) -> None:
        while True:
            if self.waiting:
                # Integer ids inlined: SQLite and psycopg differ in placeholders.
                ids = ",".join(str(int(i)) for i in self.waiting)
                rows = self.conn.execute(
                    f"SELECT id, status FROM runs_run WHERE id IN ({ids})"
                    " AND finished_at IS NOT NULL"
                ).fetchall()
                now = time.perf_counter()
                for run_id, status in rows:
                    future = self.waiting.pop(run_id)
                    if not future.done():
                        future.set_result((now, status))
            await asyncio.sleep(self.interval)


def db_times(hub: Hub, run_ids: Sequence[int]) -> dict[int, tuple[float, float, float]]:
    """{run id: (created_at, started_at, finished_at)} as unix times, for the
    finished runs among `run_ids` (the hub's own timestamps)."""
    out: dict[int, tuple[float, float, float]] = {}
    conn = hub.connect()
    try:
        for start in range(0, len(run_ids), 500):
            ids = ",".join(str(int(i)) for i in run_ids[start : start + 500])
            rows = conn.execute(
                "SELECT id, created_at, started_at, finished_at FROM runs_run"
                f" WHERE id IN ({ids}) AND finished_at IS NOT NULL"
            ).fetchall()
            out.update({i: (_ts(a), _ts(b), _ts(c)) for i, a, b, c in rows})
    finally:
        conn.close()
    return out


def _ts(value: str | datetime | None) -> float:
    if not value:
        return float("nan")
    if isinstance(value, datetime):  # psycopg: timezone-aware already
        return value.timestamp()
    return datetime.fromisoformat(value.replace(" ", "T")).timestamp()


# --- statistics and output -------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "| "
            + " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
            + " |"
        )
        if n == 0:
            lines.append(
                "|"
                + "|".join(
                    "-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)
                )
                + "|"
            )
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def json_summary(mode: str, cases: Sequence[dict[str, Any]]) -> str:
    """The one-line JSON summary `--json` prints last, for scripts and CI to
    compare runs: NaN becomes null (JSON has no NaN), floats keep 4 digits."""

    def clean(value: Any) -> Any:
        if isinstance(value, float):
            return None if value != value else round(value, 4)
        return value

    return json.dumps(
        {
            "mode": mode,
            "load": round(os.getloadavg()[0], 2),
            "cases": [{k: clean(v) for k, v in case.items()} for case in cases],
        },
        allow_nan=False,
    )


_T0 = time.monotonic()


def say(message: str) -> None:
    """A progress line with the seconds since the benchmark started."""
    print(f"[{time.monotonic() - _T0:6.1f} s] {message}", flush=True)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine_facts() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"nproc={os.cpu_count()} cpu={cpu} python={platform.python_version()} "
        f"({sys.executable})"
    )
