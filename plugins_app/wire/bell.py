"""A wake-up call for the outbox drain (embedded mode), across processes.

Celery workers and the CLI write their channel messages to the outbox table;
the ASGI process's drain delivers them. Instead of reading the table 20 times a
second on the database thread, the drain waits on a UDP socket on 127.0.0.1
(its port in VAR_DIR/outbox-bell.port) and whoever writes outbox rows rings it
once they are committed. The bell carries nothing and may be lost (no listener
yet, a full socket buffer): the rows are in the database already, and the drain
still reads the table every HUB_OUTBOX_POLL_SECONDS whatever happens."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from django.conf import settings
from django.db import transaction

LOCALHOST = "127.0.0.1"


def _port_file() -> Path:
    return settings.VAR_DIR / "outbox-bell.port"


class _Bell(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.rung = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.rung.set()


async def bell_listen() -> tuple[asyncio.BaseTransport, asyncio.Event]:
    """Open the bell for this ASGI process; returns its transport (to close)
    and the event that a ring sets."""
    loop = asyncio.get_running_loop()
    transport, bell = await loop.create_datagram_endpoint(
        _Bell, local_addr=(LOCALHOST, 0)
    )
    port = transport.get_extra_info("sockname")[1]
    path = _port_file()
    part = f"{os.fspath(path)}.{os.getpid()}"
    with open(part, "w") as out:
        out.write(str(port))
    os.replace(part, path)  # readers see the old port or the new one, whole
    return transport, bell.rung


def bell_ring_after_commit() -> None:
    """Ring once the current transaction (if any) commits: rung earlier, the
    drain would look before the rows are there."""
    transaction.on_commit(_ring)


def _ring() -> None:
    try:
        with open(_port_file()) as f:
            port = int(f.read())
    except (OSError, ValueError):
        return  # no ASGI process yet: its drain reads the outbox when it starts
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(b"\x01", (LOCALHOST, port))
        except OSError:
            pass  # the poll picks the rows up
