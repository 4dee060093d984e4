"""The live dashboard in production mode: two uvicorn processes on PostgreSQL
and Redis, a Celery worker, and a real SDK plugin. The plugin is connected to
process B, the dashboard is watched on process A: the wake-up that B sends
when the job ends reaches A's socket through Redis, and A pushes the figures.
Skipped, saying why, when PostgreSQL or Redis is not reachable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.hub import wait_for
from tests.production import (
    Stack,
    browser_login,
    model_plugin,
    needs_services,
    start_run,
    wait_live,
)

pytestmark = needs_services


@pytest.fixture(scope="module")
def two_webs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    hub = Stack(tmp_path_factory.mktemp("dashboard"), webs=2)
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()


def test_a_job_answered_on_b_pushes_the_dashboard_watched_on_a(
    two_webs: Stack, tmp_path: Path
) -> None:
    hub = two_webs
    api = hub.api(via="a")
    plugin = model_plugin(api)
    on_b = hub.connect_plugin("b", tmp_path, env={})
    wait_live(api, plugin["id"], 1)
    before = api.get(f"/api/plugins/{plugin['id']}/dashboard").json()["items"]
    cookie = browser_login(hub.urls["a"])
    url = hub.urls["a"].replace("http", "ws") + f"/ws/plugins/{plugin['id']}/dashboard/"
    pushed: list[str] = []
    done = f"done {before['done'] + 1} ·"
    with connect(
        url, additional_headers={"Cookie": cookie, "Origin": hub.urls["a"]}
    ) as watcher:
        start_run(api, plugin["id"], "astronaut")
        wait_for(
            lambda: pushed.append(str(watcher.recv(timeout=20))) or done in pushed[-1],
            timeout=30,
            what=f"'{done}' pushed by process A",
        )
    assert 'id="dashboard-figures" hx-swap-oob="true"' in pushed[-1]
    assert len(on_b.handled()) == 1, on_b.log()
    on_b.stop()
