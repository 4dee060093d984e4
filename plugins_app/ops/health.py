"""`GET /healthz`: can this process reach what it needs to serve plugins?

Each check reports ok, its latency and the error text; any failure makes the
answer 503 so a load balancer or orchestrator takes the process out.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

TIMEOUT_SECONDS = 2.0
Check = dict[str, Any]


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": _timed(_check_database),
        "channel_layer": _timed(_check_channel_layer),
        "broker": _timed(_check_broker),
    }
    ok = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if ok else "fail", "checks": checks},
        status=200 if ok else 503,
    )


def _timed(check: Callable[[], Check | None]) -> Check:
    """Run a check: it returns extra fields or raises; either way it is timed."""
    started = time.perf_counter()
    try:
        extra = check() or {}
        result: Check = {"ok": True, "error": None, **extra}
    except Exception as exc:
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return result


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_channel_layer() -> Check | None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    if isinstance(layer, InMemoryChannelLayer):
        # It lives in this process: nothing to reach, and a probe from a worker
        # thread would not prove the ASGI loop is serving it.
        return {"mode": "in-process"}
    async_to_sync(_round_trip)(layer)
    return {"mode": "redis"}


async def _round_trip(layer: Any) -> None:
    channel = await layer.new_channel()
    token = uuid.uuid4().hex
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            await layer.send(channel, {"type": "health.ping", "token": token})
            message = await layer.receive(channel)
    finally:
        await _forget(layer, channel)
    if message.get("token") != token:
        raise RuntimeError("the channel layer returned another message")


async def _forget(layer: Any, channel: str) -> None:
    # The pub/sub layer unsubscribes a channel only when a receive on it is
    # cancelled (how consumers leave); without this every probe would leave a
    # subscription behind in a long-running process.
    waiter = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0)
    waiter.cancel()
    # Only the unsubscribe matters; the waiter ends cancelled (or failed).
    await asyncio.gather(waiter, return_exceptions=True)


def _check_broker() -> Check | None:
    url: str = settings.CELERY_BROKER_URL
    scheme = url.split("://", 1)[0]
    if scheme == "filesystem":
        return _check_broker_folders()
    if scheme in ("redis", "rediss"):
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=TIMEOUT_SECONDS,
            socket_timeout=TIMEOUT_SECONDS,
        )
        try:
            client.ping()
        finally:
            client.close()
        return {"mode": "redis"}
    raise RuntimeError(f"no health check for broker scheme {scheme!r}")


def _check_broker_folders() -> Check:
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    folders = sorted(
        {
            options[name]
            for name in (
                "data_folder_in",
                "data_folder_out",
                "processed_folder",
                "control_folder",
            )
            if options.get(name)
        }
    )
    if not folders:
        raise RuntimeError("the filesystem broker has no folders configured")
    for folder in folders:
        if not os.path.isdir(folder):
            raise RuntimeError(f"broker folder {folder} is missing")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise RuntimeError(f"broker folder {folder} is not writable")
    return {"mode": "filesystem"}
