"""Production mode with several web processes, as behind a proxy: two (three)
uvicorn processes on one PostgreSQL database and one Redis, a Celery worker with
beat, and a real SDK plugin, each in its own process.

The plugin is connected to process B, the run is started through process A and
a browser watches it on process C: every message between them goes through Redis
(channel layer) and PostgreSQL (leases), none through process memory. Skipped,
saying why, when PostgreSQL or Redis is not reachable."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from websockets.sync.client import connect

from plugins_app.runs.dispatch.socket import DISPATCH_LOCK_CLASS
from tests.hub import PluginProcess, wait_for
from tests.production import (
    Stack,
    browser_login,
    model_plugin,
    needs_services,
    start_run,
    wait_live,
)

pytestmark = needs_services

# The plugin takes 3 s per job: long enough to open the browser socket before
# the answer, and to kill the plugin's web process while it holds the job.
SLOW = {"ECHO_MODE": "slow", "ECHO_SLEEP": "3"}


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    hub = Stack(tmp_path_factory.mktemp("multiprocess"), webs=3, fast_pings=True)
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()


def _connect_plugin(hub: Stack, to: str, tmp_path: Path) -> PluginProcess:
    return hub.connect_plugin(to, tmp_path, env=SLOW)


def test_a_run_started_on_a_reaches_a_plugin_on_b_and_a_browser_on_c(
    multi: Stack, tmp_path: Path
) -> None:
    hub = multi
    api = hub.api(via="a")
    plugin = model_plugin(api)
    on_b = _connect_plugin(hub, to="b", tmp_path=tmp_path)
    wait_live(api, plugin["id"], 1)
    cookie = browser_login(hub.urls["c"])

    run_id = start_run(api, plugin["id"], "astronaut")
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
    assert len(on_b.handled()) == 1, on_b.log()
    logs = api.get(f"/api/runs/{run_id}/logs").json()
    assert [line["message"] for line in logs].count("echo done") == 1
    on_b.stop()
    wait_live(api, plugin["id"], 0)


def test_answers_go_on_while_another_process_holds_the_plugins_dispatch_lock(
    multi: Stack, tmp_path: Path
) -> None:
    # Every finished job asks for a dispatch, and dispatches of one plugin take
    # turns under its lock. A web process must not queue its sockets' answers
    # behind that lock: with two queue processes, one fell 9 s behind that way.
    hub = multi
    api = hub.api(via="a")
    plugin = model_plugin(api)
    for n in "12":
        (tmp_path / n).mkdir()
    plugins = [
        hub.connect_plugin("c", tmp_path / n, env=SLOW, concurrency=1) for n in "12"
    ]
    wait_live(api, plugin["id"], 2)
    runs = [start_run(api, plugin["id"], x) for x in ("astronaut", "coins", "camera")]
    wait_for(
        lambda: all(p.handled() for p in plugins), timeout=20, what="two jobs taken"
    )

    def statuses() -> list[str]:
        return sorted(api.get(f"/api/runs/{r}").json()["status"] for r in runs)

    # What a queue process or a Celery worker dispatching this plugin holds.
    with psycopg.connect(hub.env["DATABASE_URL"], autocommit=True) as dispatcher:
        dispatcher.execute(
            "SELECT pg_advisory_lock(%s::int, %s::int)",
            [DISPATCH_LOCK_CLASS, plugin["id"]],
        )
        wait_for(
            lambda: statuses() == ["queued", "succeeded", "succeeded"],
            timeout=15,
            what="both answers stored while the lock is held",
        )
    wait_for(
        lambda: statuses() == ["succeeded"] * 3,
        timeout=20,
        what="the third run, once the lock is free",
    )
    handled = [session for p in plugins for session in p.handled()]
    assert len(handled) == len(set(handled)) == 3, hub.logs()
    for p in plugins:
        p.stop()
    wait_live(api, plugin["id"], 0)


def test_a_job_held_on_a_killed_web_process_completes_once_on_another(
    multi: Stack, tmp_path: Path
) -> None:
    hub = multi
    api = hub.api(via="a")
    plugin = model_plugin(api)
    first = _connect_plugin(hub, to="b", tmp_path=tmp_path)
    wait_live(api, plugin["id"], 1)
    run_id = start_run(api, plugin["id"], "coins")
    wait_for(lambda: first.handled(), timeout=20, what="the plugin to take the job")

    hub.webs["b"].proc.send_signal(signal.SIGKILL)  # the job is mid-sleep
    hub.webs["b"].proc.wait(timeout=10)
    # The SDK exits when its connection drops and one reconnect fails; a
    # supervisor (examples/run_forever.sh, systemd) starts it again, here
    # against A, as a proxy would route a reconnect to a surviving process.
    wait_for(lambda: not first.alive(), timeout=20, what="the SDK to exit")
    second = _connect_plugin(hub, to="a", tmp_path=tmp_path)

    wait_for(
        lambda: api.get(f"/api/runs/{run_id}").json()["finished_at"],
        timeout=35,
        what="the run to end after its web process died",
    )
    run = api.get(f"/api/runs/{run_id}").json()
    assert run["status"] == "succeeded", (run, hub.logs())
    assert len(second.handled()) == 1, second.log()
    logs = [line["message"] for line in api.get(f"/api/runs/{run_id}/logs").json()]
    assert logs.count("echo done") == 1, logs
    # Sent twice (to B's instance, then to A's), answered once.
    assert sum(m.startswith("Job sent to instance") for m in logs) == 2, logs
