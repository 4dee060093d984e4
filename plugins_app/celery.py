from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_init, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "plugins_app.settings")

app = Celery("plugins_app")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(
    [
        "plugins_app.runs",
        "plugins_app.hosted",
        "plugins_app.exports",
        "plugins_app.evaluation",
        "plugins_app.dashboard",
    ]
)


@worker_init.connect
@worker_process_init.connect
def choose_sender(**_: object) -> None:
    """A worker sends its channel messages without an ASGI loop: to the outbox
    (embedded) or on a private loop to Redis (wire/senders.py). worker_init is
    the solo pool's process, worker_process_init each forked child's."""
    from plugins_app.wire import senders

    senders.choose(None)
