"""Keep the SDK's routine INFO lines off a plugin's console (no SDK import).

The SDK logs every heartbeat and every socket event ("Emitting event ...",
"Received event ...") at INFO on its ``plugin`` logger, and APScheduler logs
its heartbeat job; with a few plugins running that buries what matters. Only
those two loggers are touched: a job's ``PluginLogger`` (the lines the hub
shows on the run page) is separate, and warnings ("Connected", "Disconnected")
still print. ``LOGLEVEL=DEBUG``, the SDK's own switch, shows everything again.
"""

from __future__ import annotations

import logging
import os


def _not_routine(record: logging.LogRecord) -> bool:
    return record.levelno > logging.INFO


def quiet_sdk_chatter() -> None:
    if os.environ.get("LOGLEVEL", "INFO").upper() == "DEBUG":
        return
    sdk = logging.getLogger("plugin")
    if _not_routine not in sdk.filters:
        sdk.addFilter(_not_routine)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
