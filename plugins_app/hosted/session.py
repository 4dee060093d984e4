"""One conversation with a sandboxed handler process: spawn it, answer its
client calls, collect its log lines, and stop it at its limits.

The wire is JSON lines over a socketpair the sandbox inherits (never its
stdout, which `print` writes to): the handler process first says `started`
(before any uploaded code is imported), the worker sends the job, the handler
sends `log`, `call` (answered with `{"result"}` or `{"error"}`) and finally
`done`, `error` or, when checking a build, `checked`. A sandbox that ends
without saying `started` never ran the plugin's code: its outcome is
`unstarted`, which the runner retries rather than blaming the plugin. Raw
stdout/stderr (interpreter crashes, C extensions) are read too and kept as
log lines.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from plugins_app.hosted import sandbox

MAX_LINE_BYTES = 1024 * 1024
MAX_LOG_LINES = 10_000
MAX_CALLS = 10_000
FLUSH_SECONDS = 0.05
CANCEL_CHECK_SECONDS = 1.0
EXIT_GRACE_SECONDS = 2.0


@dataclass
class Outcome:
    # done | checked | error | memory | timeout | crash | cancelled | protocol
    # | unstarted (bwrap or the interpreter failed before the plugin's code)
    kind: str
    message: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    calls: int = 0


class _PastDeadline(Exception):
    """A call arrived, or its answer could not be delivered, past the limit."""


LogSink = Callable[[list[tuple[str, str]]], None]
CallHandler = Callable[[Any, Any], dict[str, Any]]


class Session:
    def __init__(
        self,
        spec: sandbox.Spec,
        *,
        wall_seconds: float,
        on_logs: LogSink,
        on_call: CallHandler | None = None,
        still_wanted: Callable[[], bool] | None = None,
    ) -> None:
        self.spec = spec
        self.wall_seconds = wall_seconds
        self.on_logs = on_logs
        self.on_call = on_call
        self.still_wanted = still_wanted
        self.pending_logs: list[tuple[str, str]] = []
        self.logged = 0
        self.calls = 0
        self.deadline = float("inf")
        self.started = False
        self.last_error_line = ""

    def run(self, mode: str, job: dict[str, Any] | None = None) -> Outcome:
        started = time.monotonic()
        parent, child = socket.socketpair()
        python = sandbox.python_for(self.spec.env_dir)
        # Without a virtual environment there is nothing for `site` to add but
        # Debian's system packages: -S keeps them out and starts faster.
        flags = ["-I"] if self.spec.env_dir else ["-I", "-S"]
        argv = [python, *flags, sandbox.CHILD, str(child.fileno()), mode]
        try:
            proc = sandbox.spawn(self.spec, argv, pass_fds=(child.fileno(),))
        finally:
            child.close()
        try:
            if job is not None:
                try:
                    parent.sendall(json.dumps(job).encode() + b"\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # it ended already: its output, read below, says why
            outcome = self._converse(proc, parent, started)
        finally:
            parent.close()
            if proc.poll() is None:
                sandbox.kill(proc)
            self._flush()
        outcome.seconds = time.monotonic() - started
        outcome.calls = self.calls
        return outcome

    def _converse(
        self, proc: subprocess.Popen, sock: socket.socket, started: float
    ) -> Outcome:
        deadline = self.deadline = started + self.wall_seconds
        selector = selectors.DefaultSelector()
        assert proc.stdout is not None and proc.stderr is not None
        streams = {
            sock.fileno(): "channel",
            proc.stdout.fileno(): "INFO",
            proc.stderr.fileno(): "ERROR",
        }
        for fd in streams:
            selector.register(fd, selectors.EVENT_READ)
        buffers = {fd: b"" for fd in streams}
        last_flush = last_check = time.monotonic()
        final: Outcome | None = None
        while streams:
            now = time.monotonic()
            if now >= deadline:
                if final is not None:
                    return final  # answered, but slow to exit: run() kills it
                sandbox.kill(proc)
                return Outcome(
                    "timeout", f"killed at its time limit of {self.wall_seconds:g} s"
                )
            if self.still_wanted and now - last_check >= CANCEL_CHECK_SECONDS:
                last_check = now
                if not self.still_wanted():
                    sandbox.kill(proc)
                    return Outcome("cancelled", "the run was cancelled")
            for key, _ in selector.select(timeout=min(deadline - now, FLUSH_SECONDS)):
                fd = key.fd
                try:
                    data = os.read(fd, 65536)
                except OSError:  # e.g. the sandbox died mid-write: end of stream
                    data = b""
                if not data:
                    selector.unregister(fd)
                    rest = buffers.pop(fd)
                    if rest and streams[fd] != "channel":
                        self._log(streams[fd], rest.decode(errors="replace"))
                    del streams[fd]
                    continue
                buffers[fd] += data
                *lines, buffers[fd] = buffers[fd].split(b"\n")
                if len(buffers[fd]) > MAX_LINE_BYTES:
                    sandbox.kill(proc)
                    return Outcome("protocol", "sent a line over 1 MiB")
                try:
                    for line in lines:
                        if streams[fd] == "channel":
                            final = self._message(line, sock) or final
                        else:
                            self._log(streams[fd], line.decode(errors="replace"))
                except _PastDeadline:
                    # A handler flooding calls (or not reading the answers)
                    # must not keep the worker past the limit.
                    sandbox.kill(proc)
                    return Outcome(
                        "timeout",
                        f"killed at its time limit of {self.wall_seconds:g} s",
                    )
            if time.monotonic() - last_flush >= FLUSH_SECONDS:
                self._flush()
                last_flush = time.monotonic()
            if final is not None:
                # The final word is in: the process gets a moment to exit.
                deadline = min(deadline, time.monotonic() + EXIT_GRACE_SECONDS)
        code = _wait(proc, deadline)
        if final is not None:
            return final
        if not self.started:
            why = self.last_error_line or _exit_text(code)
            return Outcome("unstarted", f"the sandbox did not start: {why}")
        return Outcome("crash", _exit_text(code))

    def _message(self, line: bytes, sock: socket.socket) -> Outcome | None:
        try:
            message = json.loads(line)
        except ValueError:
            self._log("ERROR", line.decode(errors="replace"))
            return None
        if not isinstance(message, dict):
            return None
        kind = message.get("type")
        if kind == "started":
            self.started = True
        elif kind == "log":
            self._log(
                str(message.get("level") or "INFO")[:20],
                str(message.get("message", "")),
            )
        elif kind == "call":
            if time.monotonic() >= self.deadline:
                raise _PastDeadline
            self._flush()  # lines logged before a call show before its effects
            self.calls += 1
            if self.on_call is None or self.calls > MAX_CALLS:
                reply: dict[str, Any] = {"error": "no more calls allowed"}
            else:
                reply = self.on_call(message.get("method"), message.get("params"))
            reply["id"] = message.get("id")
            self._send(sock, json.dumps(reply, default=str).encode() + b"\n")
        elif kind in ("done", "checked"):
            return Outcome(kind, detail=message)
        elif kind == "error":
            memory = message.get("kind") == "memory"
            text = str(message.get("message", ""))[:2000]
            trace = str(message.get("traceback", ""))[-8000:]
            return Outcome("memory" if memory else "error", text, {"traceback": trace})
        return None

    def _send(self, sock: socket.socket, data: bytes) -> None:
        """A handler that stops reading its answers fills the socket: give up
        at the time limit instead of blocking the worker."""
        sock.settimeout(max(0.05, self.deadline - time.monotonic()))
        try:
            sock.sendall(data)
        except TimeoutError:
            raise _PastDeadline from None
        finally:
            sock.settimeout(None)

    def _log(self, level: str, message: str) -> None:
        if level == "ERROR" and message.strip():
            self.last_error_line = message.strip()[:500]
        self.logged += 1
        if self.logged <= MAX_LOG_LINES:
            self.pending_logs.append((level, message))
        elif self.logged == MAX_LOG_LINES + 1:
            self.pending_logs.append(
                ("HUB", f"More than {MAX_LOG_LINES} log lines; the rest are dropped.")
            )

    def _flush(self) -> None:
        if self.pending_logs:
            lines, self.pending_logs = self.pending_logs, []
            self.on_logs(lines)


def _wait(proc: subprocess.Popen, deadline: float) -> int:
    try:
        return proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        sandbox.kill(proc)
        return proc.returncode


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        return f"the handler process was killed by signal {-code}"
    return f"the handler process exited with status {code} without answering"
