"""Engine.IO 4 / Socket.IO 5 framing over the websocket transport.

Only what the python-socketio client sends and expects: one Engine.IO packet per
websocket text frame, no polling, no binary attachments. Decoding never raises
anything but `FrameError`, so the consumer can log and ignore garbage.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# Engine.IO packet types.
EIO_OPEN = "0"
EIO_CLOSE = "1"
EIO_PING = "2"
EIO_PONG = "3"
EIO_MESSAGE = "4"
EIO_UPGRADE = "5"
EIO_NOOP = "6"
_EIO_TYPES = frozenset("0123456")

# Socket.IO packet types.
SIO_CONNECT = 0
SIO_DISCONNECT = 1
SIO_EVENT = 2
SIO_ACK = 3
SIO_CONNECT_ERROR = 4
SIO_BINARY_EVENT = 5
SIO_BINARY_ACK = 6

_MAX_ACK_DIGITS = 18
# ASCII only: str.isdigit() also accepts "²" or "٣", which int() rejects or misreads.
_DIGITS = frozenset("0123456789")
# A \uD800-\uDFFF escape in the JSON text: the only way a lone surrogate, which
# no database text column accepts, gets into the decoded data.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class FrameError(ValueError):
    """A frame that is not valid Engine.IO / Socket.IO."""


@dataclass(frozen=True)
class SioPacket:
    type: int
    namespace: str
    data: Any
    ack_id: int | None = None


def encode_open(
    sid: str, *, ping_interval_ms: int, ping_timeout_ms: int, max_payload: int
) -> str:
    handshake = {
        "sid": sid,
        "upgrades": [],
        "pingInterval": ping_interval_ms,
        "pingTimeout": ping_timeout_ms,
        "maxPayload": max_payload,
    }
    return EIO_OPEN + _dumps(handshake)


def decode_eio(frame: str) -> tuple[str, str]:
    """Split a text frame into (Engine.IO packet type, payload)."""
    if not isinstance(frame, str) or not frame:
        raise FrameError("empty frame")
    if frame[0] not in _EIO_TYPES:
        raise FrameError(f"unknown Engine.IO packet type {frame[0]!r}")
    return frame[0], frame[1:]


def decode_sio(payload: str) -> SioPacket:
    """Parse the payload of an Engine.IO MESSAGE as a Socket.IO packet."""
    if not payload or payload[0] not in _DIGITS:
        raise FrameError("missing Socket.IO packet type")
    packet_type = int(payload[0])
    if packet_type > SIO_BINARY_ACK:
        raise FrameError(f"unknown Socket.IO packet type {packet_type}")
    if packet_type in (SIO_BINARY_EVENT, SIO_BINARY_ACK):
        raise FrameError("binary Socket.IO packets are not supported")
    rest = payload[1:]
    namespace = "/"
    if rest.startswith("/"):
        end = rest.find(",")
        namespace, rest = (rest, "") if end < 0 else (rest[:end], rest[end + 1 :])
    digits = 0
    while digits < len(rest) and rest[digits] in _DIGITS:
        digits += 1
    if digits > _MAX_ACK_DIGITS:
        raise FrameError("ack id too long")
    ack_id = int(rest[:digits]) if digits else None
    body = rest[digits:]
    data: Any = None
    if body:
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise FrameError(f"invalid JSON in Socket.IO packet: {exc}") from exc
        if _SURROGATE_ESCAPE.search(body):
            try:
                data = _without_lone_surrogates(data)
            except RecursionError as exc:
                raise FrameError("Socket.IO packet nested too deeply") from exc
    return SioPacket(type=packet_type, namespace=namespace, data=data, ack_id=ack_id)


def event_args(packet: SioPacket) -> tuple[str, list[Any]]:
    """The event name and arguments of an EVENT packet."""
    data = packet.data
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise FrameError("an EVENT must carry a JSON array starting with its name")
    return data[0], data[1:]


def encode_connect_ack(namespace: str, sid: str) -> str:
    return f"{EIO_MESSAGE}{SIO_CONNECT}{namespace},{_dumps({'sid': sid})}"


def encode_event(namespace: str, event: str, arg: Any) -> str:
    # Exactly one argument: the SDK's handlers take one parameter.
    return f"{EIO_MESSAGE}{SIO_EVENT}{namespace},{_dumps([event, arg])}"


def encode_ack(namespace: str, ack_id: int) -> str:
    return f"{EIO_MESSAGE}{SIO_ACK}{namespace},{ack_id}[]"


def _without_lone_surrogates(value: Any) -> Any:
    """Replace unpaired surrogates (valid JSON, e.g. a file name a plugin decoded
    with surrogateescape) by U+FFFD; pairs were already joined by json.loads."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {
            _without_lone_surrogates(k): _without_lone_surrogates(v)
            for k, v in value.items()
        }
    return value


# Built once: json.dumps with any argument builds an encoder per call (every
# job frame and ack).
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)
