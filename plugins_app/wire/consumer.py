"""The plugin socket: Engine.IO 4 / Socket.IO 5 on namespace `/plugin`, spoken as
the `imerit-ango` client expects (see docs in ango-plugin-protocol.md §1, §7, §8).

The consumer only translates frames; run state changes go through
`plugins_app.runs`. Rules the client imposes:
- never close a socket to reject it (the SDK reconnects in a loop, then exits);
- ack the namespace CONNECT at once, before any database work;
- send Engine.IO pings every pingInterval (the client's writer dies otherwise).
The one exception: a socket that has not authenticated within
`HUB_SOCKET_AUTH_SECONDS`, or sent more than `HUB_SOCKET_PREAUTH_FRAMES` frames
before it did, is closed. The SDK sends its heartbeat right after the namespace
CONNECT, so only scripts with a wrong id or secret (which reconnect and are
closed again) and sockets that are not plugins at all ever meet this bound.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
import weakref
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import close_old_connections
from uvicorn.protocols.utils import ClientDisconnected

from plugins_app.inputs import parse_id
from plugins_app.plugins.versions import declared_in_query
from plugins_app.protocol import JobDispatch
from plugins_app.runs import instances, logs, responses
from plugins_app.wire import codec

log = logging.getLogger(__name__)

NAMESPACE = "/plugin"
LOG_FLUSH_SECONDS = 0.05
LOG_FLUSH_LINES = 500
_SESSION_RE = re.compile(r'"session"\s*:\s*"([0-9a-f]{1,64})"')
# An oversized frame is never parsed: its sessions are found by one regex pass
# (linear, in C), wherever the SDK put the key: first (1.4.x builds the dict
# with it), last (1.3.22), or between two huge values.
_MAX_SESSIONS_TRIED = 8


def _frame_sessions(text: str) -> list[str]:
    found: list[str] = []
    for match in _SESSION_RE.finditer(text):
        if match.group(1) not in found:
            found.append(match.group(1))
            if len(found) == _MAX_SESSIONS_TRIED:
                break
    return found


class PluginSocketConsumer(AsyncWebsocketConsumer):
    # Channels hands this consumer one message at a time: while it handles one (a
    # large response, a slow database), a pong waits unread behind it. `dispatch`
    # counts that time so the pong deadline only counts time it was free to read.
    busy_since: float | None = None
    busy_seconds = 0.0
    closing = False
    # Set while the socket has not authenticated (_arm_auth_deadline).
    auth_task: asyncio.Task[None] | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        self.busy_since = time.monotonic()
        try:
            # Not super().dispatch: it hops to the database thread before every
            # message to close stale connections, which queued each log frame
            # behind other sockets' database work.
            handler = getattr(self, get_handler_name(message), None)
            if handler is None:
                raise ValueError(f"No handler for message type {message['type']}")
            await handler(message)
        finally:
            self.busy_seconds += time.monotonic() - self.busy_since
            self.busy_since = None

    def _busy(self) -> float:
        running = 0.0 if self.busy_since is None else time.monotonic() - self.busy_since
        return self.busy_seconds + running

    async def connect(self) -> None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        if query.get("EIO") != ["4"] or query.get("transport") != ["websocket"]:
            # Not the python-socketio websocket client: refuse the handshake.
            await self.close()
            return
        self.authenticated = False
        self.preauth_frames = 0
        self.heartbeat_in_flight = False
        self.capacity = _declared_capacity(query)
        self.version = declared_in_query(query)
        self.last_pong = time.monotonic()
        self.log_buffer: list[logs.PluginLogRecord] = []
        self.flush_task: asyncio.Task[None] | None = None
        self.flushes: set[asyncio.Task[None]] = set()
        self.address = _client_address(self.scope)
        await self.accept()
        await self.send(
            codec.encode_open(
                secrets.token_hex(10),
                ping_interval_ms=settings.HUB_PING_INTERVAL_MS,
                ping_timeout_ms=settings.HUB_PING_TIMEOUT_MS,
                max_payload=settings.HUB_MAX_FRAME_BYTES,
            )
        )
        self.ping_task = asyncio.create_task(self._ping_forever())
        self._arm_auth_deadline()

    async def disconnect(self, code: int) -> None:
        self.closing = True
        if hasattr(self, "ping_task"):
            self.ping_task.cancel()
        if auth_task := getattr(self, "auth_task", None):
            auth_task.cancel()
        if getattr(self, "authenticated", False):
            await self._flush_logs()
            await sync_to_async(instances.instance_disconnect)(
                channel_name=self.channel_name
            )

    # --- frames from the plugin -------------------------------------------------
    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        if not self.authenticated:
            # Whatever it is (garbage, pongs, events): a socket that has not
            # authenticated gets a small budget of frames (the SDK needs two).
            self.preauth_frames += 1
            if self.preauth_frames > settings.HUB_SOCKET_PREAUTH_FRAMES:
                await self._close_unauthenticated(
                    f"more than {settings.HUB_SOCKET_PREAUTH_FRAMES} frames"
                )
                return
        if text_data is None:
            log.warning("binary frame from %s ignored", self.address)
            return
        if len(text_data) > settings.HUB_MAX_FRAME_BYTES:
            await self._refuse_oversized(text_data)
            return
        try:
            kind, payload = codec.decode_eio(text_data)
            if kind == codec.EIO_PONG:
                self.last_pong = time.monotonic()
                await self._renew_leases()
            elif kind == codec.EIO_MESSAGE:
                await self._receive_sio(codec.decode_sio(payload))
        except codec.FrameError as exc:
            log.warning("garbage frame from %s ignored: %s", self.address, exc)
        except ClientDisconnected:
            # The plugin went away while its frame was answered (a Ctrl-C in
            # its terminal): routine, and the disconnect handler requeues.
            log.info("%s disconnected while its frame was answered", self.address)
        except Exception:
            # An escaping exception would end the consumer and close the socket,
            # and the SDK answers a close with a reconnect loop, then an exit.
            log.exception("frame from %s failed; socket kept open", self.address)

    async def _receive_sio(self, packet: codec.SioPacket) -> None:
        if packet.namespace != NAMESPACE:
            return
        if packet.type == codec.SIO_CONNECT:
            await self.send(
                codec.encode_connect_ack(NAMESPACE, self.channel_name[-20:])
            )
            return
        if packet.type != codec.SIO_EVENT:
            return
        event, args = codec.event_args(packet)
        data = args[0] if args else None
        if event == "heartbeat":
            await self._on_heartbeat(data)
        elif not self.authenticated:
            log.info("%r event from unauthenticated %s ignored", event, self.address)
        elif event == "log":
            self._on_log(data)
        elif event == "response":
            await self._on_response(data)
        if packet.ack_id is not None:
            await self.send(codec.encode_ack(NAMESPACE, packet.ack_id))

    async def _renew_leases(self) -> None:
        # A pong keeps the instance live and its leases held; silence lets the
        # sweep hand its jobs to others. Saved in the background with the pongs
        # of every other socket of this process: reading the socket never waits
        # for the database, and hundreds of idle instances cost one flush.
        if self.authenticated:
            _seen_batch().add(self.channel_name)

    async def _on_heartbeat(self, data: Any) -> None:
        data = data if isinstance(data, dict) else {}
        self.heartbeat_in_flight = True
        try:
            instance = await sync_to_async(instances.instance_heartbeat)(
                channel_name=self.channel_name,
                plugin_public_id=data.get("id"),
                secret=data.get("secret"),
                address=self.address,
                capacity=self.capacity,
                # A `version` in the heartbeat (a script overriding heartbeat())
                # wins over HOST's `?version=`.
                version=data.get("version", self.version),
            )
        finally:
            self.heartbeat_in_flight = False
        if instance is None and self.authenticated:
            # Secret rotated under a connected script: stop giving it work, and
            # give it the same bound as a socket that never authenticated.
            await sync_to_async(instances.instance_disconnect)(
                channel_name=self.channel_name
            )
            self.preauth_frames = 0
            self._arm_auth_deadline()
        elif instance is not None and self.auth_task is not None:
            self.auth_task.cancel()
            self.auth_task = None
        self.authenticated = instance is not None

    def _arm_auth_deadline(self) -> None:
        self.auth_task = asyncio.create_task(self._close_unless_authenticated())

    async def _close_unless_authenticated(self) -> None:
        # One task per socket only while it is unauthenticated: cancelled by
        # the first valid heartbeat, so idle live plugins carry none.
        await asyncio.sleep(settings.HUB_SOCKET_AUTH_SECONDS)
        while self.heartbeat_in_flight:  # a slow database is not the client's fault
            await asyncio.sleep(0.1)
        if not self.authenticated:
            self.auth_task = None
            await self._close_unauthenticated(
                f"no valid heartbeat within {settings.HUB_SOCKET_AUTH_SECONDS} s"
            )

    async def _close_unauthenticated(self, why: str) -> None:
        if self.closing:
            return
        self.closing = True
        log.info("closing the unauthenticated socket of %s: %s", self.address, why)
        await self.close()

    def _on_log(self, data: Any) -> None:
        record = logs.parse_log_event(data)
        if record is None:
            return
        self.log_buffer.append(record)
        # Batch inserts: one transaction and one push per ~50 ms keeps up with
        # plugins that log thousands of lines a second.
        if len(self.log_buffer) >= LOG_FLUSH_LINES:
            # Held until done: the loop keeps only a weak reference to a task,
            # and a flush collected mid-way would lose its lines.
            flush = asyncio.create_task(self._flush_logs())
            self.flushes.add(flush)
            flush.add_done_callback(self.flushes.discard)
        elif self.flush_task is None:
            self.flush_task = asyncio.create_task(self._flush_logs_later())

    async def _flush_logs_later(self) -> None:
        await asyncio.sleep(LOG_FLUSH_SECONDS)
        self.flush_task = None
        await self._flush_logs()

    async def _flush_logs(self) -> None:
        records, self.log_buffer = self.log_buffer, []
        if not records:
            return
        try:
            dropped = await sync_to_async(logs.logs_ingest)(
                records, channel_name=self.channel_name
            )
        except Exception:
            # Runs in a task or before instance_disconnect: never let it raise.
            log.exception("%d log line(s) from %s lost", len(records), self.address)
            return
        if dropped:
            log.info("%d log line(s) for unknown sessions dropped", dropped)

    async def _on_response(self, data: Any) -> None:
        if not isinstance(data, dict):
            log.warning("response from %s is not an object; ignored", self.address)
            return
        # The last error log explains an {"error": true}: the lines waiting in
        # the buffer are stored first, in the same hop to the database thread
        # as the answer (one hop per answer: each one queues behind every
        # other socket's database work).
        records, self.log_buffer = self.log_buffer, []
        outcome = await _respond_on_db_thread(records, data, self.channel_name)
        # An answer stored is in its run's log already; anything else is news.
        level = logging.DEBUG if outcome == "done" else logging.INFO
        log.log(level, "response from %s: %s", self.address, outcome)

    async def _refuse_oversized(self, text: str) -> None:
        log.warning("frame of %d bytes from %s refused", len(text), self.address)
        if not self.authenticated:
            return
        # Fail the first named session this socket holds (only its own jobs
        # can be failed, whatever the frame names).
        for session in _frame_sessions(text):
            failed = await sync_to_async(responses.item_fail_oversized)(
                session=session, channel_name=self.channel_name, size=len(text)
            )
            if failed:
                return

    # --- messages from the hub ------------------------------------------------
    async def job_dispatch(self, message: JobDispatch) -> None:
        job = dict(message["job"])
        if isinstance(job.get("dataURL"), str) and job["dataURL"].startswith("/"):
            base = getattr(self, "public_base", None)
            if base is None:  # read from the scope once per socket
                base = self.public_base = _public_base(self.scope)
            job["dataURL"] = base + job["dataURL"]
        await self.send(codec.encode_event(NAMESPACE, "plugin", job))

    async def _ping_forever(self) -> None:
        # The server pings in Engine.IO 4; the client only answers. One task per
        # socket (hundreds sit idle) both pings every interval and watches the
        # oldest unanswered ping's deadline. Time spent handling messages after
        # that ping does not count: a pong may be waiting unread behind them.
        interval = settings.HUB_PING_INTERVAL_MS / 1000
        timeout = settings.HUB_PING_TIMEOUT_MS / 1000
        next_ping = time.monotonic() + interval
        unanswered: tuple[float, float] | None = None  # (sent at, busy then)

        def pong_deadline(sent_at: float, busy_then: float) -> float:
            return sent_at + timeout + self._busy() - busy_then

        while True:
            wake = next_ping
            if unanswered is not None:
                wake = min(wake, pong_deadline(*unanswered))
            await asyncio.sleep(max(wake - time.monotonic(), 0.0))
            now = time.monotonic()
            if unanswered is not None:
                if self.last_pong >= unanswered[0]:
                    unanswered = None
                elif self.busy_since is None and now >= pong_deadline(*unanswered):
                    break
                elif next_ping > now:
                    await asyncio.sleep(0.05)  # busy: look again shortly
                    continue
            if now >= next_ping:
                next_ping = now + interval
                try:
                    await self.send(codec.EIO_PING)
                except OSError:  # the client is gone; disconnect() follows
                    return
                if unanswered is None:
                    unanswered = (now, self._busy())
        if self.closing:
            return
        self.closing = True
        log.warning("no pong from %s; closing its socket", self.address)
        await self.close()


def _respond(
    records: list[logs.PluginLogRecord], data: dict[str, Any], channel_name: str
) -> str:
    if records:
        try:
            logs.logs_ingest(records, channel_name=channel_name)
        except Exception:  # the answer still counts
            log.exception("%d log line(s) from %s lost", len(records), channel_name)
    return responses.item_respond(
        session=data.get("session"), payload=data, channel_name=channel_name
    )


# Made once: building a SyncToAsync costs ~16 µs, on every answer otherwise.
_respond_on_db_thread = sync_to_async(_respond)


class _SeenBatch:
    """The sockets of this process that answered a ping since the last flush,
    saved together every fraction of a ping interval (instances.instances_seen)."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.flushing: asyncio.Task[None] | None = None

    def add(self, channel_name: str) -> None:
        self.names.add(channel_name)
        if self.flushing is None:
            self.flushing = asyncio.create_task(self._flush_while_any())

    async def _flush_while_any(self) -> None:
        try:
            while self.names:
                await asyncio.sleep(min(1.0, settings.HUB_PING_INTERVAL_MS / 4000))
                names, self.names = self.names, set()
                try:
                    await _save_seen(names)
                except Exception:  # a locked database must not stop the flushes
                    log.exception(
                        "could not renew the leases of %d socket(s)", len(names)
                    )
        finally:
            self.flushing = None


