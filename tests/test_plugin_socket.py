"""Edge cases of the plugin socket, driven over real websockets against a live hub:
a hand-written Engine.IO 4 / Socket.IO 5 client for what the SDK never does, and
the real imerit-ango client where its reaction is the point (see
ango-plugin-protocol.md §1, §7, §8)."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from plugins_app import protocol
from plugins_app.plugins.models import FailedHeartbeat, PluginInstance
from plugins_app.runs.creation import RunRequestError
from plugins_app.runs.models import Run, RunLogLine, WorkItem
from plugins_app.runs.sweep import runs_sweep
from plugins_app.workspace.models import Task
from tests.builders import new_run, pass_deadline
from tests.hub import SCRIPTS, LiveHub, wait_for
from tests.test_sdk_model_runs import wait_finished

ECHO = SCRIPTS / "echo_model.py"
BOX = {"x": 10, "y": 20, "width": 30, "height": 40}


# --- a raw client -----------------------------------------------------------------
class RawClient:
    """Speaks Engine.IO 4 / Socket.IO 5 frames by hand, like python-socketio: a
    reader thread answers pings (while `answer_pings`) and queues other frames."""

    def __init__(self, hub: LiveHub, *, query: str = "EIO=4&transport=websocket"):
        self.ws: ClientConnection = connect(
            f"ws://127.0.0.1:{hub.port}/socket.io/?{query}",
            open_timeout=5,
            ping_interval=None,
            max_size=None,
            compression=None,
            proxy=None,
            legacy=True,
        )
        first = self.ws.recv(timeout=2)
        assert isinstance(first, str) and first.startswith("0"), first
        self.handshake: dict[str, Any] = json.loads(first[1:])
        self.answer_pings = True
        self.pings = 0
        self.next_ack = 1000
        self.frames: queue.Queue[str | bytes | None] = queue.Queue()
        self.closed = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for frame in self.ws:
                if frame == "2":
                    self.pings += 1
                    if self.answer_pings:
                        self.ws.send("3")
                else:
                    self.frames.put(frame)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            self.frames.put(None)

    def close(self) -> None:
        self.ws.close()

    def send(self, frame: str | bytes) -> None:
        self.ws.send(frame)

    def recv(self, timeout: float = 5) -> str | bytes:
        """The next frame that is not a ping."""
        try:
            frame = self.frames.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no frame in {timeout} s") from None
        if frame is None:
            self.frames.put(None)
            raise AssertionError("the hub closed the socket")
        return frame

    def pump(self, seconds: float) -> list[str | bytes]:
        """The frames other than pings that arrive within `seconds`."""
        frames: list[str | bytes] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                frames.append(self.recv(timeout=left))
            except TimeoutError:
                break
        return frames

    def connect_namespace(self) -> dict[str, Any]:
        self.send("40/plugin,{}")
        frame = self.recv(timeout=1)
        assert isinstance(frame, str) and frame.startswith("40/plugin,"), frame
        return json.loads(frame[len("40/plugin,") :])

    def emit(self, event: str, data: Any) -> None:
        self.send("42/plugin," + json.dumps([event, data]))

    def emit_acked(self, event: str, data: Any, timeout: float = 5) -> None:
        """Emit with an ack id and wait for the ack: the hub has handled it."""
        self.next_ack += 1
        ack = self.next_ack
        self.send(f"42/plugin,{ack}" + json.dumps([event, data]))
        self.expect(f"43/plugin,{ack}[]", timeout=timeout)

    def expect(self, wanted: str, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            frame = self.recv(timeout=deadline - time.monotonic())
            if frame == wanted:
                return
            seen.append(frame)
        raise AssertionError(f"no {wanted!r}; got {seen!r}")

    def heartbeat(self, plugin_id: str, secret: str) -> None:
        self.emit_acked("heartbeat", {"id": plugin_id, "secret": secret})

    def probe(self) -> None:
        """The socket is open and the hub still handles this client's events."""
        self.emit_acked("log", {})

    def job(self, timeout: float = 5) -> dict[str, Any]:
        frame = self.recv(timeout=timeout)
        prefix = '42/plugin,["plugin",'
        assert isinstance(frame, str) and frame.startswith(prefix), frame
        event, job = json.loads(frame[len("42/plugin,") :])
        assert event == "plugin" and isinstance(job, dict), frame
        return job

    def respond(self, session: str, objects: list[dict[str, Any]]) -> None:
        answer = {"objects": objects, "classifications": [], "relations": []}
        self.emit_acked("response", {"response": answer, "session": session})

    def wait_closed(self, timeout: float) -> float:
        """Seconds until the hub closed the socket."""
        start = time.monotonic()
        assert self.closed.wait(timeout), f"socket still open after {timeout} s"
        return time.monotonic() - start


