"""Runs inside the sandbox: loads the uploaded main.py, finds its handler class
and calls it for one event, talking to the hub worker over the file descriptor
given on the command line (JSON lines both ways).

    python -I pluginhub_child.py FD run    # one event, then exit
    python -I pluginhub_child.py FD check  # import main.py, report the handler
"""

import importlib.util
import json
import logging
import socket
import sys
import traceback
from typing import Any

sys.path[:0] = ["/code", "/hub-runtime"]

from pluginhub.client import HubClient  # noqa: E402
from pluginhub.plugins import PluginCore  # noqa: E402


class Channel:
    """JSON lines over a socket inherited from the hub worker."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self.reader = self.sock.makefile("rb")
        self.next_id = 0

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, default=str).encode() + b"\n"
        self.sock.sendall(data)

    def receive(self) -> dict[str, Any]:
        line = self.reader.readline()
        if not line:
            raise SystemExit("the hub closed the channel")
        return json.loads(line)

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        self.send(
            {"type": "call", "id": self.next_id, "method": method, "params": params}
        )
        return self.receive()


class ChannelLogHandler(logging.Handler):
    def __init__(self, channel: Channel) -> None:
        super().__init__()
        self.channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            self.channel.send(
                {"type": "log", "level": record.levelname, "message": message}
            )
        except Exception:  # noqa: S110 - a log line must never break the handler
            pass


class LogStream:
    """print() and stray writes to stderr become log lines on the run page."""

    def __init__(self, channel: Channel, level: str) -> None:
        self.channel, self.level, self.buffer = channel, level, ""

    def write(self, text: str) -> int:
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self.channel.send({"type": "log", "level": self.level, "message": line})
        return len(text)

    def flush(self) -> None:
        if self.buffer:
            self.channel.send(
                {"type": "log", "level": self.level, "message": self.buffer}
            )
            self.buffer = ""


def load_handler_class() -> type:
    spec = importlib.util.spec_from_file_location("main", "/code/main.py")
    if spec is None or spec.loader is None:
        raise ImportError("main.py cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    sys.modules["main"] = module
    spec.loader.exec_module(module)
    classes = [
        c
        for c in vars(module).values()
        if isinstance(c, type)
        and issubclass(c, PluginCore)
        and c is not PluginCore
        and c.__module__ == "main"
    ]
    named = [c for c in classes if c.__name__ == "PluginHandler"]
    if named:
        return named[0]
    if len(classes) == 1:
        return classes[0]
    if not classes:
        raise LookupError(
            "main.py defines no handler: write `class PluginHandler(PluginCore)` "
            "with `from pluginhub.plugins import PluginCore`"
        )
    names = ", ".join(c.__name__ for c in classes)
    raise LookupError(
        f"main.py defines several handlers ({names}); name one PluginHandler"
    )


def main() -> int:
    channel = Channel(int(sys.argv[1]))
    # The sandbox is up; what fails from here on is the plugin's (session.py).
    channel.send({"type": "started"})
    mode = sys.argv[2]
    logger = logging.getLogger("plugin")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(ChannelLogHandler(channel))
    sys.stdout = LogStream(channel, "INFO")
    sys.stderr = LogStream(channel, "ERROR")
    try:
        handler_class = load_handler_class()
        if mode == "check":
            methods = [
                m
                for m in ("on_submit", "on_review", "on_send_back_to_queue", "on_event")
                if getattr(handler_class, m) is not getattr(PluginCore, m)
            ]
            channel.send(
                {
                    "type": "checked",
                    "handler": handler_class.__name__,
                    "methods": methods,
                }
            )
            return 0
        job = channel.receive()
        client = HubClient(
            channel, project_id=job["project_id"], asset_id=job["asset_id"]
        )
        handler = handler_class(client, job["project_id"], logger)
        method = job["method"]
        if method == "on_event":
            handler.on_event(job["event"], job["label"], job["asset_id"])
        else:
            getattr(handler, method)(job["label"], job["asset_id"])
        sys.stdout.flush()
        sys.stderr.flush()
        channel.send({"type": "done"})
        return 0
    except MemoryError:
        channel.send(
            {
                "type": "error",
                "kind": "memory",
                "message": "MemoryError",
                "traceback": "",
            }
        )
        return 1
    except BaseException as exc:  # report everything, SystemExit included
        sys.stdout.flush()
        sys.stderr.flush()
        channel.send(
            {
                "type": "error",
                "kind": "exception",
                "message": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
