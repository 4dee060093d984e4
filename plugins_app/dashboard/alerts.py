"""Checking each plugin's alert thresholds: raise an alert (and e-mail the
organization's admins once) when a condition holds, clear it when it no longer
does. Run by Celery beat (dashboard/tasks.py) every HUB_ALERT_CHECK_SECONDS."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Min, QuerySet
from django.utils import timezone

from plugins_app.dashboard.figures import get_window, plugin_figures
from plugins_app.dashboard.models import Alert, AlertRule
from plugins_app.plugins.models import Plugin, PluginInstance
from plugins_app.runs.models import WorkItem
from plugins_app.workspace.models import Membership

log = logging.getLogger(__name__)


def open_alerts() -> QuerySet[Alert]:
    return Alert.objects.filter(cleared_at__isnull=True)


def alerts_check(now: datetime | None = None) -> dict[str, int]:
    now = now or timezone.now()
    raised = cleared = 0
    rules = AlertRule.objects.select_related("plugin__organization")
    for rule in rules:
        for kind, message in _conditions(rule, now).items():
            if message:
                raised += _raise(rule.plugin, kind, message, now)
            else:
                cleared += (
                    open_alerts()
                    .filter(plugin=rule.plugin, kind=kind)
                    .update(cleared_at=now)
                )
    # A rule deleted (or a threshold emptied) clears what it had raised.
    cleared += (
        open_alerts().exclude(plugin__alert_rule__in=rules).update(cleared_at=now)
    )
    return {"raised": raised, "cleared": cleared}


def _conditions(rule: AlertRule, now: datetime) -> dict[str, str]:
    """Per alert kind: why it holds now ("" when it does not)."""
    found = {Alert.Kind.ERROR_RATE.value: "", Alert.Kind.NO_INSTANCE.value: ""}
    if rule.error_rate is not None:
        figures = plugin_figures(
            rule.plugin, get_window(rule.window), now, detail=False
        )
        ended, errors = figures["ended"], figures["errors"]
        if ended >= max(rule.min_items, 1) and errors / ended >= rule.error_rate:
            found[Alert.Kind.ERROR_RATE] = (
                f"{errors} of {ended} items failed with an error over the "
                f"{rule.get_window_display()} ({errors / ended:.0%}; threshold "
                f"{rule.error_rate:.0%})."
            )
    if rule.no_instance_minutes is not None:
        live = PluginInstance.objects.live().filter(plugin=rule.plugin).exists()
        oldest = (
            WorkItem.objects.filter(plugin=rule.plugin, state=WorkItem.State.PENDING)
            .order_by()
            .aggregate(at=Min("queued_at"))["at"]
        )
        limit = timedelta(minutes=rule.no_instance_minutes)
        if not live and oldest is not None and now - oldest >= limit:
            found[Alert.Kind.NO_INSTANCE] = (
                f"No instance is connected and items have waited since "
                f"{oldest:%Y-%m-%d %H:%M} UTC (threshold {rule.no_instance_minutes} "
                "min)."
            )
    return found


def _raise(plugin: Plugin, kind: str, message: str, now: datetime) -> int:
    try:
        with transaction.atomic():
            alert, created = Alert.objects.get_or_create(
                plugin=plugin,
                kind=kind,
                cleared_at=None,
                defaults={"message": message, "raised_at": now},
            )
    except IntegrityError:  # another checker raised it at the same moment
        return 0
    if not created:
        return 0
    transaction.on_commit(lambda: _mail_admins(alert))
    return 1


def _mail_admins(alert: Alert) -> None:
    plugin = alert.plugin
    recipients = list(
        Membership.objects.filter(
            organization_id=plugin.organization_id, role=Membership.Role.ADMIN
        )
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )
    if not recipients:
        return
    try:
        send_mail(
            f"[Plugin Hub] {alert.get_kind_display()}: {plugin.name}",
            f"{alert.message}\n\nRaised at {alert.raised_at:%Y-%m-%d %H:%M:%S} UTC. "
            "The plugin's dashboard shows its figures; the alert clears by itself "
            "when the condition no longer holds.",
            settings.DEFAULT_FROM_EMAIL,
            recipients,
        )
    except OSError:
        # A mail server down must not stop the checks; the banner still shows.
        log.exception("alert mail for plugin %s not sent", plugin.public_id)
