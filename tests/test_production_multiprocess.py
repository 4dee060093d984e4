"""Production mode with several web processes, as behind a proxy: two (three)
uvicorn processes on one PostgreSQL database and one Redis, a Celery worker with
beat, and a real SDK plugin, each in its own process.

The plugin is connected to process B, the run is started through process A and
a browser watches it on process C: every message between them goes through Redis
(channel layer) and PostgreSQL (leases), none through process memory. Skipped,
saying why, when PostgreSQL or Redis is not reachable."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests import test_production_mode as production
from tests.hub import SCRIPTS, PluginProcess, free_port, start_plugin, wait_for

pytestmark = production.pytestmark  # the same skip, with the same reason

ECHO = SCRIPTS / "echo_model.py"
# The plugin takes 3 s per job: long enough to open the browser socket before
# the answer, and to kill the plugin's web process while it holds the job.
SLOW = {"ECHO_MODE": "slow", "ECHO_SLEEP": "3"}
DEMO_PASSWORD = "plugin-hub"


class MultiStack(production.Stack):
    """`Stack` with three web processes: A (the one `Stack` starts), B and C."""

    def __init__(self, tmp: Path) -> None:
        super().__init__(tmp)
        # Short Engine.IO ping cycle: an instance (and the leases it holds) is
        # seen for ping interval + timeout + 5 s, so a dead process's plugins
        # stop counting within ~9 s instead of ~50 s.
        self.env.update(HUB_PING_INTERVAL_MS="2000", HUB_PING_TIMEOUT_MS="2000")
        self.urls = {"a": self.url}
        self.webs: dict[str, PluginProcess] = {}

    def start(self) -> dict[str, Any]:
        info = super().start()  # migrate, seed, token, web A, worker with beat
        self.webs["a"] = next(p for p in self.processes if p.name == "web")
        for name in ("b", "c"):
            port = free_port()
            self.urls[name] = f"http://127.0.0.1:{port}"
            self.webs[name] = self.spawn(
                f"web-{name}", "-m", "uvicorn", "plugins_app.asgi:application",
                "--port", str(port), "--log-level", "warning",
                "--ws-max-size", "67108864",
            )  # fmt: skip
        for name in ("b", "c"):
            web, url = self.webs[name], self.urls[name]
            wait_for(
                lambda web=web, url=url: production._up(url) or not web.alive(),
                timeout=30,
                what=f"web process {name}",
            )
            assert web.alive(), web.log()
        return info

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log()[-3000:]}" for p in self.processes)


@pytest.fixture(scope="module")
def multi(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[MultiStack, dict[str, Any]]]:
    hub = MultiStack(tmp_path_factory.mktemp("multiprocess"))
    try:
        info = hub.start()
        yield hub, info
    finally:
        hub.stop()


def _api(hub: MultiStack, info: dict[str, Any], via: str) -> httpx.Client:
    return httpx.Client(
        base_url=hub.urls[via],
        headers={"Authorization": f"Bearer {info['token']}"},
        timeout=10,
    )


def _model_plugin(api: httpx.Client) -> dict[str, Any]:
    return next(p for p in api.get("/api/plugins").json() if p["type"] == "model")


def _connect_plugin(
    hub: MultiStack, info: dict[str, Any], to: str, tmp_path: Path
) -> PluginProcess:
    model = info["credentials"]["model_plugin"]
    plugin = start_plugin(
        ECHO,
        sdk="1.4",
        host=hub.urls[to],
        plugin_id=model["id"],
        secret=model["secret"],
        log_dir=tmp_path,
        env=SLOW,
    )
    hub.processes.append(plugin)
    return plugin


def _wait_live(api: httpx.Client, plugin_pk: int, count: int) -> None:
    wait_for(
        lambda: api.get(f"/api/plugins/{plugin_pk}").json()["live_instances"] == count,
        timeout=30,
        what=f"{count} live instance(s)",
    )


def _start_run(api: httpx.Client, plugin_pk: int, external_id: str) -> int:
    project = api.get("/api/projects").json()[0]
    created = api.post(
        "/api/runs",
        json={
            "plugin_id": plugin_pk,
            "project_id": project["id"],
            "class_mapping": {"face": "face-box"},
            "external_ids": [external_id],
        },
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


def _browser_login(base_url: str) -> str:
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


def _handled(plugin: PluginProcess) -> list[str]:
    return [line for line in plugin.log().splitlines() if line.startswith("HANDLED")]


def test_a_run_started_on_a_reaches_a_plugin_on_b_and_a_browser_on_c(
    multi: tuple[MultiStack, dict[str, Any]], tmp_path: Path
) -> None:
    hub, info = multi
    api = _api(hub, info, via="a")
    plugin = _model_plugin(api)
    on_b = _connect_plugin(hub, info, to="b", tmp_path=tmp_path)
    _wait_live(api, plugin["id"], 1)
    cookie = _browser_login(hub.urls["c"])

    run_id = _start_run(api, plugin["id"], "astronaut")
    ws_url = hub.urls["c"].replace("http", "ws") + f"/ws/runs/{run_id}/"
    fragments: list[str] = []
    with connect(
        ws_url, additional_headers={"Cookie": cookie, "Origin": hub.urls["c"]}
    ) as watcher:
        # On connect C renders the stored log; everything after that is pushed
        # because A (dispatch) and B (logs, answer) told C through Redis.
        fragments.append(watcher.recv(timeout=10))
        wait_for(
            lambda: (
                fragments.append(watcher.recv(timeout=20))
                or 'id="run-status"' in fragments[-1]
                and "Succeeded" in fragments[-1]
            ),
            timeout=30,
            what="a Succeeded fragment on process C",
        )
    run = api.get(f"/api/runs/{run_id}").json()
    assert run["status"] == "succeeded", (run, hub.logs())
    assert "Succeeded" not in fragments[0], "the run ended before C was watching"
    pushed = "".join(fragments[1:])
    assert "echo done" in pushed, fragments
    assert "Succeeded" in pushed, fragments
    assert len(_handled(on_b)) == 1, on_b.log()
    logs = api.get(f"/api/runs/{run_id}/logs").json()
    assert [line["message"] for line in logs].count("echo done") == 1
    on_b.stop()
    _wait_live(api, plugin["id"], 0)


def test_a_job_held_on_a_killed_web_process_completes_once_on_another(
    multi: tuple[MultiStack, dict[str, Any]], tmp_path: Path
) -> None:
    hub, info = multi
    api = _api(hub, info, via="a")
    plugin = _model_plugin(api)
    first = _connect_plugin(hub, info, to="b", tmp_path=tmp_path)
    _wait_live(api, plugin["id"], 1)
    run_id = _start_run(api, plugin["id"], "coins")
    wait_for(lambda: _handled(first), timeout=20, what="the plugin to take the job")

    hub.webs["b"].proc.send_signal(signal.SIGKILL)  # the job is mid-sleep
    hub.webs["b"].proc.wait(timeout=10)
    # The SDK exits when its connection drops and one reconnect fails; a
    # supervisor (examples/run_forever.sh, systemd) starts it again, here
    # against A, as a proxy would route a reconnect to a surviving process.
    wait_for(lambda: not first.alive(), timeout=20, what="the SDK to exit")
    second = _connect_plugin(hub, info, to="a", tmp_path=tmp_path)

    wait_for(
        lambda: api.get(f"/api/runs/{run_id}").json()["finished_at"],
        timeout=35,
        what="the run to end after its web process died",
    )
    run = api.get(f"/api/runs/{run_id}").json()
    assert run["status"] == "succeeded", (run, hub.logs())
    assert len(_handled(second)) == 1, second.log()
    logs = [line["message"] for line in api.get(f"/api/runs/{run_id}/logs").json()]
    assert logs.count("echo done") == 1, logs
    # Sent twice (to B's instance, then to A's), answered once.
    assert sum(m.startswith("Job sent to instance") for m in logs) == 2, logs
