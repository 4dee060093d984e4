"""Embedded mode's Celery broker: kombu's filesystem transport, with atomic
message files.

kombu (5.x) creates a message file under its final `*.msg` name and then
writes it. A worker polling at that instant moves the still-empty file away,
fails to decode it and stops ("Unrecoverable error: JSONDecodeError"), and the
message is lost. It shows as soon as two processes share the folder under load
(two workers and a stream of events). Writing under a name the readers skip
(no `.msg` suffix) and renaming it into place makes a message appear whole or
not at all.

Celery is pointed at `Transport` by the setting CELERY_BROKER_TRANSPORT
(settings.py): `_put` is the method a kombu virtual channel is meant to
implement, so overriding it in a subclass changes nothing for anyone else
using kombu's own filesystem transport in the process.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps

# What CELERY_BROKER_TRANSPORT names (kombu resolves "module:Class").
TRANSPORT_PATH = "plugins_app.broker:Transport"


class AtomicChannel(filesystem.Channel):
    """A filesystem channel whose messages appear whole or not at all."""

    # The stubs give AbstractChannel._put and filesystem.Channel._put different
    # signatures; this one is filesystem.Channel's, which kombu calls.
    def _put(  # type: ignore[override]
        self, queue: str, payload: dict[str, Any], **kwargs: Any
    ) -> None:
        # The name kombu's own _put gives (it names files by time.monotonic too).
        name = f"{int(round(time.monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".partial-{uuid.uuid4().hex}")
        try:
            with open(partial, "wb") as f:
                f.write(dumps(payload).encode())
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    """kombu's filesystem transport with AtomicChannel (its state, folders and
    options are the parent's)."""

    Channel = AtomicChannel
