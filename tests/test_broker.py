"""The embedded broker writes each message atomically (plugins_app/broker.py):
a worker polling the queue folder never finds a message file before its
content is complete."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection
from kombu.transport import filesystem

from plugins_app import broker


# Queue names differ between tests: kombu keeps declared bindings per transport
# class, across connections.
def connection(folder: Path) -> Connection:
    return Connection(
        "filesystem://",
        transport=broker.TRANSPORT_PATH,
        transport_options={
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(folder / "control"),
        },
    )


def test_the_celery_app_uses_the_atomic_transport(tmp_path: Path) -> None:
    from plugins_app.celery import app

    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, broker.Transport)
    # kombu's own transport is left as it is (no patched method).
    assert filesystem.Channel._put is not broker.AtomicChannel._put
    with connection(tmp_path) as conn:
        queue = conn.SimpleQueue("installed")
        queue.put({"n": 1})
        assert queue.get(timeout=1).payload == {"n": 1}
        queue.close()


def test_no_message_file_is_visible_before_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen_while_writing: list[list[str]] = []
    real_dumps = broker.dumps

    def dumps_and_look(payload: Any) -> str:
        # What a polling worker would list at this instant.
        seen_while_writing.append(
            [n for n in os.listdir(tmp_path) if n.partition(".")[2] == "q.msg"]
        )
        return real_dumps(payload)

    monkeypatch.setattr(broker, "dumps", dumps_and_look)
    with connection(tmp_path) as conn:
        queue = conn.SimpleQueue("q")
        queue.put({"n": 2})
        assert seen_while_writing == [[]]
        assert queue.get(timeout=1).payload == {"n": 2}
        queue.close()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".partial")]
