"""Django's PostgreSQL backend, with a health check that asks the socket, not
the server.

With CONN_HEALTH_CHECKS, Django checks a kept connection before its first
query after every request, every `close_old_connections()` and every
`close_if_unusable_or_obsolete()` (protocol.in_pool and run_later after each
call, the run watcher before each push): `SELECT 1`, a round trip to the
server. The hub made 3-4 of them per run, each a wake-up of a PostgreSQL
backend on the same few cores, for an answer that is "yes" but after a
restart of the database.

A server that ends a connection (a restart, `pg_terminate_backend`, an idle
timeout) says so on its socket: a FATAL error message and the end of the
stream. So an idle connection whose socket has nothing to read is as good as
`SELECT 1` would find it, and one with something to read gets the full check
(which then fails and Django reconnects). The same holds for a connection in
a transaction, but Django never checks those (it only checks between
transactions); they keep Django's own check.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg import pq

_IDLE = pq.TransactionStatus.IDLE
_OK = pq.ConnStatus.OK


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        conn = self.connection
        if conn is None or conn.closed or conn.broken:
            return False
        pgconn = conn.pgconn
        if pgconn.status != _OK:
            return False
        if pgconn.transaction_status != _IDLE:
            return bool(super().is_usable())
        if _has_something_to_read(pgconn.socket):
            return bool(super().is_usable())
        return True


def _has_something_to_read(fd: int) -> bool:
    """True when the server sent something unasked (an idle connection's
    server only does so to end it) or the socket is in error."""
    poller = select.poll()  # not select.select: it fails on fds over 1023
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))
