"""`GET /api/plugins/{id}/dashboard`: the dashboard's figures in the JSON API,
a router mounted on the hub's NinjaAPI (plugins_app/urls.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Router, Schema
from ninja.errors import HttpError

from plugins_app.dashboard.figures import UnknownWindow, get_window, plugin_figures
from plugins_app.dashboard.models import AlertRule
from plugins_app.dashboard.views import RuleError, alert_rule_save
from plugins_app.web import access
from plugins_app.web.api import DbId
from plugins_app.web.request_types import AuthenticatedHttpRequest

router = Router(tags=["plugins"])


class InstanceOut(Schema):
    address: str
    version: str
    connected_at: datetime
    in_flight: int


class ErrorOut(Schema):
    item: int
    run: int
    failure: str
    error: str
    at: datetime


class FailingOut(Schema):
    # The current streak of failed items (docs/api.md): since the first of
    # them ended, after the last answered item (null if none ever was).
    since: datetime
    items: int
    errors: int
    timeouts: int
    first_run: int
    first_item: int
    last_answer_at: datetime | None


class DashboardOut(Schema):
    plugin: int
    window: str
    since: datetime
    now: datetime
    instances: list[InstanceOut]
    in_flight: int
    waiting: int
    runs: dict[str, int]
    items: dict[str, int]
    items_per_minute: float
    latency_p50: float | None
    latency_p95: float | None
    # Items that ended on their own (done, skipped, failed): the rates' base.
    ended: int
    errors: int
    timeouts: int
    error_rate: float
    timeout_rate: float
    retries: int
    last_errors: list[ErrorOut]
    # Null while the last item that ended was answered.
    failing: FailingOut | None
    # Per time bucket, oldest first (see docs/api.md).
    series: dict[str, list[float]]
    open_alerts: list[str]


@router.get("/{plugin_id}/dashboard", response=DashboardOut)
def plugin_dashboard(
    request: AuthenticatedHttpRequest, plugin_id: DbId, window: str = "hour"
) -> dict[str, Any]:
    plugin = access.get_plugin_for_user(request.user, plugin_id)
    try:
        chosen = get_window(window)
    except UnknownWindow as exc:
        raise HttpError(400, str(exc)) from None
    figures = plugin_figures(plugin, chosen)
    figures["open_alerts"] = list(
        plugin.alerts.filter(cleared_at__isnull=True).values_list("message", flat=True)
    )
    return figures


class AlertRuleIn(Schema):
    # Empty (null) thresholds are not checked (docs/admin-guide.md).
    error_rate_percent: float | None = None
    window: str = "hour"
    min_items: int = 5
    no_instance_minutes: int | None = None


class AlertRuleOut(Schema):
    error_rate_percent: float | None
    window: str
    min_items: int
    no_instance_minutes: int | None


def rule_out(rule: AlertRule) -> dict[str, Any]:
    rate = rule.error_rate
    return {
        "error_rate_percent": round(rate * 100, 4) if rate is not None else None,
        "window": rule.window,
        "min_items": rule.min_items,
        "no_instance_minutes": rule.no_instance_minutes,
    }


@router.put("/{plugin_id}/alert-rule", response=AlertRuleOut)
def set_alert_rule(
    request: AuthenticatedHttpRequest, plugin_id: DbId, payload: AlertRuleIn
) -> dict[str, Any]:
    plugin = access.get_plugin_for_user(request.user, plugin_id)
    if not access.is_org_admin(request.user, plugin.organization_id):
        raise HttpError(403, "Only admins set alert thresholds")
    try:
        rule = alert_rule_save(plugin, payload.model_dump(), request.user)
    except RuleError as exc:
        raise HttpError(400, str(exc)) from None
    return rule_out(rule)
