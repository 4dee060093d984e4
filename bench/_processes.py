"""Shared parts of the benchmarks, the processes: paths, Django in this
process, subprocesses (all killed at the end), a scratch hub for in-process
measurements, CPU time from /proc, waiting, one-shot HTTP requests.
The servers and plugins they start: _servers.py; measuring and printing:
_measure.py.

Everything listens on and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def in_process_main(
    script: str,
    doc: str,
    measure: Callable[[Any], dict[str, Any]],
    describe: Callable[[dict[str, Any]], str],
    *,
    runs: int,
    profile_help: str,
) -> None:
    """The command line of an in-process benchmark (answer_cost, create_cost):
    `--runs`, `--production`, `--json`, `--profile`; the parent sets up a
    scratch hub and runs the script again there as `--child`, which calls
    `measure(args)` and prints its JSON; the parent prints `describe(result)`
    (and the JSON last, with --json)."""
    import argparse

    from _measure import say

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--production", action="store_true", help="PostgreSQL")
    parser.add_argument("--json", action="store_true", help="last line: JSON")
    parser.add_argument("--profile", help=profile_help)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    child = ["--runs", str(args.runs)]
    if args.production:
        child.append("--production")
    if args.profile:
        child += ["--profile", str(Path(args.profile).resolve())]
    result = in_scratch_hub(script, child, production=args.production)
    say(describe(result))
    if args.json:
        print(json.dumps(result))


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