def authenticated(hub: LiveHub, registered: Any) -> RawClient:
    client = RawClient(hub)
    client.connect_namespace()
    client.heartbeat(registered.plugin.public_id, registered.secret)
    return client


def live(plugin: Any) -> int:
    return PluginInstance.objects.live().filter(plugin=plugin).count()


def model_run(workspace: Any, plugin: Any, external_id: str = "astronaut") -> Run:
    return new_run(workspace, plugin, external_id, dispatch=True)


def task_answer(workspace: Any, external_id: str = "astronaut") -> dict[str, Any]:
    return Task.objects.get(asset=workspace.asset(external_id)).answer


# --- handshake ------------------------------------------------------------------
def test_it_sends_open_first_and_acks_the_namespace_within_a_second(
    live_hub: LiveHub, settings: Any, clients: list[RawClient]
) -> None:
    settings.HUB_PING_INTERVAL_MS = 1234
    settings.HUB_PING_TIMEOUT_MS = 4321
    client = RawClient(live_hub)
    clients.append(client)
    hs = client.handshake
    assert isinstance(hs["sid"], str) and hs["sid"]
    assert hs["upgrades"] == []
    assert (hs["pingInterval"], hs["pingTimeout"]) == (1234, 4321)

    started = time.monotonic()
    ack = client.connect_namespace()
    assert time.monotonic() - started < 1
    assert isinstance(ack["sid"], str) and ack["sid"]
    other = RawClient(live_hub)
    clients.append(other)
    assert other.handshake["sid"] != hs["sid"]


