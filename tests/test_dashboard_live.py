"""The dashboard's live figures over the real ASGI app and a real websocket:
a finished item wakes the page's socket, which is sent the figures fragment
(hx-swap-oob) without a reload; a burst of items is coalesced into about one
render a second, not one per item; outsiders and bad windows are refused."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from django.test import Client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from plugins_app import protocol
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.instances import instance_disconnect
from plugins_app.runs.ledger import run_cancel
from plugins_app.runs.models import WorkItem
from plugins_app.runs.notify import dashboard_wakes
from tests.builders import CHANNEL, bulk_assets, connect_instance, new_run
from tests.hub import LiveHub, wait_for
from tests.test_ledger import respond

FIGURES = 'id="dashboard-figures" hx-swap-oob="true"'


@pytest.fixture(autouse=True)
def fresh_wakes() -> None:
    # A plugin id a previous test used may have had a wake-up sent within
    # the interval: this test's first one would be dropped.
    dashboard_wakes._sent.clear()


def watch(live_hub: LiveHub, user: Any, plugin_id: int, query: str = "") -> Any:
    browser = Client()
    browser.force_login(user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    url = live_hub.url.replace("http", "ws") + f"/ws/plugins/{plugin_id}/dashboard/"
    return connect(
        url + query, additional_headers={"Cookie": cookie, "Origin": live_hub.url}
    )


def frames(watcher: ClientConnection, seconds: float) -> list[str]:
    """Every frame the socket is sent within `seconds`."""
    got: list[str] = []
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        try:
            got.append(str(watcher.recv(timeout=left)))
        except TimeoutError:
            break
    return got


def until(watcher: ClientConnection, text: str, timeout: float = 15) -> str:
    """The first frame (of those the socket is sent) that holds `text`."""
    end = time.monotonic() + timeout
    while (left := end - time.monotonic()) > 0:
        frame = str(watcher.recv(timeout=left))
        if text in frame:
            return frame
    raise AssertionError(f"no frame with {text!r} within {timeout} s")


def test_a_finished_item_pushes_the_figures_to_the_page(
    workspace: Any, make_plugin: Any, live_hub: LiveHub
) -> None:
    plugin = make_plugin().plugin
    connect_instance(plugin)
    run = new_run(workspace, plugin, "astronaut", "coins", dispatch=True)
    first, second = run.items.order_by("pk")
    with watch(live_hub, workspace.annotator, plugin.pk, "?window=day") as watcher:
        assert frames(watcher, 0.5) == []  # nothing changed: nothing rendered
        assert respond(first) == "done"
        pushed = until(watcher, "done 1 ·")
        assert FIGURES in pushed
        assert "?window=day" in pushed  # the page's window, kept
        assert respond(second, error="model crashed") == "error"
        pushed = until(watcher, "failed 1 ·")
        assert 'class="error-cell"' in pushed
        # The instance goes: the page says so without a reload.
        instance_disconnect(channel_name=CHANNEL)
        wait_for(
            lambda: "none connected" in str(watcher.recv(timeout=10)),
            timeout=20,
            what="the page told the instance went",
        )


def test_a_new_run_and_a_cancelled_one_push_the_figures_to_the_page(
    workspace: Any, make_plugin: Any, live_hub: LiveHub
) -> None:
    """Not only a finished item: a run created (nothing has ended yet) and a
    run cancelled change the runs by state, and the page shows it at once."""
    plugin = make_plugin().plugin
    connect_instance(plugin)
    with watch(live_hub, workspace.annotator, plugin.pk) as watcher:
        frames(watcher, 2.5)  # the renders that follow opening the page
        run = new_run(workspace, plugin, "astronaut")  # not dispatched: queued
        pushed = until(watcher, "status-queued", timeout=5)
        assert FIGURES in pushed
        frames(watcher, 1.5)  # past the wake-up interval
        run_cancel(run, by=workspace.admin)
        assert "status-cancelled" in until(watcher, "status-cancelled", timeout=5)


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The groups the hub sends to, with a wake-up interval of 1.5 s."""
    monkeypatch.setattr(protocol, "DASHBOARD_WAKE_SECONDS", 1.5)
    sent: list[str] = []
    group_send = protocol.group_send

    def counting(group: str, message: dict[str, Any]) -> None:
        sent.append(group)
        group_send(group, message)

    monkeypatch.setattr(protocol, "group_send", counting)
    return sent


