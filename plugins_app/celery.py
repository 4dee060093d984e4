from __future__ import annotations

import os

from celery import Celery

from plugins_app import broker

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "plugins_app.settings")

broker.install()  # atomic message files for the embedded filesystem broker
app = Celery("plugins_app")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(
    ["plugins_app.runs", "plugins_app.hosted", "plugins_app.exports"]
)
