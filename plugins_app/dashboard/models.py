"""Alert thresholds an admin sets on a plugin, and the alerts raised from them
(dashboard/alerts.py checks them periodically)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from plugins_app.plugins.models import Plugin


class AlertRule(models.Model):
    """One per plugin; a threshold left empty is not checked."""

    class Window(models.TextChoices):
        HOUR = "hour", "last hour"
        DAY = "day", "last day"
        WEEK = "week", "last week"

    plugin = models.OneToOneField(
        Plugin, on_delete=models.CASCADE, related_name="alert_rule"
    )
    # Raised when errors / items that ended, over the window, reach this (0-1).
    error_rate = models.FloatField(null=True, blank=True)
    window = models.CharField(max_length=10, choices=Window, default=Window.HOUR)
    # A rate over two items says little: below this many ended items, no alert.
    min_items = models.PositiveIntegerField(default=5)
    # Raised when items have waited this long with no live instance.
    no_instance_minutes = models.PositiveIntegerField(null=True, blank=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"alert rule of {self.plugin}"


class Alert(models.Model):
    class Kind(models.TextChoices):
        ERROR_RATE = "error_rate", "Error rate"
        NO_INSTANCE = "no_instance", "No live instance"

    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=20, choices=Kind)
    message = models.TextField()
    raised_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            # Raising is idempotent however often (and wherever) the check runs.
            models.UniqueConstraint(
                fields=["plugin", "kind"],
                condition=models.Q(cleared_at__isnull=True),
                name="one_open_alert_per_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} alert on {self.plugin}"
