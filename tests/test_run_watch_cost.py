"""What watching and finishing runs costs the hub beyond the work itself: no
database connection reopened over and over on the threads that live as long as
the process, no re-render of a run status that did not change, and no polling
of the outbox where a wake-up does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.db.backends.signals import connection_created
from django.test import Client
from websockets.sync.client import ClientConnection, connect

from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.logs import PluginLogRecord, logs_ingest
from plugins_app.runs.models import Run
from plugins_app.runs.responses import item_respond
from tests.builders import CHANNEL, connect_instance, new_run
from tests.hub import ROOT, SCRIPTS, LiveHub, wait_for

ECHO = SCRIPTS / "echo_model.py"
STATUS = 'id="run-live"'
GALLERY = 'id="run-gallery-'


def watch(live_hub: LiveHub, browser: Client, run: Run) -> ClientConnection:
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    url = live_hub.url.replace("http", "ws") + f"/ws/runs/{run.pk}/"
    return connect(url, additional_headers={"Cookie": cookie, "Origin": live_hub.url})


def logged_in(user: Any) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


class ConnectionsPerThread:
    """Counts the database connections each thread opens (a threading.local
    mark tells threads apart, even one that reuses a finished thread's id)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, **kwargs: Any) -> None:
        thread = threading.current_thread()
        if not hasattr(self.local, "key"):
            self.local.key = f"{thread.name}#{len(self.counts)}"
        with self.lock:
            self.counts[self.local.key] = self.counts.get(self.local.key, 0) + 1

    def reopened(self) -> dict[str, int]:
        return {k: n for k, n in self.counts.items() if n > 1}


@pytest.fixture
def connections_per_thread() -> Iterator[ConnectionsPerThread]:
    counter = ConnectionsPerThread()
    connection_created.connect(counter, weak=False)
    yield counter
    connection_created.disconnect(counter)


def test_it_reopens_no_database_connection_on_a_thread_across_watched_runs(
    workspace: Any,
    make_plugin: Any,
    plugin_runner: Any,
    live_hub: LiveHub,
    connections_per_thread: ConnectionsPerThread,
) -> None:
    registered = make_plugin()
    plugin_runner(ECHO, registered, sdk="1.4")
    browser = logged_in(workspace.annotator)
    for n in range(4):
        run = new_run(workspace, registered.plugin, "astronaut", dispatch=True)
        with watch(live_hub, browser, run) as watcher:
            wait_for(
                lambda: "Succeeded" in watcher.recv(timeout=10),
                timeout=20,
                what=f"run {n + 1} to finish on the watcher",
            )
    # Each HTTP request has a thread of its own (one connection each); the
    # database thread, run_later's pool and the pong saver keep theirs.
    assert connections_per_thread.reopened() == {}, connections_per_thread.counts


def test_it_pushes_the_run_status_to_a_watcher_only_when_it_changed(
    workspace: Any, make_plugin: Any, live_hub: LiveHub
) -> None:
    plugin = make_plugin().plugin
    connect_instance(plugin)
    run = new_run(workspace, plugin)
    assert dispatch_pending(plugin.pk) == 1
    session = run.items.get().session
    with watch(live_hub, logged_in(workspace.annotator), run) as watcher:
        first = str(watcher.recv(timeout=10))
        assert STATUS in first  # what the page may have missed
        assert GALLERY in watcher.recv(timeout=10)  # in a frame of its own

        line = PluginLogRecord(session, "INFO", "line one", {})
        logs_ingest([line], channel_name=CHANNEL)
        pushed = str(watcher.recv(timeout=10))
        assert "line one" in pushed and GALLERY not in pushed
        # The status is not sent again unless something it shows changed: here
        # only the running duration can, when its whole second ticks over.
        if STATUS in pushed:
            assert _whole_seconds(pushed) != _whole_seconds(first), pushed

        # Progress reported by the plugin changes the status: shown at once.
        extra = {"progress": 1, "total": 2}
        line = PluginLogRecord(session, "INFO", "half", extra)
        logs_ingest([line], channel_name=CHANNEL)
        pushed = watcher.recv(timeout=10)
        assert "half" in pushed and STATUS in pushed and "1 of 2" in pushed

        assert item_respond(
            session=session, payload={"error": "x"}, channel_name=CHANNEL
        )
        pushes: list[str] = []
        wait_for(
            lambda: (
                pushes.append(str(watcher.recv(timeout=10)))
                or ("Failed" in pushes[-1] and STATUS in pushes[-1])
            ),
            timeout=20,
            what="the finished status",
        )
        # The finished item changed the gallery: it follows the status. (It may
        # already have come: the progress push reads the gallery after sending
        # its status, and the answer above can commit in between.)
        if not any(GALLERY in push for push in pushes):
            assert GALLERY in watcher.recv(timeout=10)


def test_a_push_does_not_wait_for_the_database_thread(
    workspace: Any, make_plugin: Any, live_hub: LiveHub
) -> None:
    """A watcher's push reads on a pool thread (protocol.in_pool): with the
    process's database thread busy (answers, logs and dispatches queue there),
    the browser is still pushed what changed. Before, the push queued behind
    them."""
    from asgiref.sync import SyncToAsync

    plugin = make_plugin().plugin
    connect_instance(plugin)
    run = new_run(workspace, plugin)
    assert dispatch_pending(plugin.pk) == 1
    session = run.items.get().session
    with watch(live_hub, logged_in(workspace.annotator), run) as watcher:
        assert STATUS in str(watcher.recv(timeout=10))
        assert GALLERY in str(watcher.recv(timeout=10))
        busy, release = threading.Event(), threading.Event()

        def hold_the_database_thread() -> None:
            busy.set()
            release.wait(30)

        SyncToAsync.single_thread_executor.submit(hold_the_database_thread)
        try:
            assert busy.wait(10)
            line = PluginLogRecord(session, "INFO", "while it is busy", {})
            logs_ingest([line], channel_name=CHANNEL)
            assert "while it is busy" in str(watcher.recv(timeout=10))
        finally:
            release.set()


def test_a_pusher_that_fails_is_logged_and_its_socket_closed(
    workspace: Any, make_plugin: Any, live_hub: LiveHub, caplog: Any
) -> None:
    """Before, the pusher task died without a word and the page waited on an
    open socket for pushes that never came."""
    from websockets.exceptions import ConnectionClosed

    from plugins_app import protocol

    plugin = make_plugin().plugin
    connect_instance(plugin)
    run = new_run(workspace, plugin)
    with watch(live_hub, logged_in(workspace.annotator), run) as watcher:
        assert STATUS in str(watcher.recv(timeout=10))
        assert GALLERY in str(watcher.recv(timeout=10))
        Run.objects.filter(pk=run.pk).delete()  # the next push finds no run
        changed = dict(protocol.run_changed(run.pk))
        protocol.group_send(protocol.run_group(run.pk), changed)
        with pytest.raises(ConnectionClosed) as closed:
            watcher.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    assert f"the pusher of run-{run.pk} failed" in caplog.text


def _whole_seconds(push: str) -> int:
    """The running duration the live status shows, in whole seconds."""
    found = re.search(r"duration ([0-9.]+) s", push)
    assert found, push
    return int(float(found.group(1)))


def test_it_delivers_a_message_from_another_process_without_waiting_for_the_poll(
    workspace: Any, make_plugin: Any, live_hub: LiveHub, settings: Any
) -> None:
    plugin = make_plugin().plugin
    connect_instance(plugin)
    run = new_run(workspace, plugin)
    # The outbox drain reads the table only every 30 s now; whatever arrives
    # sooner was woken by the writer's bell. Both the old and the new drain
    # take the new interval after their current wait (<= 1 s).
    settings.HUB_OUTBOX_POLL_SECONDS = 30
    time.sleep(1.5)
    with watch(live_hub, logged_in(workspace.annotator), run) as watcher:
        assert STATUS in watcher.recv(timeout=10)
        assert GALLERY in watcher.recv(timeout=10)
        # A Celery worker or the CLI: a process without the ASGI loop, whose
        # channel messages go through the outbox.
        code = (
            "from plugins_app import protocol\n"
            "from plugins_app.runs.models import Run\n"
            f"Run.objects.filter(pk={run.pk}).update(error='from another process')\n"
            f"protocol.group_send(protocol.run_group({run.pk}),"
            f" protocol.run_changed({run.pk}))\n"
        )
        writer = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=ROOT,
            env=other_process_env(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        written = time.monotonic()
        assert writer.returncode == 0, writer.stderr.decode()
        pushed = watcher.recv(timeout=10)
        arrived = time.monotonic() - written
    assert "from another process" in pushed
    assert arrived < 1.0, f"the push came {arrived:.2f} s after the write"


def other_process_env() -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "plugins_app.settings",
        "DATABASE_URL": f"sqlite:///{connection.settings_dict['NAME']}",
        "HUB_VAR_DIR": str(django_settings.VAR_DIR),
    }
    env.pop("HUB_TEST_DB", None)
    return env
