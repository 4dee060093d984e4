"""One sender per process (plugins_app/wire/senders.py), embedded mode: which
sender each process kind chose, order per caller, and nothing delivered from a
transaction that rolled back. The production side (Redis) is in
test_delivery_production.py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.db import transaction

from plugins_app import protocol
from plugins_app.wire import senders
from plugins_app.wire.models import OutboxMessage
from tests.hub import LiveHub, PluginProcess, wait_for


def on_hub_loop(coro: Any, timeout: float = 5) -> Any:
    """Run a coroutine on the live hub's loop: the in-memory layer's queues
    belong to it."""
    loop = protocol._asgi_loop
    assert loop is not None, "no ASGI process here"
    return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)


def received(channel: str, wait: float = 0.5) -> list[dict[str, Any]]:
    """Every message waiting on `channel`, the last one awaited for `wait` s."""
    layer = get_channel_layer()

    async def drain() -> list[dict[str, Any]]:
        got = []
        while True:
            try:
                got.append(await asyncio.wait_for(layer.receive(channel), wait))
            except TimeoutError:
                return got

    return on_hub_loop(drain(), timeout=60)


@pytest.fixture
def fresh_choice() -> Iterator[None]:
    """A test that chooses puts back what the process had chosen."""
    before = senders._chosen
    yield
    senders._chosen = before


# --- the choice per process kind --------------------------------------------------
def test_it_sends_through_the_loop_in_the_asgi_process(live_hub: LiveHub) -> None:
    sender = senders.current()
    assert isinstance(sender, senders.LoopSender)
    assert sender.loop is protocol._asgi_loop
    live_hub.stop()
    # The lifespan's shutdown: this process is no longer the ASGI one.
    assert isinstance(senders.current(), senders.OutboxSender)


def test_it_sends_through_the_outbox_in_an_embedded_celery_worker(
    celery_worker: PluginProcess,
) -> None:
    wait_for(
        lambda: "through OutboxSender" in celery_worker.log(),
        timeout=30,
        what="the worker to choose its sender",
    )


def test_a_process_that_never_chose_gets_the_safe_default(
    fresh_choice: None, settings: Any
) -> None:
    senders._chosen = None
    assert isinstance(senders.current(), senders.OutboxSender)
    senders._chosen = None
    settings.CHANNEL_LAYER_IS_PROCESS_LOCAL = False
    assert isinstance(senders.current(), senders.RedisSender)
    # With a loop, whatever the layer: the ASGI process never waits on a send.
    loop = asyncio.new_event_loop()
    try:
        chosen = senders.choose(loop)
        assert isinstance(chosen, senders.LoopSender)
        assert isinstance(chosen.fallback, senders.RedisSender)
    finally:
        loop.close()


# --- what every sender promises ---------------------------------------------------
def test_a_message_sent_in_a_rolled_back_transaction_never_arrives(
    live_hub: LiveHub,
) -> None:
    channel = "test-delivery!rollback"
    with pytest.raises(RuntimeError), transaction.atomic():
        protocol.send(channel, {"type": "t.m", "n": 1})
        raise RuntimeError("roll back")
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():  # a savepoint
            protocol.send(channel, {"type": "t.m", "n": 2})
            raise RuntimeError("roll back the savepoint")
        protocol.send(channel, {"type": "t.m", "n": 3})
        assert received(channel, wait=0.3) == [], "sent before the commit"
    assert [m["n"] for m in received(channel)] == [3]


def test_the_outbox_rows_roll_back_with_the_caller(
    transactional_db: Any, fresh_choice: None
) -> None:
    senders.choose(None)  # a Celery worker's or the CLI's sender
    with pytest.raises(RuntimeError), transaction.atomic():
        protocol.send("test-delivery!outbox", {"type": "t.m"})
        assert OutboxMessage.objects.count() == 1
        raise RuntimeError("roll back")
    assert OutboxMessage.objects.count() == 0
    protocol.send("test-delivery!outbox", {"type": "t.m"})
    assert OutboxMessage.objects.count() == 1


def test_messages_arrive_in_the_order_each_caller_sent_them(
    live_hub: LiveHub,
) -> None:
    # Four threads (as the database thread, run_later's pool and request
    # threads are), each sending one message at a time and some in batches;
    # and one causal chain across two of them.
    channel = "test-delivery!order"

    def caller(name: str) -> None:
        for n in range(50):
            protocol.send(channel, {"type": "t.m", "who": name, "n": 2 * n})
            protocol.deliver_many(
                [("send", channel, {"type": "t.m", "who": name, "n": 2 * n + 1})]
            )

    threads = [threading.Thread(target=caller, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first_sent = threading.Event()

    def first() -> None:
        protocol.send(channel, {"type": "t.m", "who": "chain", "n": 0})
        first_sent.set()

    def second() -> None:
        first_sent.wait(5)
        protocol.send(channel, {"type": "t.m", "who": "chain", "n": 1})

    chain = [threading.Thread(target=second), threading.Thread(target=first)]
    for thread in chain:
        thread.start()
    for thread in chain:
        thread.join()

    messages = received(channel)
    by_caller: dict[str, list[int]] = {}
    for message in messages:
        by_caller.setdefault(message["who"], []).append(message["n"])
    assert by_caller.pop("chain") == [0, 1]
    assert by_caller == {f"t{i}": list(range(100)) for i in range(4)}


def test_a_failed_send_is_logged_and_the_next_one_still_goes(
    live_hub: LiveHub, caplog: Any
) -> None:
    channel = "test-delivery!after-failure"
    # The in-memory layer refuses a message that is not a dict.
    protocol.deliver_many(
        [("send", channel, "not a message"), ("send", channel, {"type": "t.m"})]  # type: ignore[list-item]
    )
    assert [m["type"] for m in received(channel)] == ["t.m"]
    assert "channel layer send to test-delivery!after-failure failed" in caplog.text
