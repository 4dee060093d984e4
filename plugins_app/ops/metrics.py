"""`GET /metrics`: Prometheus metrics, read from the database on each scrape.

They name every organization's plugins, so they need `HUB_METRICS_TOKEN` as a
bearer token; without one (allowed in the embedded mode and with DEBUG only,
see settings.py) they are served to loopback clients only.

The database is the source of truth for runs, so every process (and every
replica) reports the same numbers, and a fresh `CollectorRegistry` per request
keeps the answer independent of this process's history.

`pluginhub_dispatch_latency_seconds` is a snapshot of the last hour (how long
items leased in that hour waited for an instance), not a counter that only
grows: read it directly, not through `rate()`, e.g.
`histogram_quantile(0.95, pluginhub_dispatch_latency_seconds_bucket)`.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from plugins_app.dashboard.figures import WINDOWS, health_by_plugin
from plugins_app.dashboard.models import Alert
from plugins_app.plugins.models import FailedHeartbeat, Plugin, PluginInstance
from plugins_app.runs.models import Run, WorkItem

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LATENCY_WINDOW = timedelta(hours=1)


@require_safe
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if denied := _check_token(request):
        return denied
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector())
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(registry), content_type=content_type)


def _check_token(request: HttpRequest) -> HttpResponse | None:
    token: str = settings.HUB_METRICS_TOKEN
    if not token:
        # Only the embedded hub (or DEBUG) runs without a token (settings.py):
        # then only this machine may read every organization's plugin names.
        if _is_loopback(request.META.get("REMOTE_ADDR", "")):
            return None
        return HttpResponse(
            "metrics are served to loopback clients only; set HUB_METRICS_TOKEN "
            "to scrape from elsewhere\n",
            status=403,
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        response = HttpResponse("bearer token required\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return HttpResponse("wrong token\n", status=403)
    return None


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # no client address (a Unix socket) or garbage
        return False


class HubCollector:
    """Builds every metric from the database when the registry collects."""

    def collect(self) -> Iterator[Metric]:
        yield self._runs()
        yield from self._work_items()
        yield self._connected_instances()
        yield CounterMetricFamily(
            "pluginhub_failed_heartbeats",
            "Heartbeats refused for a wrong plugin id or secret (stored rows).",
            value=FailedHeartbeat.objects.count(),
        )
        yield self._dispatch_latency()
        yield from self._plugin_health()

    def _runs(self) -> Metric:
        gauge = GaugeMetricFamily(
            "pluginhub_runs", "Runs by status.", labels=["status"]
        )
        counts = _count_by(Run.objects.all(), "status")
        for status in Run.Status.values:
            gauge.add_metric([status], counts.get(status, 0))
        return gauge

    def _work_items(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "pluginhub_work_items", "Work items by state.", labels=["state"]
        )
        counts = _count_by(WorkItem.objects.all(), "state")
        for state in WorkItem.State.values:
            gauge.add_metric([state], counts.get(state, 0))
        yield gauge
        yield GaugeMetricFamily(
            "pluginhub_items_in_flight",
            "Work items leased to an instance right now.",
            value=counts.get(WorkItem.State.LEASED, 0),
        )

    def _connected_instances(self) -> Metric:
        gauge = GaugeMetricFamily(
            "pluginhub_connected_instances",
            "Live instances per plugin.",
            labels=["plugin", "name"],
        )
        live = _count_by(PluginInstance.objects.live(), "plugin_id")
        # Every plugin, so "no instance connected" is a 0 an alert can match.
        for pk, public_id, name in Plugin.objects.values_list(
            "pk", "public_id", "name"
        ).order_by("public_id"):
            gauge.add_metric([public_id, name], live.get(pk, 0))
        return gauge

    def _dispatch_latency(self) -> Metric:
        recent = WorkItem.objects.filter(
            leased_at__gte=timezone.now() - LATENCY_WINDOW
        ).annotate(
            wait=ExpressionWrapper(
                F("leased_at") - F("queued_at"), output_field=DurationField()
            )
        )
        # One query: a conditional count per bucket, summed by the database.
        buckets = {
            f"le_{i}": Count("pk", filter=Q(wait__lte=timedelta(seconds=bound)))
            for i, bound in enumerate(LATENCY_BUCKETS)
        }
        row = recent.aggregate(total=Count("pk"), wait_sum=Sum("wait"), **buckets)
        cumulative = [
            (floatToGoString(bound), row[f"le_{i}"])
            for i, bound in enumerate(LATENCY_BUCKETS)
        ]
        cumulative.append(("+Inf", row["total"]))
        wait_sum: timedelta | None = row["wait_sum"]
        return HistogramMetricFamily(
            "pluginhub_dispatch_latency_seconds",
            "How long work items leased in the last hour waited for an instance.",
            buckets=cumulative,
            sum_value=wait_sum.total_seconds() if wait_sum else 0.0,
        )

    def _plugin_health(self) -> Iterator[Metric]:
        """The dashboard's figures over the last hour, per plugin (dashboard/
        figures.py: the same aggregates, so the page and Prometheus agree)."""
        labels = ["plugin", "name"]
        families = {
            key: GaugeMetricFamily(f"pluginhub_plugin_{key}", help_text, labels=labels)
            for key, help_text in (
                ("items_per_minute", "Items answered per minute, last hour."),
                ("error_rate", "Items failed with an error / items ended, last hour."),
                ("timeout_rate", "Items timed out / items ended, last hour."),
                ("retries", "Extra attempts of items ended in the last hour."),
                ("open_alerts", "Alerts raised and not cleared."),
            )
        }
        latency = GaugeMetricFamily(
            "pluginhub_plugin_latency_seconds",
            "Lease-to-answer latency of items answered in the last hour.",
            labels=[*labels, "quantile"],
        )
        alerts = _count_by(Alert.objects.filter(cleared_at__isnull=True), "plugin_id")
        health = health_by_plugin(WINDOWS["hour"])
        # Every plugin, so "nothing ended this hour" is a 0 an alert can match.
        for pk, public_id, name in Plugin.objects.values_list(
            "pk", "public_id", "name"
        ).order_by("public_id"):
            figures = health.get(pk, {})
            names = [public_id, name]
            for key, family in families.items():
                if key == "open_alerts":
                    family.add_metric(names, alerts.get(pk, 0))
                else:
                    family.add_metric(names, figures.get(key, 0))
            for quantile, key in (("0.5", "latency_p50"), ("0.95", "latency_p95")):
                if figures.get(key) is not None:
                    latency.add_metric([*names, quantile], figures[key])
        yield from families.values()
        yield latency


def _count_by(queryset: Any, field: str) -> dict[Any, int]:
    rows = queryset.order_by().values_list(field).annotate(n=Count("pk"))
    return dict(rows)