# Pongs are saved on a thread of their own, never queued behind the answers,
# logs and dispatches on the process's database thread: under load those ran
# seconds behind, the pongs with them, and live instances' leases expired.
_liveness_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="liveness")


@sync_to_async(thread_sensitive=False, executor=_liveness_thread)
def _save_seen(names: set[str]) -> None:
    # No request cycle on this thread closes a connection a database restart broke.
    close_old_connections()
    instances.instances_seen(names)


_seen_batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SeenBatch] = (
    weakref.WeakKeyDictionary()
)


def _seen_batch() -> _SeenBatch:
    loop = asyncio.get_running_loop()
    batch = _seen_batches.get(loop)
    if batch is None:
        batch = _seen_batches[loop] = _SeenBatch()
    return batch


MAX_CAPACITY = 1000


def _declared_capacity(query: dict[str, list[str]]) -> int | None:
    """`?concurrency=N` in the script's HOST (python-socketio keeps HOST's query):
    how many jobs it takes at once. Anything but a positive count is ignored."""
    count = parse_id((query.get("concurrency") or [""])[0])
    return count if count is not None and count <= MAX_CAPACITY else None


def _client_address(scope: Mapping[str, Any]) -> str:
    client = scope.get("client") or ("?", 0)
    return f"{client[0]}:{client[1]}"


def _public_base(scope: Mapping[str, Any]) -> str:
    """Where the plugin reaches the hub: the Host it connected to, unless set."""
    if base := getattr(settings, "HUB_PUBLIC_URL", ""):
        return base.rstrip("/")
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"127.0.0.1").decode("latin-1")
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    return f"{scheme}://{host}"
