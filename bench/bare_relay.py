"""The bare relay baseline: a plain python-socketio AsyncServer (ASGI) that relays
jobs to imerit-ango plugins with no persistence at all. It speaks what the hub
speaks on namespace /plugin: waits for `heartbeat`, emits `plugin` jobs, takes
`response` and `log` events.

Run it (from the .venv-sdk14 interpreter, which has python-socketio 5.18.1):

    .venv-sdk14/bin/python -m uvicorn --app-dir bench bare_relay:app --port P

HTTP endpoints for the benchmark driver (127.0.0.1 only):
    POST /job       body {"config": {...}} (optional): emit one job to the least
                    loaded plugin, answer when its `response` arrives
    GET  /plugins   {"live": <sockets that sent a heartbeat>}
    GET  /logs?session=S   log events of a session: [[send time, receive time]]
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import socketio

NAMESPACE = "/plugin"
JOB_TIMEOUT_SECONDS = 60.0
MAX_BODY_BYTES = 1_000_000
_SEND_TIME = re.compile(r"t=([0-9.]+)")

sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")
live: dict[str, int] = {}  # plugin socket sid -> jobs in flight
pending: dict[str, asyncio.Future[Any]] = {}  # session -> response
log_times: dict[str, list[tuple[float, float]]] = {}  # session -> (sent, received)


@sio.on("heartbeat", namespace=NAMESPACE)
async def on_heartbeat(sid: str, data: Any) -> None:
    live.setdefault(sid, 0)


@sio.on("disconnect", namespace=NAMESPACE)
async def on_disconnect(sid: str, *args: Any) -> None:
    live.pop(sid, None)


@sio.on("response", namespace=NAMESPACE)
async def on_response(sid: str, data: Any) -> None:
    session = data.get("session") if isinstance(data, dict) else None
    future = pending.pop(session, None) if isinstance(session, str) else None
    if future is not None and not future.done():
        future.set_result(data)
    if sid in live:
        live[sid] = max(0, live[sid] - 1)


@sio.on("log", namespace=NAMESPACE)
async def on_log(sid: str, data: Any) -> None:
    now = time.time()
    if not isinstance(data, dict) or not isinstance(data.get("session"), str):
        return
    match = _SEND_TIME.match(str(data.get("msg", "")))
    if match:
        log_times.setdefault(data["session"], []).append((float(match.group(1)), now))


def _job(session: str, config: dict[str, Any]) -> dict[str, Any]:
    """The same fields (and about the same size) as the hub's Model job."""
    return {
        "session": session,
        "projectId": "1",
        "apiKey": uuid.uuid4().hex + uuid.uuid4().hex,
        "orgId": "1",
        "runBy": "admin",
        "configJSON": json.dumps(config),
        "categorySchema": [{"schemaId": "face-box", "modelClass": "face"}],
        "batches": [],
        "pluginId": "bare",
        "assetId": "1",
        "externalId": "astronaut",
        "dataURL": "/v2/files/asset/MQ:1sAbCd:abcdefghijklmnopqrstuvwxyz0123456789/",
        "taskId": "1",
        "overwrite": True,
    }


async def relay_job(config: dict[str, Any]) -> dict[str, Any]:
    if not live:
        return {"error": "no plugin connected"}
    sid = min(live, key=lambda s: live[s])
    live[sid] += 1
    session = uuid.uuid4().hex
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    pending[session] = future
    await sio.emit("plugin", _job(session, config), to=sid, namespace=NAMESPACE)
    try:
        await asyncio.wait_for(future, JOB_TIMEOUT_SECONDS)
    except TimeoutError:
        pending.pop(session, None)
        return {"error": "timeout", "session": session}
    return {"session": session}


Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


async def http_app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while len(body) <= MAX_BODY_BYTES:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path, method = scope["path"], scope["method"]
    if method == "POST" and path == "/job":
        config = json.loads(body or b"{}").get("config") or {}
        result = await relay_job(config)
    elif method == "GET" and path == "/plugins":
        result = {"live": len(live)}
    elif method == "GET" and path == "/logs":
        query = parse_qs(scope.get("query_string", b"").decode())
        session = (query.get("session") or [""])[0]
        result = {"lines": log_times.pop(session, [])}
    else:
        result = {"error": "not found"}
    payload = json.dumps(result).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 404 if result.get("error") == "not found" else 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


app = socketio.ASGIApp(sio, other_asgi_app=http_app)
