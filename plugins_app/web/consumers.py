"""The browser side: a run page subscribes to its run's group. On each
`run.changed` it reads what is new since its cursor (log lines, status) and
sends HTML fragments that htmx's ws extension swaps in by id."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import close_old_connections

from plugins_app import protocol
from plugins_app.inputs import parse_id
from plugins_app.protocol import RunChanged
from plugins_app.web.access import user_can_view_run
from plugins_app.web.fragments import RunUpdate, gallery_update, run_update

log = logging.getLogger(__name__)


class GroupWatchConsumer(AsyncWebsocketConsumer):
    """A page's socket that joins one group and runs a pusher task (the run
    page's, the plugin dashboard's): left and cancelled on disconnect. A
    pusher that fails is logged and its socket closed: left open, the page
    waited for pushes that never came, and nothing said why."""

    async def watch(self, group: str, pusher: Coroutine[Any, Any, None]) -> None:
        self.group = group
        await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        self.pusher = asyncio.create_task(pusher)
        self.pusher.add_done_callback(self._pusher_ended)

    def _pusher_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        log.error(
            "the pusher of %s failed; closing its socket",
            self.group,
            exc_info=task.exception(),
        )
        # Kept: the loop holds only a weak reference to a task.
        self.closing = asyncio.ensure_future(self.close(code=1011))  # "internal error"

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if hasattr(self, "pusher"):
            self.pusher.cancel()


class RunWatchConsumer(GroupWatchConsumer):
    status_shown: object = None  # what the last push's status was made from
    gallery_shown: object = None  # the same for the gallery

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Not super().dispatch: it hops to the database thread before every
        # message to close "old" connections (with CONN_MAX_AGE=0, every one:
        # 105 reopenings in a 20,000-line burst), though `run_changed` only sets
        # a flag. The push does its database work in `_next_update`, which
        # drops a broken or expired connection first.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        user = self.scope.get("user")
        if not await sync_to_async(user_can_view_run)(user, self.run_id):
            await self.close()
            return
        # The page rendered the lines up to `after`; everything since — including
        # what happened before we joined the group — comes from the cursor.
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        after = query.get("after", ["0"])[0]
        self.cursor = parse_id(after) or 0
        self.dirty = asyncio.Event()
        self.dirty.set()
        await self.watch(protocol.run_group(self.run_id), self._push_forever())

    async def run_changed(self, message: RunChanged) -> None:
        # Coalesce: a burst of changes becomes one read and one push.
        self.dirty.set()

    async def _push_forever(self) -> None:
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            # On a pool thread (protocol.in_pool), not the process's database
            # thread: a push only reads, and queued behind the answers, logs
            # and dispatches there, it waited for them to be seen.
            update = await protocol.in_pool(
                _next_update, self.run_id, self.cursor, self.status_shown
            )
            self.cursor, self.status_shown = update.cursor, update.status_shown
            if update.html:
                await self.send(text_data=update.html)
            if update.status_changed:
                # The gallery follows in a frame of its own (fragments.py).
                html, self.gallery_shown = await protocol.in_pool(
                    _gallery_update, self.run_id, self.gallery_shown
                )
                if html:
                    await self.send(text_data=html)
            if update.more:
                self.dirty.set()


def _next_update(run_id: int, cursor: int, status_shown: object) -> RunUpdate:
    # On a thread no request cycle tidies: a connection that broke (a database
    # restart) or outlived CONN_MAX_AGE is dropped here (without a pool
    # thread, in tests, in_pool runs this on asgiref's).
    close_old_connections()
    return run_update(run_id, after=cursor, status_shown=status_shown)


def _gallery_update(run_id: int, shown: object) -> tuple[str, object]:
    return gallery_update(run_id, shown=shown)
