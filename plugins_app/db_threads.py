"""Database connections and the threads that hold them, in the ASGI process.

Django keeps a thread's connection for CONN_MAX_AGE seconds. That pays where a
thread lives as long as the process: Channels' database thread, the pool of
`protocol.run_later`, the pong saver (and a Celery worker's process). Django's
ASGI handler, though, serves every HTTP request on a thread of its own that
ends with the request, and its `request_finished` handler keeps that thread's
connection open all the same: nothing would close it but the garbage collector,
whenever it gets round to it (Django ticket #33497) — open files with SQLite,
server sessions with PostgreSQL. So at the end of each ASGI request the
request's connections are closed, as CONN_MAX_AGE=0 did.
"""

from __future__ import annotations

from typing import Any

from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_finished
from django.db import connections


def close_request_connections(**kwargs: Any) -> None:
    for conn in connections.all(initialized_only=True):
        # Never inside an atomic block: that is a test's transaction around
        # the whole request, which closing would break.
        if not conn.in_atomic_block:
            conn.close()


def install() -> None:
    """Close each ASGI request's connections when it finishes (the signal comes
    on the request's own thread)."""
    request_finished.connect(
        close_request_connections,
        sender=ASGIHandler,
        dispatch_uid="plugins_app.db_threads.close_request_connections",
    )
