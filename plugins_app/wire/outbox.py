"""The database outbox that carries channel-layer messages into the ASGI process
when the layer is in-memory (embedded mode): `senders.OutboxSender` writes it,
the ASGI process drains it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from plugins_app.wire.bell import bell_listen, bell_ring_after_commit
from plugins_app.wire.models import OutboxMessage

if TYPE_CHECKING:  # senders imports this module when it needs the outbox
    from plugins_app.wire.senders import Delivery

log = logging.getLogger(__name__)


def outbox_put_many(deliveries: Sequence[Delivery]) -> None:
    OutboxMessage.objects.bulk_create(
        OutboxMessage(method=method, target=target, message=message)
        for method, target, message in deliveries
    )
    bell_ring_after_commit()


async def deliver_async(method: str, target: str, message: dict[str, Any]) -> None:
    # senders.deliver_async's one line, here: senders imports this module to
    # queue messages, so importing senders back would close an import circle.
    await getattr(get_channel_layer(), method)(target, message)


OUTBOX_BATCH = 500


def _outbox_take(limit: int = OUTBOX_BATCH) -> list[OutboxMessage]:
    rows = list(OutboxMessage.objects.order_by("id")[:limit])
    if rows:
        OutboxMessage.objects.filter(id__in=[r.id for r in rows]).delete()
    return rows


async def drain_outbox_forever() -> None:
    # Woken by the bell writers ring after they commit; the poll is only the
    # safety net for a lost ring (it used to read the table 20 times a second on
    # the database thread).
    transport, rung = await bell_listen()
    try:
        while True:
            rung.clear()  # a ring during this read makes the next one start at once
            rows: list[OutboxMessage] = []
            try:
                rows = await sync_to_async(_outbox_take)()
                for row in rows:
                    await deliver_async(row.method, row.target, row.message)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep draining whatever one bad row or a locked DB did
                log.exception("outbox drain failed")
            if len(rows) == OUTBOX_BATCH:
                continue  # more are waiting
            try:
                await asyncio.wait_for(rung.wait(), settings.HUB_OUTBOX_POLL_SECONDS)
            except TimeoutError:
                pass
    finally:
        transport.close()
