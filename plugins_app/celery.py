from __future__ import annotations

import os

from celery import Celery

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
