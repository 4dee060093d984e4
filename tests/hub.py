"""Helpers that start real parts for tests: the ASGI app under uvicorn on a free
port (in a thread of the test process, so the tests and the server share the
in-memory channel layer and the database), and plugin scripts in the SDK venvs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
SDK_PYTHONS = {
    "1.3.22": ROOT / ".venv-sdk13" / "bin" / "python",
    "1.4": ROOT / ".venv-sdk14" / "bin" / "python",
}
SCRIPTS = ROOT / "tests" / "plugin_scripts"
RUN_FOREVER = ROOT / "examples" / "run_forever.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveHub:
    def __init__(self) -> None:
        from plugins_app.asgi import application

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            application,
            host="127.0.0.1",
            port=self.port,
            lifespan="on",
            log_level="warning",
            ws_max_size=4 * settings.HUB_MAX_FRAME_BYTES,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveHub:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=10, what="uvicorn start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class CuttableProxy:
    """A TCP proxy between plugins and the hub whose `cut()` closes every
    connection it carries at once, as a network drop closes a plugin's socket;
    it keeps accepting new connections."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                return  # closed
            with self._lock:
                self._open += [client, upstream]
                self.connections += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(src, dst), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            sockets, self._open = self._open, []
        for sock in sockets:
            _close(sock)

    def close(self) -> None:
        self.listener.close()
        self.cut()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        _close(src)
        _close(dst)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@dataclass
class PluginProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # Leads its own process group (a supervisor and the script it restarts).
    group: bool = False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lines(self) -> list[str]:
        """The log's complete lines: a line still being written is left out, since
        one SDK thread's flush can land while another's print is half in the buffer."""
        complete, _, _partial = self.log().rpartition("\n")
        return complete.splitlines()

    def handled(self) -> list[str]:
        """What the test scripts' `HANDLED <id>` lines name, one per job."""
        return [
            line.split(maxsplit=1)[1]
            for line in self.lines()
            if line.startswith("HANDLED ")
        ]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.group:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        elif self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def start_plugin(
    script: Path | str,
    *,
    sdk: str,
    host: str,
    plugin_id: str,
    secret: str,
    log_dir: Path,
    env: dict[str, str] | None = None,
    forever: bool = False,
) -> PluginProcess:
    """A plugin script in its SDK's venv; with `forever`, under the restart
    policy the README asks for (examples/run_forever.sh, retrying every 1-2 s)."""
    python = SDK_PYTHONS[sdk]
    if not python.exists():
        raise RuntimeError(f"{python} is missing: run `make venvs`")
    log_path = log_dir / f"plugin-{time.monotonic_ns()}.log"
    full_env = {
        **os.environ,
        "HOST": host,
        "PLUGIN_ID": plugin_id,
        "PLUGIN_SECRET": secret,
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    # Nothing of the hub's settings leaks into the plugin's environment.
    for key in ("DJANGO_SETTINGS_MODULE", "HUB_TEST_DB", "DATABASE_URL"):
        full_env.pop(key, None)
    cmd = [str(python), str(script)]
    if forever:
        cmd = ["bash", str(RUN_FOREVER), *cmd]
        full_env.update(RUN_FOREVER_MIN_DELAY="1", RUN_FOREVER_MAX_DELAY="2")
    return spawn_logged(cmd, log_path, env=full_env, name=str(script), group=forever)


def spawn_logged(
    cmd: list[str],
    log_path: Path,
    *,
    env: dict[str, str],
    name: str,
    group: bool,
    append: bool = False,
) -> PluginProcess:
    """A process of a test (a plugin, a Celery worker, a hub process) with its
    stdout and stderr in `log_path` (appended to, for a restarted process); with
    `group`, in a process group of its own, killed whole."""
    with log_path.open("ab" if append else "wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            start_new_session=group,
        )
    return PluginProcess(proc=proc, log_path=log_path, name=name, group=group)


def wait_for(
    condition: Callable[[], Any], *, timeout: float = 20, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def start_celery_worker(
    log_dir: Path, *, beat: bool, env: dict[str, str]
) -> PluginProcess:
    """A real Celery worker (and beat) in its own process, on the same database
    file and filesystem broker as the test process."""
    from django.db import connection

    log_path = log_dir / f"celery-{time.monotonic_ns()}.log"
    full_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "plugins_app.settings",
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "HUB_VAR_DIR": str(settings.VAR_DIR),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    full_env.pop("HUB_TEST_DB", None)
    cmd = [sys.executable, "-m", "celery", "-A", "plugins_app", "worker"]
    cmd += ["--pool", "solo", "--loglevel", "INFO", *(["-B"] if beat else [])]
    # Its own process group: `-B` forks beat, which a SIGKILL of the worker
    # alone would leave running (sweeping on into later tests' broker).
    worker = spawn_logged(cmd, log_path, env=full_env, name="celery", group=True)
    wait_for(lambda: "ready." in worker.log() or not worker.alive(), timeout=30)
    assert worker.alive(), worker.log()
    return worker


def start_hub_process(port: int, log_dir: Path) -> PluginProcess:
    """The hub's ASGI server as its own process on the test database (embedded
    mode), so a test can kill it outright."""
    from django.db import connection

    log_path = log_dir / f"hub-{time.monotonic_ns()}.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "plugins_app.settings",
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "HUB_VAR_DIR": str(settings.VAR_DIR),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("HUB_TEST_DB", None)
    cmd = [sys.executable, "-m", "uvicorn", "plugins_app.asgi:application"]
    cmd += ["--port", str(port), "--log-level", "info"]
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
    hub = PluginProcess(proc=proc, log_path=log_path, name="hub")
    wait_for(
        lambda: "startup complete" in hub.log() or not hub.alive(),
        timeout=30,
        what="the hub process to start",
    )
    assert hub.alive(), hub.log()
    return hub
