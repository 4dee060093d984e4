"""A plugin's dashboard page, its figures fragment (pushed over a websocket as
runs end, polled slowly as a fallback, so the numbers and sparklines move
without a reload) and the admin's alert form."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from plugins_app.dashboard.figures import (
    WINDOWS,
    UnknownWindow,
    get_window,
    plugin_figures,
)
from plugins_app.dashboard.models import AlertRule
from plugins_app.plugins.models import Plugin
from plugins_app.web import access
from plugins_app.web.request_types import AuthenticatedHttpRequest

SPARK_WIDTH, SPARK_HEIGHT = 160, 32
# The page is pushed its figures over a websocket as they change; this poll
# is only the fallback (a socket that dropped, a change nobody announced:
# a run created, a cancellation).
POLL_SECONDS = 30
# (key in figures["series"], title) in the order the page shows them.
SPARKLINES = (
    ("items_per_minute", "Items per minute"),
    ("latency", "Mean latency (s)"),
    ("errors", "Errors"),
    ("timeouts", "Time-outs"),
    ("retries", "Retries"),
)


def sparkline(values: list[float]) -> dict[str, Any]:
    """The points of an inline SVG polyline, scaled to the series' maximum."""
    top = max(values, default=0) or 1
    step = SPARK_WIDTH / max(len(values) - 1, 1)
    points = " ".join(
        f"{n * step:.1f},{SPARK_HEIGHT - 2 - v / top * (SPARK_HEIGHT - 4):.1f}"
        for n, v in enumerate(values)
    )
    return {"points": points, "last": values[-1] if values else 0, "max": top}


def figures_context(plugin: Plugin, window_name: str) -> dict[str, Any]:
    """What the figures fragment renders: for the page, its slow poll and the
    websocket's pushes (dashboard/consumers.py)."""
    figures = plugin_figures(plugin, get_window(window_name))
    return {
        "plugin": plugin,
        "figures": figures,
        "window": window_name,
        "sparklines": [
            {"key": key, "title": title, **sparkline(figures["series"][key])}
            for key, title in SPARKLINES
        ],
        "spark_width": SPARK_WIDTH,
        "spark_height": SPARK_HEIGHT,
        "poll_seconds": POLL_SECONDS,
    }


def _context(plugin: Plugin, window_name: str, user: Any) -> dict[str, Any]:
    return {
        **figures_context(plugin, window_name),
        "windows": list(WINDOWS),
        "alerts": plugin.alerts.all()[:10],
        "rule": AlertRule.objects.filter(plugin=plugin).first(),
        "is_admin": access.is_org_admin(user, plugin.organization_id),
    }


def _render(
    request: AuthenticatedHttpRequest, plugin_id: int, template: str
) -> HttpResponse:
    plugin = access.get_plugin_for_user(request.user, plugin_id)
    try:
        context = _context(plugin, request.GET.get("window", "hour"), request.user)
    except UnknownWindow as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    return render(request, template, context)


@require_GET
@login_required
def plugin_dashboard(request: AuthenticatedHttpRequest, plugin_id: int) -> HttpResponse:
    return _render(request, plugin_id, "dashboard/plugin_dashboard.html")


@require_GET
@login_required
def plugin_dashboard_figures(
    request: AuthenticatedHttpRequest, plugin_id: int
) -> HttpResponse:
    return _render(request, plugin_id, "dashboard/plugin_dashboard.html#figures")


class RuleError(ValueError):
    pass


def _number(data: Any, key: str, name: str, low: float, high: float) -> float | None:
    value = data.get(key)
    # Only an absent or blank field means "not checked": 0 is a bad number.
    if value is None or not str(value).strip():
        return None
    try:
        number = float(value)
    except ValueError:
        raise RuleError(f"{name} must be a number") from None
    if not low <= number <= high:
        raise RuleError(f"{name} must be between {low:g} and {high:g}")
    return number


def alert_rule_save(plugin: Plugin, data: Any, user: Any) -> AlertRule:
    """Set the plugin's thresholds from the form (or the JSON API's fields)."""
    window = str(data.get("window") or "hour")
    if window not in WINDOWS:
        raise RuleError(f"window must be one of {', '.join(WINDOWS)}")
    percent = _number(data, "error_rate_percent", "Error rate", 1, 100)
    minutes = _number(data, "no_instance_minutes", "Minutes", 1, 7 * 24 * 60)
    min_items = _number(data, "min_items", "Minimum items", 1, 10**6)
    rule, _ = AlertRule.objects.get_or_create(plugin=plugin)
    rule.error_rate = percent / 100 if percent is not None else None
    rule.no_instance_minutes = int(minutes) if minutes is not None else None
    rule.min_items = int(min_items or 5)
    rule.window = window
    rule.updated_by = user
    rule.save()
    return rule


@require_POST
@login_required
def plugin_alert_rule(
    request: AuthenticatedHttpRequest, plugin_id: int
) -> HttpResponse:
    plugin = access.get_admin_plugin_for_user(request.user, plugin_id)
    try:
        alert_rule_save(plugin, request.POST, request.user)
    except RuleError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain")
    return redirect("dashboard:plugin-dashboard", plugin.pk)
