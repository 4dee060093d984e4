"""`make run`'s `manage.py runhub`, started for real in a subprocess with its
own var/ directory: the banner names every demo login, the console stays
quiet while idle (no heartbeat, socket chatter or request line at INFO), a 403
is one line, and Ctrl-C stops the server, the Celery worker and every example
plugin without restarting any of them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from plugins_app.demo.seed import DEMO_LOGINS, DEMO_PASSWORD
from tests import hub_templates
from tests.hub import free_port, wait_for
from tests.production import browser_login

pytestmark = [pytest.mark.sdk, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SDK_PYTHON = ROOT / ".venv-sdk14" / "bin" / "python"
EXAMPLES = 6  # model, batch model, QA bot, consensus, export, job merger

# What a quiet console must not show: the SDK's heartbeats and socket events,
# APScheduler's heartbeat job, the server's access and socket lines.
ROUTINE = re.compile(
    r"Heartbeat at|Emitting event|Received event|apscheduler|"
    r'"(GET|POST) /|connection open|connection closed|\[accepted\]'
)


class Console:
    """The merged stdout/stderr of a process, read by a thread."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,))
        self._thread.daemon = True
        self._thread.start()

    def _read(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def text(self, since: int = 0) -> str:
        return "\n".join(self.lines[since:])


def descendants(pid: int) -> set[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return set()
    found = {int(child) for child in children}
    for child in list(found):
        found |= descendants(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def interrupt(process: subprocess.Popen[bytes], children: set[int]) -> None:
    """Ctrl-C: runhub exits, and so does every process it started."""
    process.send_signal(signal.SIGINT)
    wait_for(lambda: process.poll() is not None, timeout=20, what="runhub to exit")
    wait_for(
        lambda: not any(alive(pid) for pid in children),
        timeout=10,
        what="every child of runhub to exit",
    )


@pytest.fixture
def hub_env(tmp_path: Path) -> dict[str, str]:
    """A migrated, seeded var/ of its own, with the hub's real settings."""
    if not SDK_PYTHON.exists():
        pytest.skip(".venv-sdk14 is missing (make run creates it)")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "plugins_app.settings",
        "HUB_VAR_DIR": str(tmp_path / "var"),
        "HUB_CONNECTOR_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "HUB_MEDIA_ROOT", "LOGLEVEL"):
        env.pop(name, None)
    # As `manage.py migrate` and `seed_demo` leave it (run once per session).
    hub_templates.clone(
        hub_templates.EMBEDDED_DEMO, None, tmp_path / "var", redis_url=None
    )
    return env


def test_runhub_is_quiet_and_ctrl_c_stops_everything(hub_env: dict[str, str]) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "runhub",
            "--port",
            str(port),
            "--plugin-python",
            str(SDK_PYTHON),
        ],
        cwd=ROOT,
        env=hub_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    console = Console(process)
    try:
        wait_for(
            lambda: "Plugin Hub is running at" in console.text(),
            timeout=120,
            what="the banner",
        )
        # Every example plugin connected (the hub's one line per connection).
        wait_for(
            lambda: console.text().count(" connected from ") >= EXAMPLES,
            timeout=180,
            what=f"{EXAMPLES} example plugins connected",
        )
        banner = console.text()
        for username in DEMO_LOGINS:
            assert re.search(rf"^\s+{username}\s", banner, re.M), banner
        assert DEMO_PASSWORD in banner

        # Idle, with what a browser does all the time: polls and page loads,
        # then one refused page (an annotator may not register plugins).
        idle_from = len(console.lines)
        annotator = httpx.Client(
            base_url=url, timeout=20, headers={"Cookie": browser_login(url)}
        )
        for _ in range(3):
            assert httpx.get(f"{url}/healthz", timeout=20).status_code == 200
            assert annotator.get("/").status_code == 200
        assert annotator.get("/plugins/new/").status_code == 403
        time.sleep(3)  # what the server, worker and plugins print meanwhile
        idle = console.text(idle_from)
        refusals = [line for line in idle.splitlines() if "/plugins/new/" in line]
        assert len(refusals) == 1, idle
        assert "Forbidden" in refusals[0]
        assert "Traceback" not in idle, idle
        # Nothing routine, before or during the idle time.
        assert not ROUTINE.search(console.text()), console.text()

        children = descendants(process.pid)
        assert len(children) >= EXAMPLES + 2, children  # + server and worker
        stopped_from = len(console.lines)
        interrupt(process, children)
        after = console.text(stopped_from)
        assert "restarting" not in after, after
        assert "Traceback" not in after, after
    finally:
        leftovers = descendants(process.pid)
        if process.poll() is None:
            process.kill()
        for pid in leftovers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_runhub_stops_what_it_started_when_stopped_during_start_up(
    hub_env: dict[str, str],
) -> None:
    """Ctrl-C before the server even listens: nothing is left behind."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runhub", "--port", str(port), "--no-examples"],
        cwd=ROOT,
        env=hub_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    console = Console(process)
    children: set[int] = set()
    try:
        # Both children started (the server and the worker), not yet serving.
        wait_for(
            lambda: len(descendants(process.pid)) >= 2, timeout=60, what="children"
        )
        children = descendants(process.pid)
        interrupt(process, children)
        assert "Traceback" not in console.text(), console.text()
    finally:
        if process.poll() is None:
            process.kill()
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
