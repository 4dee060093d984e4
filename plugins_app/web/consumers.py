"""The browser side: a run page subscribes to its run's group and receives HTML
fragments that htmx's ws extension swaps in by id."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from plugins_app import protocol
from plugins_app.protocol import RunFragment
from plugins_app.web.access import user_can_view_run


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

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def run_fragment(self, message: RunFragment) -> None:
        await self.send(text_data=message["html"])
