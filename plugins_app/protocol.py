"""Group names, channel-layer message shapes, and the calls that deliver them.

Everything that travels over the channel layer is named here. How it leaves
this process is the sender chosen at start-up (`wire/senders.py`): handed to
the ASGI process's loop there, written to the outbox or sent on a private loop
elsewhere; only once the caller's transaction commits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypedDict, TypeVar

from asgiref.sync import sync_to_async
from django.db import connection

from plugins_app.wire import senders
from plugins_app.wire.senders import Delivery as Delivery  # re-exported for callers

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


class DashboardChanged(TypedDict):
    """What a plugin's dashboard shows changed (an item or run ended, an
    instance came or went). Watchers re-read the figures themselves, at most
    once per DASHBOARD_WAKE_SECONDS, and senders send at most that often."""

    type: Literal["dashboard.changed"]
    plugin_id: int


DASHBOARD_WAKE_SECONDS = 1.0


def dashboard_group(plugin_id: int) -> str:
    return f"dashboard-{plugin_id}"


def dashboard_changed(plugin_id: int) -> DashboardChanged:
    return {"type": "dashboard.changed", "plugin_id": plugin_id}


def job_dispatch(job: dict[str, Any]) -> JobDispatch:
    return {"type": "job.dispatch", "job": job}


def run_changed(run_id: int) -> RunChanged:
    return {"type": "run.changed", "run_id": run_id}


# --- delivery -------------------------------------------------------------------
_asgi_loop: asyncio.AbstractEventLoop | None = None


def mark_asgi_process(loop: asyncio.AbstractEventLoop | None) -> None:
    """Called by the ASGI lifespan with its running loop (None at shutdown):
    `run_later` and `in_pool` use it, and it carries this process's channel
    messages (`senders.choose`)."""
    global _asgi_loop
    _asgi_loop = loop
    senders.choose(loop)


def send(channel_name: str, message: dict[str, Any]) -> None:
    deliver_many([("send", channel_name, message)])


def group_send(group: str, message: dict[str, Any]) -> None:
    deliver_many([("group_send", group, message)])


def deliver_many(deliveries: Sequence[Delivery]) -> None:
    """Send messages in order, once the caller's transaction (if any) commits."""
    senders.current().send_many(deliveries)


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
