"""Bounds on plugin sockets that do not authenticate, over real websockets
against a live hub: closed when no valid heartbeat came within
HUB_SOCKET_AUTH_SECONDS, or when more than HUB_SOCKET_PREAUTH_FRAMES frames came
before one; the real SDK, which authenticates with its second frame, is never
touched (ango-plugin-protocol.md §7). And HTTP connections whose request head
never completes (slowloris) are closed by the hub's uvicorn protocol."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed

from plugins_app.plugins.models import FailedHeartbeat
from plugins_app.runs.models import Run
from tests.hub import LiveHub, free_port, wait_for
from tests.test_plugin_socket import (
    ECHO,
    RawClient,
    authenticated,
    live,
)
from tests.test_sdk_model_runs import start_run_from_dialog, wait_finished


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


# --- slowloris ------------------------------------------------------------------
@dataclass
class Served:
    port: int
    url: str


@pytest.fixture
def head_timeout_hub(transactional_db: Any, settings: Any) -> Iterator[Served]:
    """The hub under uvicorn as the Procfile and runhub start it: with the
    head-deadline protocol (the 1 s deadline is read per connection)."""
    from plugins_app.asgi import application
    from plugins_app.ops.http_protocol import HttpToolsProtocol

    settings.HUB_HTTP_HEAD_TIMEOUT_SECONDS = 1
    port = free_port()
    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=port,
        http=HttpToolsProtocol,
        lifespan="on",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=10, what="uvicorn start")
    yield Served(port, f"http://127.0.0.1:{port}")
    server.should_exit = True
    thread.join(timeout=10)


def slowloris(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return sock


def closed_by_peer(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1024) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)


def test_it_closes_connections_whose_request_head_never_completes(
    head_timeout_hub: Served, clients: list[RawClient]
) -> None:
    plugin_socket = RawClient(head_timeout_hub)  # type: ignore[arg-type]
    clients.append(plugin_socket)
    plugin_socket.connect_namespace()
    keep_alive = httpx.Client(base_url=head_timeout_hub.url, timeout=5)
    attackers = [slowloris(head_timeout_hub.port) for _ in range(50)]
    started = time.monotonic()
    # A header line every 0.3 s: each keeps the connection busy, none ends the head.
    while time.monotonic() - started < 2.5:
        for sock in attackers:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                pass
        time.sleep(0.3)
    assert all(closed_by_peer(sock) for sock in attackers)
    for sock in attackers:
        sock.close()

    # Honest clients are untouched: requests on one keep-alive connection, and
    # an open plugin socket (its head completed with the upgrade).
    assert keep_alive.get("/login/").status_code == 200
    time.sleep(0.5)
    assert keep_alive.get("/login/").status_code == 200
    assert not plugin_socket.closed.is_set()
    plugin_socket.probe()


def test_it_refuses_a_request_head_above_the_limit(
    head_timeout_hub: Served, settings: Any
) -> None:
    settings.HUB_HTTP_MAX_HEAD_BYTES = 8192
    sock = socket.create_connection(("127.0.0.1", head_timeout_hub.port), timeout=5)
    sock.sendall(b"GET /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    answer = b""
    try:
        for _ in range(100):  # 100 KiB of headers, never ending
            sock.sendall(b"X-Big: " + b"a" * 1000 + b"\r\n")
    except OSError:
        pass  # closed under us
    try:
        while chunk := sock.recv(4096):
            answer += chunk
    except OSError:
        pass
    sock.close()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    # A large body after a normal head is not a large head.
    body = {"username": "x" * 200_000, "password": "y"}
    response = httpx.post(head_timeout_hub.url + "/login/", data=body, timeout=10)
    assert response.status_code in (200, 403), response.text[:200]
