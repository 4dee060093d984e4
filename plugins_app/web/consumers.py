"""The browser side: a run page subscribes to its run's group and receives HTML
fragments that htmx's ws extension swaps in by id."""

from __future__ import annotations

from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from plugins_app import protocol
from plugins_app.protocol import RunFragment
from plugins_app.web.access import user_can_view_run
from plugins_app.web.fragments import render_catch_up


class RunWatchConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        user = self.scope.get("user")
        if not await sync_to_async(user_can_view_run)(user, self.run_id):
            await self.close()
            return
        self.group = protocol.run_group(self.run_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        # What happened between rendering the page and joining the group would
        # otherwise be lost; joining first means a line may come twice, and the
        # page drops repeats by their data-id (static/js/hub.js).
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        after = query.get("after", ["0"])[0]
        html = await sync_to_async(render_catch_up)(
            self.run_id, after=int(after) if after.isdigit() else 0
        )
        await self.send(text_data=html)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def run_fragment(self, message: RunFragment) -> None:
        await self.send(text_data=message["html"])
