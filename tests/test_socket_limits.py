"""Bounds on plugin sockets that do not authenticate, over real websockets
against a live hub: closed when no valid heartbeat came within
HUB_SOCKET_AUTH_SECONDS, or when more than HUB_SOCKET_PREAUTH_FRAMES frames came
before one; the real SDK, which authenticates with its second frame, is never
touched (ango-plugin-protocol.md §7)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from plugins_app.plugins.models import FailedHeartbeat
from plugins_app.runs.models import Run
from tests.hub import LiveHub
from tests.test_plugin_socket import (
    ECHO,
    RawClient,
    authenticated,
    live,
)
from tests.test_sdk_model_runs import start_run_from_dialog, wait_finished


@pytest.fixture
def clients() -> Iterator[list[RawClient]]:
    opened: list[RawClient] = []
    yield opened
    for client in opened:
        client.close()


def test_it_closes_a_socket_that_never_authenticates(
    live_hub: LiveHub, settings: Any, clients: list[RawClient]
) -> None:
    settings.HUB_SOCKET_AUTH_SECONDS = 1
    silent = RawClient(live_hub)  # not even the namespace CONNECT
    talker = RawClient(live_hub)
    clients += [silent, talker]
    talker.connect_namespace()
    talker.probe()  # events are handled, but they are not a heartbeat
    assert silent.wait_closed(timeout=5) < 3
    assert talker.wait_closed(timeout=5) < 3


def test_it_closes_a_wrong_secret_after_the_bound_and_keeps_the_right_one(
    live_hub: LiveHub, make_plugin: Any, settings: Any, clients: list[RawClient]
) -> None:
    settings.HUB_SOCKET_AUTH_SECONDS = 1
    settings.HUB_PING_INTERVAL_MS = 200
    registered = make_plugin()
    wrong = RawClient(live_hub)
    clients.append(wrong)
    wrong.connect_namespace()
    wrong.heartbeat(registered.plugin.public_id, "not-the-secret")
    right = authenticated(live_hub, registered)
    clients.append(right)
    assert wrong.wait_closed(timeout=5) < 3
    time.sleep(1.5)  # past the bound, many pings later
    assert not right.closed.is_set()
    right.probe()
    assert live(registered.plugin) == 1
    assert FailedHeartbeat.objects.count() == 1


def test_it_closes_a_socket_whose_secret_stops_matching_after_the_bound(
    live_hub: LiveHub, make_plugin: Any, settings: Any, clients: list[RawClient]
) -> None:
    settings.HUB_SOCKET_AUTH_SECONDS = 1
    registered = make_plugin()
    client = authenticated(live_hub, registered)
    clients.append(client)
    time.sleep(1.5)
    client.probe()  # authenticated: no deadline
    client.heartbeat(registered.plugin.public_id, "rotated-away")
    assert live(registered.plugin) == 0
    assert client.wait_closed(timeout=5) < 3


def test_it_closes_a_socket_that_floods_before_authenticating(
    live_hub: LiveHub, settings: Any, clients: list[RawClient]
) -> None:
    settings.HUB_SOCKET_PREAUTH_FRAMES = 10
    flooder = RawClient(live_hub)
    clients.append(flooder)
    flooder.connect_namespace()
    for n in range(200):
        try:
            flooder.send(f'42/plugin,["log",{{"msg":"{n}"}}]')
        except ConnectionClosed:  # closed under us: what the test wants
            break
    assert flooder.wait_closed(timeout=5) < 5


def test_an_authenticated_socket_has_no_frame_budget(
    live_hub: LiveHub, make_plugin: Any, settings: Any, clients: list[RawClient]
) -> None:
    settings.HUB_SOCKET_PREAUTH_FRAMES = 10
    registered = make_plugin()
    client = RawClient(live_hub)
    clients.append(client)
    client.connect_namespace()
    for _ in range(5):  # garbage within the budget, then the heartbeat
        client.send("zzz")
    client.heartbeat(registered.plugin.public_id, registered.secret)
    for _ in range(50):
        client.probe()
    assert live(registered.plugin) == 1


@pytest.mark.parametrize("sdk", ["1.3.22", "1.4"])
def test_the_real_sdk_is_never_closed_by_the_bounds(
    sdk: str, workspace: Any, make_plugin: Any, plugin_runner: Any, settings: Any
) -> None:
    settings.HUB_SOCKET_AUTH_SECONDS = 1
    settings.HUB_SOCKET_PREAUTH_FRAMES = 2  # the SDK's CONNECT and heartbeat
    settings.HUB_PING_INTERVAL_MS = 300
    registered = make_plugin()
    process = plugin_runner(ECHO, registered, sdk=sdk)
    time.sleep(2.5)  # well past the bound, pongs and all
    assert process.alive() and live(registered.plugin) == 1, process.log()
    run = wait_finished(start_run_from_dialog(workspace, registered.plugin, "coins"))
    assert run.status == Run.Status.SUCCEEDED, (run.error, process.log())
    assert "Unexpected" not in process.log()
