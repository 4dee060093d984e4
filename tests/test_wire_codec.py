"""The Engine.IO 4 / Socket.IO 5 frame codec, against the literal frames of the
python-socketio client (see ango-plugin-protocol.md §1)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins_app.wire import codec
from plugins_app.wire.codec import FrameError


def sio(frame: str) -> codec.SioPacket:
    kind, payload = codec.decode_eio(frame)
    assert kind == codec.EIO_MESSAGE
    return codec.decode_sio(payload)


# --- encoding -------------------------------------------------------------------
def test_it_encodes_an_open_frame_with_the_keys_the_client_requires() -> None:
    frame = codec.encode_open(
        "abc", ping_interval_ms=25_000, ping_timeout_ms=20_000, max_payload=1000
    )
    assert frame[0] == "0"
    handshake = json.loads(frame[1:])
    assert handshake["sid"] == "abc"
    assert handshake["upgrades"] == []
    assert handshake["pingInterval"] == 25_000
    assert handshake["pingTimeout"] == 20_000
    assert isinstance(handshake["pingInterval"], int)


def test_it_encodes_an_event_with_the_namespace_and_exactly_one_argument() -> None:
    frame = codec.encode_event("/plugin", "plugin", {"session": "s1", "n": 1})
    assert frame.startswith('42/plugin,["plugin",')
    assert json.loads(frame[len("42/plugin,") :]) == [
        "plugin",
        {"session": "s1", "n": 1},
    ]


def test_it_encodes_a_list_argument_as_one_argument() -> None:
    frame = codec.encode_event("/plugin", "plugin", [1, 2])
    assert json.loads(frame[len("42/plugin,") :]) == ["plugin", [1, 2]]


def test_it_encodes_an_empty_ack() -> None:
    assert codec.encode_ack("/plugin", 17) == "43/plugin,17[]"


def test_it_encodes_a_connect_ack_with_a_sid() -> None:
    frame = codec.encode_connect_ack("/plugin", "S1")
    assert frame == '40/plugin,{"sid":"S1"}'


def test_it_refuses_to_encode_nan() -> None:
    with pytest.raises(ValueError):
        codec.encode_event("/plugin", "plugin", {"x": float("nan")})


# --- decoding -------------------------------------------------------------------
def test_it_decodes_the_namespace_connect() -> None:
    packet = sio("40/plugin,{}")
    assert packet.type == codec.SIO_CONNECT
    assert packet.namespace == "/plugin"
    assert packet.data == {}
    assert packet.ack_id is None


def test_it_decodes_a_heartbeat_event() -> None:
    packet = sio('42/plugin,["heartbeat",{"id":"a","secret":"b"}]')
    assert packet.type == codec.SIO_EVENT
    assert packet.namespace == "/plugin"
    assert packet.ack_id is None
    assert codec.event_args(packet) == ("heartbeat", [{"id": "a", "secret": "b"}])


def test_it_decodes_an_ack_id() -> None:
    packet = sio('42/plugin,17["log",{}]')
    assert packet.ack_id == 17
    assert codec.event_args(packet) == ("log", [{}])


def test_it_decodes_the_default_namespace() -> None:
    packet = sio('42["heartbeat",{}]')
    assert packet.namespace == "/"
    assert codec.event_args(packet) == ("heartbeat", [{}])


def test_it_decodes_a_namespace_without_payload() -> None:
    packet = sio("41/plugin,")
    assert packet.type == codec.SIO_DISCONNECT
    assert packet.namespace == "/plugin"
    assert packet.data is None


@pytest.mark.parametrize(
    ("frame", "kind"), [("2", codec.EIO_PING), ("3", codec.EIO_PONG), ("1", "1")]
)
def test_it_decodes_engine_io_control_frames(frame: str, kind: str) -> None:
    assert codec.decode_eio(frame) == (kind, "")


def test_it_keeps_a_ping_probe_payload() -> None:
    assert codec.decode_eio("3probe") == (codec.EIO_PONG, "probe")


@pytest.mark.parametrize(
    "frame",
    ["", "z", "zzz", "7", "9hello", " 2", "\x002"],
)
def test_it_refuses_empty_and_unknown_engine_io_frames(frame: str) -> None:
    with pytest.raises(FrameError):
        codec.decode_eio(frame)


def test_it_refuses_non_text_frames() -> None:
    with pytest.raises(FrameError):
        codec.decode_eio(b"42/plugin,[]")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "payload",
    [
        "",  # a bare "4"
        "x",
        "7/plugin,[]",  # unknown Socket.IO type
        "9",
        "2/plugin,[not json",
        '2/plugin,["a",',
        "2/plugin,{'a': 1}",
        "2/plugin,NaN-ish",
        '5-/plugin,["response",{"_placeholder":true,"num":0}]',  # binary event
        "6-/plugin,0[]",  # binary ack
        "2/plugin," + "1" * 19 + "[]",  # absurd ack id
        "2/plugin," + "9" * 5000 + '["log",{}]',
        "2" + "[" * 100_000,  # nesting deep enough to blow the recursion limit
        "\u00b2/plugin,[]",  # a Unicode digit as the packet type
        "\u0663/plugin,[]",
        '2/plugin,\u00b2["log",{}]',  # and in the ack id (int() rejects "²")
        '2/plugin,1\u0663["log",{}]',
    ],
)
def test_it_refuses_malformed_socket_io_packets(payload: str) -> None:
    with pytest.raises(FrameError):
        codec.decode_sio(payload)


def test_it_accepts_the_longest_allowed_ack_id() -> None:
    packet = codec.decode_sio("2/plugin," + "9" * 18 + '["log",{}]')
    assert packet.ack_id == 10**18 - 1


@pytest.mark.parametrize(
    "payload",
    ["2/plugin,{}", "2/plugin,[]", "2/plugin,[1,2]", '2/plugin,"heartbeat"', "2"],
)
def test_it_refuses_events_that_are_not_a_named_array(payload: str) -> None:
    packet = codec.decode_sio(payload)
    with pytest.raises(FrameError):
        codec.event_args(packet)


def test_it_replaces_lone_surrogates_that_no_database_can_store() -> None:
    packet = sio(r'42/plugin,["log",{"msg":"a\udcffb","\ud800":["\ud83d\ude00"]}]')
    assert codec.event_args(packet) == ("log", [{"msg": "a\ufffdb", "\ufffd": ["😀"]}])


def test_it_keeps_an_escaped_backslash_before_u_as_text() -> None:
    packet = sio(r'42/plugin,["log",{"msg":"C:\\ud800"}]')
    assert codec.event_args(packet) == ("log", [{"msg": "C:\\ud800"}])


def test_it_lets_no_lone_surrogate_through_however_deep() -> None:
    deep = "[" * 900 + '"\\ud800"' + "]" * 900
    try:
        packet = codec.decode_sio("2/plugin," + deep)
    except FrameError:
        return
    text = json.dumps(packet.data)
    assert "\\ud800" not in text and "\\ufffd" in text


# --- properties -----------------------------------------------------------------
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=15,
)
json_objects = st.dictionaries(st.text(max_size=12), json_values, max_size=6)

FRAME_CHARS = '0123456789\u00b2\u0663[]{}",:/-abcdefnul \\'
# Text that looks like frames often enough to reach the deep branches.
frame_text = st.one_of(
    st.text(),
    st.builds(
        lambda head, body: head + body,
        st.sampled_from(
            ["", "4", "42", "40", "42/plugin,", "43/plugin,", "45-", "4/", "2", "3"]
        ),
        st.text(alphabet=FRAME_CHARS, max_size=60) | st.text(),
    ),
    # JSON string escapes of surrogates: pairs, lone ones, and look-alikes.
    st.builds(
        lambda before, escape, after: f'42/plugin,["log","{before}{escape}{after}"]',
        st.text(alphabet="a\\", max_size=3),
        st.sampled_from(["\\ud800", "\\udfff", "\\ud83d\\ude00", "\\ude00\\ud83d"]),
        st.text(alphabet="a\\u", max_size=3),
    ),
)


@settings(max_examples=400, deadline=None)
@given(frame_text)
def test_it_never_raises_anything_but_frame_error(frame: str) -> None:
    try:
        kind, payload = codec.decode_eio(frame)
        if kind == codec.EIO_MESSAGE:
            packet = codec.decode_sio(payload)
            # Whatever decodes can be stored: no lone surrogates.
            json.dumps(packet.data, ensure_ascii=False).encode()
            if packet.type == codec.SIO_EVENT:
                codec.event_args(packet)
    except FrameError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=30), json_objects)
def test_it_round_trips_any_json_object_argument(
    event: str, arg: dict[str, Any]
) -> None:
    frame = codec.encode_event("/plugin", event, arg)
    kind, payload = codec.decode_eio(frame)
    assert kind == codec.EIO_MESSAGE
    packet = codec.decode_sio(payload)
    assert packet.type == codec.SIO_EVENT
    assert packet.namespace == "/plugin"
    assert packet.ack_id is None
    assert codec.event_args(packet) == (event, [arg])
