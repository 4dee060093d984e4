"""ASGI entry point: Django over HTTP (with a shorter door for POST /api/runs
by token), the plugin socket and the run watchers over websockets, and a
lifespan handler that starts the outbox drain."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "plugins_app.settings")
django_asgi_app = get_asgi_application()

# Imported after Django is set up.
from asgiref.sync import sync_to_async  # noqa: E402
from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from plugins_app import db_threads, protocol  # noqa: E402
from plugins_app.dashboard.consumers import DashboardWatchConsumer  # noqa: E402
from plugins_app.runs.instances import instances_forget_all  # noqa: E402
from plugins_app.web.api.fast_create import FastCreate  # noqa: E402
from plugins_app.web.consumers import RunWatchConsumer  # noqa: E402
from plugins_app.wire import senders  # noqa: E402
from plugins_app.wire.consumer import PluginSocketConsumer  # noqa: E402
from plugins_app.wire.outbox import drain_outbox_forever  # noqa: E402

# The two type: ignores: django-stubs types path() for Django views only and
# types-channels wants URLRouter's routes to be a stub-only pattern class, while
# Channels routes consumers with django.urls.path, as its docs do.
websocket_urlpatterns = [
    # Plugins are not browsers and authenticate by secret: no origin check here
    # (the client sends the Origin of whatever HOST it was given).
    path("socket.io/", PluginSocketConsumer.as_asgi()),  # type: ignore[arg-type]
    path(
        "ws/runs/<int:run_id>/",
        AllowedHostsOriginValidator(AuthMiddlewareStack(RunWatchConsumer.as_asgi())),
    ),
    path(
        "ws/plugins/<int:plugin_id>/dashboard/",
        AllowedHostsOriginValidator(
            AuthMiddlewareStack(DashboardWatchConsumer.as_asgi())
        ),
    ),
]

# POST /api/runs by token skips Django's handler; every other http call (and
# that one with HUB_FAST_CREATE=0) is Django's (web/api/fast_create.py).
http_app = FastCreate(django_asgi_app)
router = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": URLRouter(websocket_urlpatterns),  # type: ignore[arg-type]
    }
)
# Persistent connections for the long-lived threads, none left behind by the
# per-request ones.
db_threads.install()


async def application(
    scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
    else:
        await router(scope, receive, send)


async def _lifespan(receive: Any, send: Any) -> None:
    drain: asyncio.Task[None] | None = None
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            # This process's loop: run_later, in_pool, and the sender of its
            # channel messages (wire/senders.py, LoopSender).
            protocol.mark_asgi_process(asyncio.get_running_loop())
            if settings.CHANNEL_LAYER_IS_PROCESS_LOCAL:
                # The only ASGI process: sockets of a previous one are gone.
                await sync_to_async(instances_forget_all)()
                drain = asyncio.create_task(drain_outbox_forever())
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if drain:
                drain.cancel()
            await senders.flush()
            protocol.mark_asgi_process(None)
            await send({"type": "lifespan.shutdown.complete"})
            return
