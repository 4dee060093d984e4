"""The dashboard page's websocket: it joins its plugin's dashboard group and,
on each `dashboard.changed`, renders the figures fragment again and sends it;
htmx's ws extension swaps it in by id (hx-swap-oob), without a reload.

Renders are coalesced: at most one per DASHBOARD_WAKE_SECONDS per page,
however many wake-ups arrive (several processes each send theirs), since
computing the figures costs a few queries over the plugin's items; a wake-up
is followed by a render at once and one more an interval later, and joining
by one render an interval later."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.template.loader import render_to_string

from plugins_app import protocol
from plugins_app.dashboard.figures import UnknownWindow, get_window
from plugins_app.dashboard.views import figures_context
from plugins_app.plugins.models import Plugin
from plugins_app.protocol import DashboardChanged
from plugins_app.web.access import visible_plugins
from plugins_app.web.consumers import GroupWatchConsumer


class DashboardWatchConsumer(GroupWatchConsumer):
    async def connect(self) -> None:
        self.plugin_id = int(self.scope["url_route"]["kwargs"]["plugin_id"])
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.window = query.get("window", ["hour"])[0]
        try:
            get_window(self.window)
        except UnknownWindow:
            await self.close()
            return
        user = self.scope.get("user")
        if not await sync_to_async(_may_watch)(user, self.plugin_id):
            await self.close()
            return
        self.dirty = asyncio.Event()
        await self.watch(protocol.dashboard_group(self.plugin_id), self._push_forever())

    async def dashboard_changed(self, message: DashboardChanged) -> None:
        self.dirty.set()

    async def _push_forever(self) -> None:
        interval = protocol.DASHBOARD_WAKE_SECONDS
        # A wake-up sent just before this page joined reached no one, and so
        # neither did the ones dropped after it: a render an interval after
        # joining shows them. Wake-ups arriving meanwhile keep `dirty` set.
        await asyncio.sleep(interval)
        await self._render()
        await asyncio.sleep(interval)
        while True:
            await self.dirty.wait()
            self.dirty.clear()
            await self._render()
            await asyncio.sleep(interval)
            # Once more: a sender drops the wake-ups asked for within an
            # interval of the one it sent (runs/notify.py), so what they
            # announced, committed by now, shows here. A wake-up that arrived
            # meanwhile keeps `dirty` set: its own two renders follow, the
            # second an interval after it, past the ones dropped after it.
            await self._render()
            await asyncio.sleep(interval)

    async def _render(self) -> None:
        html = await protocol.in_pool(figures_html, self.plugin_id, self.window)
        if html:
            await self.send(text_data=html)


def _may_watch(user: object, plugin_id: int) -> bool:
    return visible_plugins(user).filter(pk=plugin_id).exists()


def figures_html(plugin_id: int, window: str) -> str:
    # On a pool thread no request cycle tidies: drop a broken or expired
    # connection first (a database restart).
    close_old_connections()
    plugin = Plugin.objects.filter(pk=plugin_id).first()
    if plugin is None:  # deleted while watched
        return ""
    context = {**figures_context(plugin, window), "oob": True}
    return render_to_string("dashboard/plugin_dashboard.html#figures", context)
