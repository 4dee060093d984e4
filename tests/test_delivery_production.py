"""One sender per process, production mode (PostgreSQL + Redis): the web
process hands its channel messages to its loop and never waits for Redis on
the thread that answered; the Celery worker sends on its own loop.

Also in process, against the real Redis: the same promise without the stack."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from channels_redis.pubsub import RedisPubSubChannelLayer

from plugins_app import protocol
from plugins_app.runs.models import Run
from plugins_app.wire import senders
from tests.hub import wait_for
from tests.production import (
    REDIS,
    Stack,
    model_plugin,
    needs_services,
    start_run,
    unlabeled_assets,
    wait_live,
)

pytestmark = needs_services
PAUSE_MS = 1500


def pause_redis(ms: int, mode: str = "ALL") -> float:
    """Every client's commands (or writes and PUBLISH, mode WRITE) wait `ms`
    milliseconds; returns when the pause ends (perf_counter)."""
    redis.Redis(*REDIS).execute_command("CLIENT", "PAUSE", ms, mode)
    return time.perf_counter() + ms / 1000


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Stack, dict[str, Any]]]:
    hub = Stack(tmp_path)
    try:
        info = hub.start()
        yield hub, info
    finally:
        redis.Redis(*REDIS).execute_command("CLIENT", "UNPAUSE")
        hub.stop()


def test_a_run_is_created_while_redis_is_paused_and_its_job_goes_out_after(
    stack: tuple[Stack, dict[str, Any]], tmp_path: Path
) -> None:
    hub, _ = stack
    # Each process kind said which sender it chose at start-up.
    assert "through LoopSender" in hub.webs["a"].log(), hub.logs()
    assert hub.worker is not None
    wait_for(
        lambda: "through RedisSender" in hub.worker.log(),  # type: ignore[union-attr]
        timeout=30,
        what="the worker to choose its sender",
    )
    hub.connect_plugin("a", tmp_path, env={})
    api = hub.api()
    plugin = model_plugin(api)
    wait_live(api, plugin["id"], 1)
    asset = unlabeled_assets(hub, api, plugin["id"])[0]
    start_run(api, plugin["id"], asset)  # warm: connections, prepared queries

    # The create leases the item to the plugin's free instance and sends the
    # job after the commit: a PUBLISH, which CLIENT PAUSE WRITE holds back.
    # Reads (the cache) still answer, so only the send could make it wait.
    paused_until = pause_redis(PAUSE_MS, "WRITE")
    run_id = start_run(api, plugin["id"], asset)
    answered = time.perf_counter()
    assert paused_until - answered > PAUSE_MS / 1000 / 2, (
        f"POST /api/runs returned {answered - paused_until:+.2f} s after the "
        "pause ended: it waited for Redis"
    )
    wait_for(
        lambda: (
            hub.sql(f"SELECT status FROM runs_run WHERE id = {run_id}")
            == Run.Status.SUCCEEDED
        ),
        timeout=30,
        what="the run to finish once Redis answers",
    )
    assert time.perf_counter() >= paused_until


# --- in process, the real Redis layer ---------------------------------------------
@pytest.fixture
def redis_layer(settings: Any) -> Iterator[RedisPubSubChannelLayer]:
    """This test process as an ASGI process of a production hub: a running
    loop that chose its sender, and the Redis layer."""
    host = f"redis://{REDIS[0]}:{REDIS[1]}/7"
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [host]},
        }
    }
    settings.CHANNEL_LAYER_IS_PROCESS_LOCAL = False
    from channels.layers import channel_layers

    channel_layers.backends.pop("default", None)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    before = (protocol._asgi_loop, senders._chosen)
    protocol.mark_asgi_process(loop)
    layer = channel_layers["default"]
    yield layer
    redis.Redis(*REDIS).execute_command("CLIENT", "UNPAUSE")
    protocol._asgi_loop, senders._chosen = before
    asyncio.run_coroutine_threadsafe(layer.flush(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    channel_layers.backends.pop("default", None)


def test_the_sending_thread_does_not_wait_for_redis(
    redis_layer: RedisPubSubChannelLayer, transactional_db: Any
) -> None:
    loop = protocol._asgi_loop
    assert loop is not None
    channel = f"delivery-test!{uuid.uuid4().hex}"
    # Subscribed before the pause (a receive subscribes the channel).
    receiving = asyncio.run_coroutine_threadsafe(
        _receive_all(redis_layer, channel, 3), loop
    )
    time.sleep(0.3)
    protocol.send(channel, {"type": "t.m", "n": 0})
    wait_for(lambda: len(_got) == 1, timeout=10, what="the first message")

    paused_until = pause_redis(PAUSE_MS)
    t0 = time.perf_counter()
    protocol.send(channel, {"type": "t.m", "n": 1})
    protocol.group_send(protocol.run_group(1), {"type": "t.m"})  # no one listens
    protocol.send(channel, {"type": "t.m", "n": 2})
    returned = time.perf_counter()
    assert returned - t0 < PAUSE_MS / 1000 / 2, (
        f"the sends took {returned - t0:.2f} s: the caller waited for Redis"
    )
    messages = receiving.result(timeout=30)
    assert [m["n"] for m in messages] == [0, 1, 2]
    assert time.perf_counter() >= paused_until - 0.05


_got: list[dict[str, Any]] = []


async def _receive_all(
    layer: RedisPubSubChannelLayer, channel: str, count: int
) -> list[dict[str, Any]]:
    _got.clear()
    while len(_got) < count:
        _got.append(await asyncio.wait_for(layer.receive(channel), 20))
    return list(_got)
