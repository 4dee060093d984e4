from __future__ import annotations

from django.urls import path

from plugins_app.ops.health import healthz
from plugins_app.ops.metrics import metrics

app_name = "ops"
urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
]
