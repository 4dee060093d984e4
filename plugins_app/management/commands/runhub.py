"""`make run`: the ASGI server, a Celery worker with beat, and the bundled example
plugins (restarted when they exit, as the SDK exits whenever its socket drops).

Quiet by default: the server logs no access line per request and no socket
open/close (a browser polls and watches runs all the time), Celery prints no
banner; what is left is the hub's own INFO lines (a plugin connecting, a run's
answer), warnings and errors. `--verbose` brings the access log back. Ctrl-C
(or SIGTERM) stops every child within STOP_SECONDS and restarts nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from plugins_app.demo.seed import DEMO_LOGINS, DEMO_PASSWORD

RESTART_DELAY_SECONDS = 2.0
# How long children get to exit on their own after SIGTERM before SIGKILL:
# uvicorn closes its sockets and Celery finishes a warm shutdown in well under
# this; a plugin stuck in a callback does not hold the stop up for longer.
STOP_SECONDS = 5.0
LISTEN_TIMEOUT_SECONDS = 30.0
HTTP_PROTOCOL = "plugins_app.ops.http_protocol:HttpToolsProtocol"


class Command(BaseCommand):
    help = (
        "Start the hub (ASGI server + Celery worker and beat) and the example plugins."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("HUB_HOST", "127.0.0.1"))
        parser.add_argument(
            "--port", type=int, default=int(os.environ.get("HUB_PORT", "8000"))
        )
        parser.add_argument(
            "--plugin-python",
            default=os.environ.get("PLUGIN_PYTHON", ".venv-sdk14/bin/python"),
            help="Python with examples/requirements.txt installed",
        )
        parser.add_argument("--no-examples", action="store_true")
        parser.add_argument(
            "--verbose",
            action="store_true",
            help="log every request (the server's access log) and socket",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self._stopping = False
        # Before any child starts: a Ctrl-C during start-up stops what has
        # started instead of leaving it running behind a traceback.
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGTERM, self._stop)
        url = f"http://{options['host']}:{options['port']}"
        commands = {
            "web": self._web_command(options),
            "worker": [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "plugins_app",
                "--quiet",  # no start-up banner
                "worker",
                "-B",
                # WARNING: the sweep runs every few seconds and would bury the
                # banner and the plugins' own output.
                "--loglevel",
                "WARNING",
                "--concurrency",
                "2",
            ],
        }
        children: dict[str, subprocess.Popen[bytes]] = {}
        try:
            children["web"] = subprocess.Popen(commands["web"])
            children["worker"] = subprocess.Popen(commands["worker"])
            # Plugins connect once the server listens (they exit otherwise).
            if not self._wait_listening(options["host"], options["port"]):
                return
            if not options["no_examples"]:
                commands.update(self._example_commands(options["plugin_python"], url))
            for name, cmd in commands.items():
                if name not in children and not self._stopping:
                    children[name] = subprocess.Popen(cmd)
            if not self._stopping:
                self._banner(url, examples=len(commands) > 2)
                self._supervise(children, commands)
        finally:
            self._stop_children(children)

    def _stop(self, *_: Any) -> None:
        self._stopping = True

    def _web_command(self, options: dict[str, Any]) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "plugins_app.asgi:application",
            "--host",
            options["host"],
            "--port",
            str(options["port"]),
            # Above HUB_MAX_FRAME_BYTES: the hub, not the server, refuses
            # big frames, so it can say why.
            "--ws-max-size",
            str(4 * settings.HUB_MAX_FRAME_BYTES),
            # Bounds uvicorn leaves open (docs/deployment.md): the request
            # head's deadline and size, connections per process, idle
            # keep-alive connections.
            "--http",
            HTTP_PROTOCOL,
            "--limit-concurrency",
            os.environ.get("HUB_LIMIT_CONCURRENCY", "4000"),
            "--timeout-keep-alive",
            "5",
            # Refusals (4xx) and errors are logged once by Django itself
            # (django.request); the access log would repeat every poll.
            *(
                ["--log-level", "info"]
                if options["verbose"]
                else ["--log-level", "warning", "--no-access-log"]
            ),
        ]

    def _wait_listening(self, host: str, port: int) -> bool:
        deadline = time.monotonic() + LISTEN_TIMEOUT_SECONDS
        while not self._stopping and time.monotonic() < deadline:
            try:
                with socket.create_connection((host, port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.2)
        if not self._stopping:
            self.stderr.write(f"The server did not listen on {host}:{port}; stopping.")
        return False

    def _example_commands(self, python: str, url: str) -> dict[str, list[str]]:
        credentials_file = settings.VAR_DIR / "demo-plugins.json"
        if not Path(python).exists() or not credentials_file.exists():
            self.stderr.write(
                "Example plugins not started (run `make run` to set them up)."
            )
            return {}
        credentials = json.loads(credentials_file.read_text())
        scripts = {
            "model_plugin": "examples/model_plugin.py",
            "batch_plugin": "examples/batch_model_plugin.py",
            "qa_plugin": "examples/qa_event_plugin.py",
            "consensus_plugin": "examples/consensus_plugin.py",
            "export_plugin": "examples/export_plugin.py",
            "merge_plugin": "examples/merge_jobs_plugin.py",
        }
        commands = {}
        for key, script in scripts.items():
            if key not in credentials:  # seeded by an older version
                continue
            env_prefix = [
                "env",
                f"HOST={url}",
                f"PLUGIN_ID={credentials[key]['id']}",
                f"PLUGIN_SECRET={credentials[key]['secret']}",
            ]
            commands[f"example:{key}"] = [*env_prefix, python, script]
        return commands

    def _banner(self, url: str, *, examples: bool) -> None:
        roles = {
            "admin": "registers plugins, manages projects",
            "reviewer": "also accepts and rejects",
            "annotator": "labels and runs plugins",
            "vehicles": "labels the Vehicles job (parallel labeling)",
            "scene": "labels the Scene job (parallel labeling)",
        }
        logins = "".join(
            f"    {name:<10} {roles.get(name, '')}\n" for name in DEMO_LOGINS
        )
        plugins = (
            "  The example plugins are connected (restarted if they exit).\n"
            f"  To run one by hand: examples/README.md, with HOST={url} and the\n"
            f"  PLUGIN_ID / PLUGIN_SECRET in {settings.VAR_DIR / 'demo-plugins.json'}\n"
            if examples
            else ""
        )
        self.stdout.write(
            f"\n  Plugin Hub is running at {url}/\n"
            f"  Log in with password {DEMO_PASSWORD} as:\n{logins}"
            f"{plugins}"
            f"  API docs: {url}/api/docs · Ctrl-C stops everything.\n"
        )

    def _supervise(
        self,
        children: dict[str, subprocess.Popen[bytes]],
        commands: dict[str, list[str]],
    ) -> None:
        restart_at: dict[str, float] = {}
        while not self._stopping:
            time.sleep(0.2)
            for name, child in list(children.items()):
                if self._stopping or child.poll() is None:
                    continue
                if not name.startswith("example:"):
                    self.stderr.write(
                        f"{name} exited with {child.returncode}; stopping."
                    )
                    self._stopping = True
                    break
                # Restarted after a pause (the SDK exits whenever its socket
                # drops, e.g. while the server restarts), never once stopping.
                if name not in restart_at:
                    restart_at[name] = time.monotonic() + RESTART_DELAY_SECONDS
                    self.stderr.write(
                        f"{name} exited with {child.returncode}; restarting it."
                    )
                elif time.monotonic() >= restart_at[name]:
                    del restart_at[name]
                    children[name] = subprocess.Popen(commands[name])

    def _stop_children(self, children: dict[str, subprocess.Popen[bytes]]) -> None:
        # Plugins first, so the server does not log their sockets dropping
        # one by one while it shuts down.
        ordered = sorted(children, key=lambda name: not name.startswith("example:"))
        for name in ordered:
            if children[name].poll() is None:
                children[name].terminate()
        deadline = time.monotonic() + STOP_SECONDS
        for name in ordered:
            try:
                children[name].wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                children[name].kill()
                children[name].wait()