@pytest.mark.parametrize(
    "query", ["transport=websocket", "EIO=3&transport=websocket", "EIO=4"]
)
def test_it_refuses_a_handshake_that_is_not_eio4_over_websocket(
    live_hub: LiveHub, query: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        RawClient(live_hub, query=query)
    assert refused.value.response.status_code == 403


def test_it_binds_a_heartbeat_to_one_instance_however_often_it_comes(
    live_hub: LiveHub, make_plugin: Any, clients: list[RawClient]
) -> None:
    registered = make_plugin()
    client = authenticated(live_hub, registered)
    clients.append(client)
    client.heartbeat(registered.plugin.public_id, registered.secret)
    assert live(registered.plugin) == 1
    assert PluginInstance.objects.filter(plugin=registered.plugin).count() == 1
    assert not FailedHeartbeat.objects.exists()


# --- authentication -------------------------------------------------------------
def test_it_keeps_a_wrong_secret_connected_but_never_live_or_given_work(
    live_hub: LiveHub,
    workspace: Any,
    make_plugin: Any,
    settings: Any,
    clients: list[RawClient],
) -> None:
    settings.HUB_PING_INTERVAL_MS = 200
    registered = make_plugin()
    intruder = RawClient(live_hub)
    clients.append(intruder)
    intruder.connect_namespace()
    intruder.heartbeat(registered.plugin.public_id, "not-the-secret")

    failure = FailedHeartbeat.objects.get()
    assert failure.reason == "wrong secret"
    assert failure.plugin == registered.plugin
    assert failure.claimed_id == registered.plugin.public_id
    assert live(registered.plugin) == 0
    with pytest.raises(RunRequestError, match="No instance"):
        model_run(workspace, registered.plugin)

    # An honest instance gets the run; the intruder only ever sees pings.
    honest = authenticated(live_hub, registered)
    clients.append(honest)
    run = model_run(workspace, registered.plugin)
    assert honest.job()["session"] == WorkItem.objects.get(run=run).session
    pings_before = intruder.pings
    assert intruder.pump(1.0) == []
    assert intruder.pings - pings_before >= 3
    intruder.probe()
    assert FailedHeartbeat.objects.count() == 1


def test_it_records_an_unknown_plugin_id(
    live_hub: LiveHub, make_plugin: Any, clients: list[RawClient]
) -> None:
    registered = make_plugin()
    client = RawClient(live_hub)
    clients.append(client)
    client.connect_namespace()
    client.heartbeat("f" * 24, registered.secret)
    client.emit_acked("heartbeat", None)  # no credentials at all
    reasons = list(FailedHeartbeat.objects.values_list("reason", "claimed_id"))
    assert sorted(reasons) == [
        ("unknown plugin id", "None"),
        ("unknown plugin id", "f" * 24),
    ]
    assert not PluginInstance.objects.exists()
    client.probe()


def test_it_stops_giving_work_to_a_socket_whose_secret_stops_matching(
    live_hub: LiveHub, make_plugin: Any, clients: list[RawClient]
) -> None:
    registered = make_plugin()
    client = authenticated(live_hub, registered)
    clients.append(client)
    assert live(registered.plugin) == 1
    client.heartbeat(registered.plugin.public_id, "rotated-away")
    assert live(registered.plugin) == 0
    client.probe()


def test_it_keeps_the_real_sdk_with_a_wrong_secret_alive_and_not_live(
    workspace: Any, make_plugin: Any, plugin_runner: Any, settings: Any
) -> None:
    settings.HUB_PING_INTERVAL_MS = 300
    settings.HUB_PING_TIMEOUT_MS = 2000
    registered = make_plugin()
    process = plugin_runner(ECHO, registered, secret="wrong", wait_live=False)
    wait_for(lambda: FailedHeartbeat.objects.exists(), timeout=30, what="the heartbeat")
    time.sleep(3)
    assert process.alive(), process.log()
    # One heartbeat: the SDK did not reconnect (each reconnect sends another).
    failures = list(FailedHeartbeat.objects.values_list("reason", flat=True))
    assert failures == ["wrong secret"], process.log()
    assert live(registered.plugin) == 0
    assert not PluginInstance.objects.exists()


# --- garbage --------------------------------------------------------------------
GARBAGE: list[str | bytes] = [
    "",
    "zzz",
    "4",
    "42/plugin,[not json",
    "42/plugin,{}",
    '42/plugin,[17,{"id":"x"}]',
    '45-/plugin,["response",{"_placeholder":true,"num":0}]',
    "4\u00b2/plugin,[]",
    '42/plugin,\u00b2["log",{}]',
    "42/plugin," + "9" * 40 + '["log",{}]',
    "42/plugin,[" * 20_000,
    b"\x00\x01binary frame",
    '42/other,["heartbeat",{"id":"x","secret":"y"}]',
    '42["heartbeat",{"id":"x","secret":"y"}]',
    '42/plugin,["response",{"session":"nope"}]',  # before authenticating
    '42/plugin,["log",{"session":"nope","msg":"hi"}]',
    "5",
    "6",
    "3probe",
]


def test_it_ignores_garbage_and_the_same_socket_still_works(
    live_hub: LiveHub,
    workspace: Any,
    make_plugin: Any,
    clients: list[RawClient],
) -> None:
    registered = make_plugin()
    client = RawClient(live_hub)
    clients.append(client)
    client.connect_namespace()
    for frame in GARBAGE:
        client.send(frame)
    client.probe()
    assert not FailedHeartbeat.objects.exists()
    assert not PluginInstance.objects.exists()

    client.heartbeat(registered.plugin.public_id, registered.secret)
    assert live(registered.plugin) == 1
    run = model_run(workspace, registered.plugin)
    job = client.job()
    assert job["session"] == WorkItem.objects.get(run=run).session
    assert job["externalId"] == "astronaut"


def test_it_survives_events_the_database_cannot_store(
    live_hub: LiveHub, workspace: Any, make_plugin: Any, clients: list[RawClient]
) -> None:
    registered = make_plugin()
    client = RawClient(live_hub)
    clients.append(client)
    client.connect_namespace()
    # A lone surrogate is valid JSON but cannot be encoded for the database.
    client.send('42/plugin,["heartbeat",{"id":"\\ud800","secret":"x"}]')
    client.probe()
    assert FailedHeartbeat.objects.get().claimed_id == "\ufffd"
    client.heartbeat(registered.plugin.public_id, registered.secret)
    assert live(registered.plugin) == 1
    client.send('42/plugin,["response",{"session":"\\udfff"}]')
    client.probe()

    # A log line carrying one (say, a file name decoded with surrogateescape) is
    # stored, and so are the lines batched with it.
    run = model_run(workspace, registered.plugin)
    session = client.job()["session"]
    for msg in ("before", "file \udcff.png", "after"):
        client.emit("log", {"level": "INFO", "session": session, "msg": msg})
    client.respond(session, [{"schemaId": "face-box", "bounding-box": BOX}])
    assert Run.objects.get(pk=run.pk).status == Run.Status.SUCCEEDED
    messages = list(
        RunLogLine.objects.filter(run=run, level="INFO").values_list(
            "message", flat=True
        )
    )
    assert messages == ["before", "file \ufffd.png", "after"]


# --- frame size -----------------------------------------------------------------
# The session may stand anywhere in the frame: the job is found either way.
@pytest.mark.parametrize("session_first", [False, True])
def test_it_fails_the_run_of_an_oversized_response_naming_the_limit(
    live_hub: LiveHub,
    workspace: Any,
    make_plugin: Any,
    settings: Any,
    clients: list[RawClient],
    session_first: bool,
) -> None:
    settings.HUB_MAX_FRAME_BYTES = 20_000
    registered = make_plugin()
    client = authenticated(live_hub, registered)
    clients.append(client)
    assert client.handshake["maxPayload"] == 20_000
    run = model_run(workspace, registered.plugin)
    session = client.job()["session"]

    answer = {
        "objects": [{"schemaId": "face-box", "bounding-box": BOX}] * 400,
        "classifications": [],
        "relations": [],
    }
    # Refused unread, so an ack id on it would get no ack: none is sent.
    payload = {"response": answer, "session": session}
    if session_first:
        payload = {"session": session, "response": answer}
    client.emit("response", payload)
    run = wait_finished(run, timeout=5)
    assert run.status == Run.Status.FAILED
    assert "HUB_MAX_FRAME_BYTES" in run.error and "20,000" in run.error
    item = WorkItem.objects.get(run=run)
    assert (item.state, item.failure) == (WorkItem.State.FAILED, "invalid")
    assert task_answer(workspace) == {}
    client.probe()
    assert live(registered.plugin) == 1


def test_it_fails_the_real_sdks_oversized_answer_naming_the_setting(
    workspace: Any, make_plugin: Any, plugin_runner: Any, settings: Any
) -> None:
    settings.HUB_MAX_FRAME_BYTES = 1_000_000
    registered = make_plugin()
    process = plugin_runner(
        ECHO, registered, env={"ECHO_MODE": "big", "ECHO_COPIES": "30000"}
    )
    run = wait_finished(model_run(workspace, registered.plugin), timeout=30)
    assert run.status == Run.Status.FAILED, process.log()
    assert "HUB_MAX_FRAME_BYTES" in run.error and "1,000,000" in run.error
    assert task_answer(workspace) == {}
    assert process.alive() and live(registered.plugin) == 1


# --- pings ------------------------------------------------------------------------
def test_it_closes_a_silent_client_and_requeues_its_job(
    live_hub: LiveHub,
    workspace: Any,
    make_plugin: Any,
    settings: Any,
    clients: list[RawClient],
) -> None:
    settings.HUB_PING_INTERVAL_MS = 200
    settings.HUB_PING_TIMEOUT_MS = 200
    registered = make_plugin()
    client = authenticated(live_hub, registered)
    clients.append(client)
    run = model_run(workspace, registered.plugin)
    client.job()
    item = WorkItem.objects.get(run=run)
    assert item.state == WorkItem.State.LEASED

    client.answer_pings = False
    assert client.wait_closed(timeout=3) < 2
    instance = PluginInstance.objects.get()
    wait_for(
        lambda: PluginInstance.objects.get(pk=instance.pk).disconnected_at,
        timeout=3,
        what="the instance to be marked disconnected",
    )
    wait_for(
        lambda: WorkItem.objects.get(pk=item.pk).state == WorkItem.State.PENDING,
        timeout=3,
        what="the job to go back to the queue",
    )
    assert live(registered.plugin) == 0
    assert Run.objects.get(pk=run.pk).status == Run.Status.RUNNING
    assert RunLogLine.objects.filter(run=run, message__contains="disconnected").exists()


def test_it_keeps_a_client_that_answers_pings(
    live_hub: LiveHub, make_plugin: Any, settings: Any, clients: list[RawClient]
) -> None:
    settings.HUB_PING_INTERVAL_MS = 200
    settings.HUB_PING_TIMEOUT_MS = 500
    registered = make_plugin()
    client = authenticated(live_hub, registered)
    clients.append(client)
    assert client.pump(1.6) == []
    assert client.pings >= 5
    client.probe()
    assert live(registered.plugin) == 1


def test_it_keeps_a_client_whose_large_response_keeps_the_hub_busy(
    live_hub: LiveHub,
    workspace: Any,
    make_plugin: Any,
    settings: Any,
    clients: list[RawClient],
) -> None:
    # The pongs the client sends while the hub stores its answer wait unread
    # behind that answer; they must not count as missing.
    settings.HUB_PING_INTERVAL_MS = 100
    settings.HUB_PING_TIMEOUT_MS = 150
    # An answer big enough to keep the hub busy is over the default cap, which
    # would refuse it at once; an operator may raise the cap this far.
    settings.HUB_MAX_OBJECTS_PER_ANSWER = 100_000
    registered = make_plugin()
    client = authenticated(live_hub, registered)
    clients.append(client)
    run = model_run(workspace, registered.plugin)
    session = client.job()["session"]
    answer = {
        "objects": [{"schemaId": "face-box", "bounding-box": BOX}] * 60_000,
        "classifications": [],
        "relations": [],
    }
    started = time.monotonic()
    client.emit("response", {"response": answer, "session": session})
    run = wait_finished(run, timeout=20)
    busy = time.monotonic() - started
    assert busy > 0.3, "the answer was stored too fast to test this"
    assert run.status == Run.Status.SUCCEEDED, run.error
    assert client.pump(0.5) == []
    client.probe()
    assert not client.closed.is_set()
    assert live(registered.plugin) == 1


def test_it_saves_pongs_while_its_database_thread_is_busy(
    live_hub: LiveHub, make_plugin: Any, settings: Any, clients: list[RawClient]
) -> None:
    # Answers, logs and dispatches run one at a time on the process's database
    # thread; under load it runs seconds behind. Pongs must not wait there, or a
    # live instance's leases expire and its jobs are done twice.
    settings.HUB_PING_INTERVAL_MS = 100
    settings.HUB_PING_TIMEOUT_MS = 2000
    registered = make_plugin()
    client = authenticated(live_hub, registered)
    clients.append(client)
    instance = PluginInstance.objects.get(plugin=registered.plugin)
    connected_seen = instance.last_seen_at

    # The same thread every consumer's sync_to_async call runs on.
    hub_loop = protocol._asgi_loop
    assert hub_loop is not None
    busy = asyncio.run_coroutine_threadsafe(sync_to_async(time.sleep)(3), hub_loop)
    assert client.pump(1.5) == []  # pongs answered meanwhile
    instance.refresh_from_db()
    assert not busy.done(), "the database thread was free; this tests nothing"
    assert instance.last_seen_at > connected_seen
    busy.result(timeout=5)


# --- responses --------------------------------------------------------------------
def test_it_ignores_a_response_for_an_unknown_session(
    live_hub: LiveHub, workspace: Any, make_plugin: Any, clients: list[RawClient]
) -> None:
    registered = make_plugin()
    client = authenticated(live_hub, registered)
    clients.append(client)
    run = model_run(workspace, registered.plugin)
    session = client.job()["session"]
    lines = RunLogLine.objects.count()

    client.respond("0" * 32, [{"schemaId": "face-box", "bounding-box": BOX}])
    client.emit_acked("response", {"response": None})  # no session at all
    client.probe()
    assert RunLogLine.objects.count() == lines
    assert WorkItem.objects.get(run=run).state == WorkItem.State.LEASED
    assert Run.objects.get(pk=run.pk).status == Run.Status.RUNNING
    assert task_answer(workspace) == {}

    client.respond(session, [{"schemaId": "face-box", "bounding-box": BOX}])
    assert Run.objects.get(pk=run.pk).status == Run.Status.SUCCEEDED


def test_it_ignores_a_duplicate_response_for_a_finished_session(
    live_hub: LiveHub, workspace: Any, make_plugin: Any, clients: list[RawClient]
) -> None:
    registered = make_plugin()
    client = authenticated(live_hub, registered)
    clients.append(client)
    run = model_run(workspace, registered.plugin)
    session = client.job()["session"]
    client.respond(session, [{"schemaId": "face-box", "bounding-box": BOX}])
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED
    stored = task_answer(workspace)
    assert [t["bounding-box"] for t in stored["tools"]] == [BOX]

    other_box = {"x": 1, "y": 2, "width": 3, "height": 4}
    client.respond(session, [{"schemaId": "face-box", "bounding-box": other_box}])
    client.emit_acked("response", {"error": True, "session": session})
    assert task_answer(workspace) == stored
    again = Run.objects.get(pk=run.pk)
    assert (again.status, again.finished_at) == (run.status, run.finished_at)
    assert WorkItem.objects.get(run=run).state == WorkItem.State.DONE
    ignored = RunLogLine.objects.filter(run=run, message__startswith="Ignored")
    assert ignored.count() == 2
    client.probe()


def test_it_applies_a_job_once_whatever_duplicate_and_late_answers_arrive(
    live_hub: LiveHub,
    workspace: Any,
    make_plugin: Any,
    clients: list[RawClient],
    prelabel_writes: Any,
) -> None:
    registered = make_plugin()
    slow = authenticated(live_hub, registered)
    clients.append(slow)
    run = model_run(workspace, registered.plugin)
    session = slow.job()["session"]
    fast = authenticated(live_hub, registered)
    clients.append(fast)
    # The slow instance misses the plugin's timeout: the job is sent again (the
    # run asked for retries of timeouts), to the other instance (never given a
    # job yet, so first in line).
    Run.objects.filter(pk=run.pk).update(inputs={"retry_timeouts": True})
    pass_deadline(run)
    assert runs_sweep()["requeued"] == 1
    assert fast.job()["session"] == session
    other_box = {"x": 1, "y": 2, "width": 3, "height": 4}

    slow.respond(session, [{"schemaId": "face-box", "bounding-box": other_box}])
    assert WorkItem.objects.get(run=run).state == WorkItem.State.LEASED  # refused
    fast.respond(session, [{"schemaId": "face-box", "bounding-box": BOX}])
    fast.respond(session, [{"schemaId": "face-box", "bounding-box": other_box}])
    slow.respond(session, [{"schemaId": "face-box", "bounding-box": other_box}])

    item = WorkItem.objects.get(run=run)
    assert (item.state, item.attempts) == (WorkItem.State.DONE, 2)
    assert Run.objects.get(pk=run.pk).status == Run.Status.SUCCEEDED
    assert [t["bounding-box"] for t in task_answer(workspace)["tools"]] == [BOX]
    assert [n for _task, _run, n in prelabel_writes()] == [1]
    ignored = RunLogLine.objects.filter(run=run, message__startswith="Ignored")
    assert ignored.count() == 3  # late while held elsewhere, duplicate, late


# --- acks -------------------------------------------------------------------------
def test_it_acks_an_event_that_carries_an_ack_id(
    live_hub: LiveHub, make_plugin: Any, clients: list[RawClient]
) -> None:
    registered = make_plugin()
    client = RawClient(live_hub)
    clients.append(client)
    client.connect_namespace()
    client.send('42/plugin,17["log",{}]')
    assert client.recv(timeout=2) == "43/plugin,17[]"
    client.send(
        "42/plugin,18"
        + json.dumps(
            ["heartbeat", {"id": registered.plugin.public_id, "secret": "wrong"}]
        )
    )
    assert client.recv(timeout=2) == "43/plugin,18[]"
    # Not for another namespace, and nothing without an ack id.
    client.send('42/other,19["log",{}]')
    client.send('42/plugin,["log",{}]')
    client.send('42/plugin,20["log",{}]')
    assert client.recv(timeout=2) == "43/plugin,20[]"
