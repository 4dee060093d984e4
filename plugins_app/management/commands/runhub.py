"""`make run`: the ASGI server, a Celery worker with beat, and the bundled example
plugins (restarted when they exit, as the SDK exits whenever its socket drops)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from plugins_app.demo.seed import DEMO_PASSWORD

RESTART_DELAY_SECONDS = 2.0
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

    def handle(self, *args: Any, **options: Any) -> None:
        url = f"http://{options['host']}:{options['port']}"
        python = sys.executable
        commands = {
            "web": [
                python,
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
            ],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "plugins_app",
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
        if not options["no_examples"]:
            commands.update(self._example_commands(options["plugin_python"], url))
        children: dict[str, subprocess.Popen[bytes]] = {}
        for name, cmd in commands.items():
            children[name] = subprocess.Popen(cmd)
            if name == "web":
                time.sleep(1.5)  # let the server listen before plugins connect
        time.sleep(3)  # the banner last, after the start-up chatter
        self._banner(url, options)
        self._supervise(children, commands)

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

    def _banner(self, url: str, options: dict[str, Any]) -> None:
        self.stdout.write(
            f"\n  Plugin Hub is running at {url}/\n"
            f"  Log in as admin, reviewer or annotator, password {DEMO_PASSWORD}\n"
            f"  The example plugins are connected and restarted when they exit.\n"
            f"  To run one by hand: see examples/README.md, with HOST={url} and the\n"
            f"  PLUGIN_ID / PLUGIN_SECRET in {settings.VAR_DIR / 'demo-plugins.json'}\n"
            f"  API docs: {url}/api/docs · Ctrl-C stops everything.\n"
        )

    def _supervise(
        self,
        children: dict[str, subprocess.Popen[bytes]],
        commands: dict[str, list[str]],
    ) -> None:
        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping:
            time.sleep(0.5)
            for name, child in list(children.items()):
                if child.poll() is None:
                    continue
                if not name.startswith("example:"):
                    self.stderr.write(
                        f"{name} exited with {child.returncode}; stopping."
                    )
                    stopping = True
                    break
                time.sleep(RESTART_DELAY_SECONDS)
                children[name] = subprocess.Popen(commands[name])
        for child in children.values():
            child.terminate()
        for child in children.values():
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