def test_what_a_dropped_wake_up_announced_shows_an_interval_later(
    workspace: Any, make_plugin: Any, live_hub: LiveHub, sends: list[str]
) -> None:
    """The second item ends within the interval of the first one's wake-up:
    the hub sends no wake-up for it, and the page's second render shows it."""
    plugin = make_plugin().plugin
    connect_instance(plugin)
    run = new_run(workspace, plugin, "astronaut", "coins", dispatch=True)
    first, second = run.items.order_by("pk")
    with watch(live_hub, workspace.annotator, plugin.pk) as watcher:
        # Past the render an interval after joining.
        assert len(frames(watcher, 2 * protocol.DASHBOARD_WAKE_SECONDS + 0.5)) == 1
        sends.clear()  # the new run's wake-up
        assert respond(first, error="boom") == "error"
        until(watcher, "failed 1 ·")
        assert respond(second, error="boom") == "error"
        assert sends.count(protocol.dashboard_group(plugin.pk)) == 1  # dropped
        until(watcher, "failed 2 ·", timeout=10)


def test_a_page_joining_after_a_wake_up_is_shown_what_followed_it(
    workspace: Any, make_plugin: Any, live_hub: LiveHub, sends: list[str]
) -> None:
    """A wake-up goes to no one (the page is not open yet); the next item's
    is dropped; the page, opened now, shows both within an interval."""
    plugin = make_plugin().plugin
    connect_instance(plugin)
    run = new_run(workspace, plugin, "astronaut", "coins", dispatch=True)
    first, second = run.items.order_by("pk")
    dashboard_wakes._sent.clear()  # past the new run's wake-up interval
    sends.clear()
    assert respond(first, error="boom") == "error"
    assert respond(second, error="boom") == "error"
    assert sends.count(protocol.dashboard_group(plugin.pk)) == 1  # dropped
    with watch(live_hub, workspace.annotator, plugin.pk) as watcher:
        until(watcher, "failed 2 ·", timeout=10)


def test_a_burst_of_items_is_rendered_about_once_a_second(
    workspace: Any, make_plugin: Any, live_hub: LiveHub
) -> None:
    # DASHBOARD_BURST_ITEMS=1000 for the figure in docs/benchmarks.md.
    count = int(os.environ.get("DASHBOARD_BURST_ITEMS", "300"))
    plugin = make_plugin().plugin
    plugin.concurrency = count
    plugin.save(update_fields=["concurrency"])
    connect_instance(plugin)
    run = new_run(workspace, plugin, *bulk_assets(workspace.project, count))
    assert dispatch_pending(plugin.pk) == count
    dashboard_wakes._sent.clear()  # past the new run's wake-up interval
    with watch(live_hub, workspace.annotator, plugin.pk) as watcher:
        started = time.monotonic()
        pushed: list[str] = []
        for item in run.items.order_by("pk"):
            assert respond(item, error="boom") == "error"
            pushed += frames(watcher, 0)
        took = time.monotonic() - started
        # The last of them shows at the latest in the render that follows a
        # wake-up by an interval.
        pushed += frames(watcher, 5 * protocol.DASHBOARD_WAKE_SECONDS + 1)
    assert run.items.filter(state=WorkItem.State.FAILED).count() == count
    assert f"failed {count} ·" in pushed[-1]
    # Renders an interval apart at least, until at most four intervals
    # after the last item: a few, not one per item.
    most = 5 + took / protocol.DASHBOARD_WAKE_SECONDS
    print(f"{count} items in {took:.1f} s: {len(pushed)} renders")
    assert 2 <= len(pushed) <= most, (len(pushed), took)


def test_one_wake_up_per_interval_leaves_a_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sender's side alone: 1,000 finished items of one plugin within an
    interval are one group send; the next interval's first is another."""
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        protocol, "group_send", lambda group, message: sent.append((group, message))
    )
    monkeypatch.setattr(protocol, "DASHBOARD_WAKE_SECONDS", 0.3)
    for _ in range(1000):
        dashboard_wakes.request(424242)
    dashboard_wakes.request(424243)  # another plugin has its own interval
    assert sent == [
        ("dashboard-424242", protocol.dashboard_changed(424242)),
        ("dashboard-424243", protocol.dashboard_changed(424243)),
    ]
    time.sleep(0.35)
    dashboard_wakes.request(424242)
    dashboard_wakes.request(424242)
    assert len(sent) == 3


def test_outsiders_and_bad_windows_are_refused(
    workspace: Any, make_plugin: Any, live_hub: LiveHub
) -> None:
    plugin = make_plugin().plugin
    for user, query in ((workspace.outsider, ""), (workspace.annotator, "?window=x")):
        # Closed before it is accepted: the handshake is refused (403).
        with pytest.raises(InvalidStatus) as refused:
            watch(live_hub, user, plugin.pk, query)
        assert refused.value.response.status_code == 403
