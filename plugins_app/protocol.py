"""Group names, channel-layer message shapes, and how a message gets delivered.

Everything that travels over the channel layer is named here. Delivery works from
any process: with Redis it goes straight to the layer; with the in-memory layer it
goes to the ASGI process's event loop when this *is* the ASGI process, and
through the database outbox (`wire/outbox.py`) when it is not (Celery, the CLI).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypedDict, TypeVar

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)
T = TypeVar("T")

# Message types are the `type` literals below; Channels maps "job.dispatch" to
# the consumer handler `job_dispatch`.


class JobDispatch(TypedDict):
    type: Literal["job.dispatch"]
    job: dict[str, Any]


class RunChanged(TypedDict):
    """Something of a run changed (log lines, status, progress). Watchers read
    what is new since their own cursor and render it, so a run nobody watches
    costs no rendering at all."""

    type: Literal["run.changed"]
    run_id: int


def connector_channel(plugin_id: int) -> str:
    """The PluginInstance name of a plugin's REST connector. Not a channel-layer
    channel: its jobs go out over HTTP from Celery (runs/connector.py), so the
    leases, attempts and deadlines are the same rows as for sockets."""
    return f"{CONNECTOR_PREFIX}{plugin_id}"


CONNECTOR_PREFIX = "rest-connector!"


def run_group(run_id: int) -> str:
    return f"run-{run_id}"


def job_dispatch(job: dict[str, Any]) -> JobDispatch:
    return {"type": "job.dispatch", "job": job}


def run_changed(run_id: int) -> RunChanged:
    return {"type": "run.changed", "run_id": run_id}


# --- delivery -------------------------------------------------------------------
_asgi_loop: asyncio.AbstractEventLoop | None = None


def mark_asgi_process(loop: asyncio.AbstractEventLoop | None) -> None:
    """Called by the ASGI lifespan: this process owns the in-memory layer."""
    global _asgi_loop
    _asgi_loop = loop


Delivery = tuple[str, str, dict[str, Any]]  # (layer method, target, message)


def send(channel_name: str, message: dict[str, Any]) -> None:
    deliver_many([("send", channel_name, message)])


def group_send(group: str, message: dict[str, Any]) -> None:
    deliver_many([("group_send", group, message)])


async def deliver_async(method: str, target: str, message: dict[str, Any]) -> None:
    await getattr(get_channel_layer(), method)(target, message)


async def _deliver_all(deliveries: Sequence[Delivery]) -> None:
    for method, target, message in deliveries:
        await deliver_async(method, target, message)


def deliver_many(deliveries: Sequence[Delivery]) -> None:
    """Send messages in order, in one hop to an event loop however many."""
    if not deliveries:
        return
    if not settings.CHANNEL_LAYER_IS_PROCESS_LOCAL:
        if _asgi_loop is None:
            # Celery, the CLI: a loop of our own that lives on, so the Redis
            # layer keeps its connection (async_to_sync here would make a new
            # loop, hence a new connection, for every call).
            future = asyncio.run_coroutine_threadsafe(
                _deliver_all(deliveries), _sender_loop()
            )
            future.result(timeout=30)
        else:
            async_to_sync(_deliver_all)(deliveries)
        return
    loop = _asgi_loop
    if loop is None or not loop.is_running():
        from plugins_app.wire.outbox import outbox_put_many

        outbox_put_many(deliveries)
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    coro = _deliver_all(deliveries)
    if running is loop:
        loop.create_task(coro)
    else:
        # A worker thread of the ASGI process (sync view, sync_to_async): hand the
        # send to the loop that owns the in-memory layer's queues. No waiting: the
        # loop runs sends in the order they were handed over.
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        future.add_done_callback(_log_failure)


def run_later(delay: float, fn: Callable[..., Any], *args: Any) -> bool:
    """Call the synchronous `fn(*args)` in a worker thread of this ASGI process
    `delay` seconds from now; False when this is not the ASGI process (the
    caller then uses Celery). For waits far below a Celery round trip."""
    loop = _asgi_loop
    if loop is None or not loop.is_running():
        return False

    def in_thread() -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("delayed %s failed", getattr(fn, "__name__", fn))
        finally:
            # This pool thread lives as long as the process: keep its connection
            # for CONN_MAX_AGE (reopening it cost ~4 ms a run), unless it broke.
            connection.close_if_unusable_or_obsolete()

    def start() -> None:
        loop.call_later(delay, lambda: loop.run_in_executor(None, in_thread))

    loop.call_soon_threadsafe(start)
    return True


async def in_pool(fn: Callable[..., T], *args: Any) -> T:
    """`await` the synchronous database work `fn(*args)` from an async view.

    In the ASGI server, on a pool thread of the process (`run_later`'s): it
    lives as long as the process and keeps its connection (CONN_MAX_AGE).
    Django's own hop (sync_to_async) would run it on a thread made for the
    request, which opens a connection and closes it at the end: ~1 ms of CPU
    per request on SQLite, more on PostgreSQL. Anywhere else (the test client,
    a management command) the way Django does it, on the caller's thread and
    its connection, so a test's transaction sees the work."""
    loop = asyncio.get_running_loop()
    if loop is not _asgi_loop:
        return await sync_to_async(fn)(*args)

    def on_pool_thread() -> T:
        try:
            return fn(*args)
        finally:
            connection.close_if_unusable_or_obsolete()

    return await loop.run_in_executor(None, on_pool_thread)


_sender: tuple[int, asyncio.AbstractEventLoop] | None = None
_sender_lock = threading.Lock()


def _sender_loop() -> asyncio.AbstractEventLoop:
    """This process's sending loop, in a daemon thread; started on first use
    (and again in a forked child, which inherits no threads)."""
    global _sender
    with _sender_lock:
        if _sender is None or _sender[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(
                target=loop.run_forever, name="channel-layer-sender", daemon=True
            ).start()
            _sender = (os.getpid(), loop)
        return _sender[1]


def _log_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("channel layer send failed", exc_info=future.exception())
