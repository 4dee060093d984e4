"""The browser side: a run page subscribes to its run's group. On each
`run.changed` it reads what is new since its cursor (log lines, status) and
sends HTML fragments that htmx's ws extension swaps in by id."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from plugins_app import protocol
from plugins_app.inputs import parse_id
from plugins_app.protocol import RunChanged
from plugins_app.web.access import user_can_view_run
from plugins_app.web.fragments import render_run_updates


class RunWatchConsumer(AsyncWebsocketConsumer):
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
        self.group = protocol.run_group(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.dirty.set()
        self.pusher = asyncio.create_task(self._push_forever())

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if hasattr(self, "pusher"):
            self.pusher.cancel()

    async def run_changed(self, message: RunChanged) -> None:
        # Coalesce: a burst of changes becomes one read and one push.
        self.dirty.set()

    async def _push_forever(self) -> None:
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            html, self.cursor, more = await sync_to_async(render_run_updates)(
                self.run_id, after=self.cursor
            )
            await self.send(text_data=html)
            if more:
                self.dirty.set()
