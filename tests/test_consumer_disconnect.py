"""A plugin that goes away while the hub answers its frame (a Ctrl-C in its
terminal) is routine: one INFO line, no traceback in the hub's console."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from uvicorn.protocols.utils import ClientDisconnected

from plugins_app.wire import codec
from plugins_app.wire.consumer import PluginSocketConsumer


def consumer_answering(error: Exception) -> PluginSocketConsumer:
    """An authenticated consumer whose Socket.IO handling meets `error`, as
    uvicorn's send does when the peer has gone."""
    consumer = PluginSocketConsumer()
    consumer.authenticated = True
    consumer.address = "127.0.0.1:5555"

    async def answer(_: Any) -> None:
        raise error

    consumer._receive_sio = answer  # type: ignore[method-assign]
    return consumer


@pytest.mark.asyncio
async def test_a_peer_gone_mid_frame_is_one_quiet_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = consumer_answering(ClientDisconnected())
    with caplog.at_level(logging.DEBUG, logger="plugins_app.wire.consumer"):
        await consumer.receive(text_data=codec.EIO_MESSAGE + '2["heartbeat",{}]')
    records = [r for r in caplog.records if r.name == "plugins_app.wire.consumer"]
    assert [r.levelno for r in records] == [logging.INFO]
    assert records[0].exc_info is None
    assert "disconnected while its frame was answered" in records[0].getMessage()


@pytest.mark.asyncio
async def test_any_other_failure_of_a_frame_is_still_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = consumer_answering(RuntimeError("boom"))
    with caplog.at_level(logging.DEBUG, logger="plugins_app.wire.consumer"):
        await consumer.receive(text_data=codec.EIO_MESSAGE + '2["heartbeat",{}]')
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and errors[0].exc_info is not None
