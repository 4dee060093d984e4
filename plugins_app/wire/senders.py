"""How this process's channel-layer messages leave it: one sender, chosen once.

Three processes send messages (jobs to plugin sockets, pings to run watchers)
and each has one right way to do it, chosen at start-up by `choose`:

| process                    | in-memory layer (embedded) | Redis layer (production) |
|----------------------------|----------------------------|--------------------------|
| ASGI (lifespan)            | `LoopSender`               | `LoopSender`             |
| Celery worker, CLI, others | `OutboxSender`             | `RedisSender`            |

A process that never chose (a management command, a script) gets the second
row the first time it sends, so nothing is lost. Every sender delivers a
batch in order, and only once the caller's transaction (if any) commits: the
outbox's rows are part of that transaction; the others wait for its commit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)

Delivery = tuple[str, str, dict[str, Any]]  # (layer method, target, message)


async def deliver_async(method: str, target: str, message: dict[str, Any]) -> None:
    await getattr(get_channel_layer(), method)(target, message)


class Sender:
    """A channel layer's `send`/`group_send`, many at a time, after commit."""

    def send_many(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        batch = list(deliveries)
        if transaction.get_connection().in_atomic_block:
            # Sent now, a rolled-back transaction's message would still go out
            # (and a job could reach a plugin before its lease is visible).
            transaction.on_commit(lambda: self.send_now(batch))
        else:
            self.send_now(batch)

    def send_now(self, batch: list[Delivery]) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return type(self).__name__


class LoopSender(Sender):
    """The ASGI process: hand the batch to the event loop and return at once.

    The caller is usually the database thread (an answer, a log batch, a
    dispatch); with Redis it used to wait there for Redis to answer. Batches
    join one queue on the loop, drained by one task, so messages leave in the
    order they were handed over, whichever thread handed them. A send that
    fails is logged and the next one goes on (the database holds the state; a
    lost job's lease runs out and the sweep requeues it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fallback: Sender) -> None:
        self.loop = loop
        self.fallback = fallback  # once the loop has stopped (shutdown)
        self._queue: deque[Delivery] = deque()  # touched on the loop only
        self._drain: asyncio.Task[None] | None = None

    def send_now(self, batch: list[Delivery]) -> None:
        if not self.loop.is_running():
            self.fallback.send_now(batch)
            return
        try:
            self.loop.call_soon_threadsafe(self._enqueue, batch)
        except RuntimeError:  # closed between the check and the call
            self.fallback.send_now(batch)

    def _enqueue(self, batch: list[Delivery]) -> None:
        self._queue.extend(batch)
        if self._drain is None:
            self._drain = self.loop.create_task(self._drain_queue())

    async def _drain_queue(self) -> None:
        try:
            while self._queue:
                method, target, message = self._queue.popleft()
                try:
                    await deliver_async(method, target, message)
                except Exception:
                    log.exception("channel layer %s to %s failed", method, target)
        finally:
            self._drain = None

    async def flush(self, timeout: float) -> None:
        """At shutdown (on the loop): let what was handed over go out first."""
        drain = self._drain
        if drain is not None:
            await asyncio.wait([drain], timeout=timeout)


class RedisSender(Sender):
    """Celery and the CLI in production: send on a loop of this process's own
    that lives on, so the Redis layer keeps its connection (async_to_sync here
    would make a new loop, hence a new connection, for every call). Waits for
    Redis: these processes have no loop to hand over to, and the CLI must not
    exit before its jobs have gone out."""

    TIMEOUT = 30.0

    def send_now(self, batch: list[Delivery]) -> None:
        future = asyncio.run_coroutine_threadsafe(_deliver_all(batch), _private_loop())
        future.result(timeout=self.TIMEOUT)


class OutboxSender(Sender):
    """Celery and the CLI in embedded mode: the in-memory layer lives in the
    ASGI process, so the messages become outbox rows in the caller's own
    transaction (durable with it: a restart of the ASGI process delivers them),
    and the bell wakes that process's drain once they commit."""

    def send_many(self, deliveries: Sequence[Delivery]) -> None:
        if deliveries:
            self.send_now(list(deliveries))

    def send_now(self, batch: list[Delivery]) -> None:
        # Imported here: the outbox is a model, and Celery may choose its sender
        # before the app registry is ready.
        from plugins_app.wire.outbox import outbox_put_many

        outbox_put_many(batch)


# --- the choice -------------------------------------------------------------------
_chosen: Sender | None = None
_choice_lock = threading.Lock()


def choose(asgi_loop: asyncio.AbstractEventLoop | None) -> Sender:
    """Called once at start-up: the ASGI lifespan passes its running loop,
    Celery's worker init passes None (and so, lazily, does anything else)."""
    global _chosen
    _chosen = _for_process(asgi_loop)
    log.info("channel messages go out through %r (pid %d)", _chosen, os.getpid())
    return _chosen


async def flush(timeout: float = 5.0) -> None:
    """The ASGI lifespan's shutdown: the messages still queued on its loop."""
    if isinstance(_chosen, LoopSender):
        await _chosen.flush(timeout)


def current() -> Sender:
    sender = _chosen
    if sender is None:
        sender = _chosen_default()
    return sender


def _for_process(asgi_loop: asyncio.AbstractEventLoop | None) -> Sender:
    elsewhere: Sender = (
        OutboxSender() if settings.CHANNEL_LAYER_IS_PROCESS_LOCAL else RedisSender()
    )
    if asgi_loop is None:
        return elsewhere
    return LoopSender(asgi_loop, fallback=elsewhere)


def _chosen_default() -> Sender:
    global _chosen
    with _choice_lock:
        if _chosen is None:
            _chosen = _for_process(None)
        return _chosen


# --- RedisSender's loop -----------------------------------------------------------
_private: tuple[int, asyncio.AbstractEventLoop] | None = None
_private_lock = threading.Lock()


def _private_loop() -> asyncio.AbstractEventLoop:
    """This process's sending loop, in a daemon thread; started on first use
    (and again in a forked child, which inherits no threads)."""
    global _private
    with _private_lock:
        if _private is None or _private[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(
                target=loop.run_forever, name="channel-layer-sender", daemon=True
            ).start()
            _private = (os.getpid(), loop)
        return _private[1]


async def _deliver_all(batch: list[Delivery]) -> None:
    for method, target, message in batch:
        await deliver_async(method, target, message)
