"""A plugin's health figures over the last hour, day or week, computed from the
run ledger (WorkItem and Run rows) on each call, so every process and a
restarted hub read the same numbers; nothing is counted in memory.

Every figure is an aggregate the database computes over the plugin's items that
finished in the window (a handful of queries whatever the item count): counts by
state, rates, retries, the latency from lease to answer (p50/p95 by an ordered
offset, which SQLite and PostgreSQL both do) and one conditional count per time
bucket for the sparklines.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import (
    Avg,
    Count,
    F,
    FloatField,
    Func,
    Min,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.functions import Floor
from django.utils import timezone

from plugins_app.plugins.models import Plugin, PluginInstance
from plugins_app.runs.models import Run, WorkItem


@dataclass(frozen=True)
class Window:
    name: str
    span: timedelta
    bucket: timedelta

    @property
    def buckets(self) -> int:
        return int(self.span / self.bucket)


WINDOWS = {
    "hour": Window("hour", timedelta(hours=1), timedelta(minutes=5)),
    "day": Window("day", timedelta(days=1), timedelta(hours=1)),
    "week": Window("week", timedelta(days=7), timedelta(hours=6)),
}
LAST_ERRORS = 10
# Failures that are the plugin's fault (an error it reported, an answer the hub
# refused); time-outs are counted apart, cancellations are a person's choice.
ERRORS = (WorkItem.Failure.ERROR, WorkItem.Failure.INVALID)


class UnknownWindow(ValueError):
    pass


def get_window(name: str) -> Window:
    try:
        return WINDOWS[name]
    except KeyError:
        raise UnknownWindow(
            f"window must be one of {', '.join(WINDOWS)}, not {name[:20]!r}"
        ) from None


class Epoch(Func):
    """Seconds since 1970 of a datetime column, as a float, computed by the
    database (Django's own datetime subtraction on SQLite calls back into
    Python for every row)."""

    output_field = FloatField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # julianday() parses the fractional seconds Django stores.
        return self.as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s) - 2440587.5) * 86400.0)",
            **extra,
        )

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="EXTRACT(EPOCH FROM %(expressions)s)",
            **extra,
        )


def _latency() -> Any:
    return Epoch(F("finished_at")) - Epoch(F("leased_at"))


def finished_items(plugin: Plugin | int, since: datetime) -> QuerySet[WorkItem]:
    return WorkItem.objects.filter(plugin=plugin, finished_at__gte=since).order_by()


def _ended_counts() -> dict[str, Any]:
    """The aggregates over items that ended in a window (per plugin or of one)."""
    failed = Q(state=WorkItem.State.FAILED)
    return {
        "done": Count("pk", filter=Q(state=WorkItem.State.DONE)),
        "skipped": Count("pk", filter=Q(state=WorkItem.State.SKIPPED)),
        "cancelled": Count("pk", filter=Q(state=WorkItem.State.CANCELLED)),
        "failed": Count("pk", filter=failed),
        "errors": Count("pk", filter=failed & Q(failure__in=ERRORS)),
        "timeouts": Count("pk", filter=failed & Q(failure=WorkItem.Failure.TIMEOUT)),
        "retries": Sum(F("attempts") - 1, filter=Q(attempts__gt=1)),
    }


def _rates(
    row: dict[str, Any], window: Window, finished: QuerySet[WorkItem]
) -> dict[str, Any]:
    # Rates over the items that ended on their own (not cancelled by a person).
    ended = row["done"] + row["skipped"] + row["failed"]
    p50, p95 = (
        _latency_percentiles(finished) if row["done"] + row["skipped"] else (None, None)
    )
    return {
        "items_per_minute": round(
            (row["done"] + row["skipped"]) / (window.span.total_seconds() / 60), 4
        ),
        "latency_p50": p50,
        "latency_p95": p95,
        "ended": ended,
        "errors": row["errors"],
        "timeouts": row["timeouts"],
        "error_rate": round(row["errors"] / ended, 4) if ended else 0.0,
        "timeout_rate": round(row["timeouts"] / ended, 4) if ended else 0.0,
        "retries": row["retries"] or 0,
    }


def health_by_plugin(
    window: Window, now: datetime | None = None
) -> dict[int, dict[str, Any]]:
    """The rates of every plugin with an item ended in the window (/metrics):
    one grouped query, then the latency percentiles of those that answered."""
    since = (now or timezone.now()) - window.span
    # Any: django-stubs types values() rows without the annotations' keys.
    rows: Any = (
        WorkItem.objects.filter(finished_at__gte=since)
        .order_by()
        .values("plugin_id")
        .annotate(**_ended_counts())
    )
    return {
        row["plugin_id"]: _rates(row, window, finished_items(row["plugin_id"], since))
        for row in rows
    }


def plugin_figures(
    plugin: Plugin, window: Window, now: datetime | None = None, *, detail: bool = True
) -> dict[str, Any]:
    """Everything the dashboard and the JSON API show for a plugin; without
    `detail` (alert checks), no instance list, last errors or sparkline series."""
    now = now or timezone.now()
    since = now - window.span
    finished = finished_items(plugin, since)
    row = finished.aggregate(**_ended_counts())
    now_row = (
        WorkItem.objects.filter(
            plugin=plugin, state__in=(WorkItem.State.PENDING, WorkItem.State.LEASED)
        )
        .order_by()
        .aggregate(
            pending=Count("pk", filter=Q(state=WorkItem.State.PENDING)),
            leased=Count("pk", filter=Q(state=WorkItem.State.LEASED)),
        )
    )
    runs = dict(
        Run.objects.filter(plugin=plugin, created_at__gte=since)
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"))
    )
    figures = {
        "plugin": plugin.pk,
        "window": window.name,
        "since": since,
        "now": now,
        "in_flight": now_row["leased"],
        "waiting": now_row["pending"],
        "runs": {status: runs.get(status, 0) for status in Run.Status.values},
        "items": {
            "done": row["done"],
            "skipped": row["skipped"],
            "failed": row["failed"],
            "cancelled": row["cancelled"],
            "pending": now_row["pending"],
            "leased": now_row["leased"],
        },
        **_rates(row, window, finished),
    }
    if detail:
        figures["instances"] = live_instances(plugin)
        figures["failing"] = failing_streak(plugin)
        figures["last_errors"] = last_errors(finished)
        figures["series"] = _series(finished, window, now)
    return figures


def live_instances(plugin: Plugin) -> list[dict[str, Any]]:
    instances = (
        PluginInstance.objects.live()
        .filter(plugin=plugin)
        .annotate(
            in_flight=Count("items", filter=Q(items__state=WorkItem.State.LEASED))
        )
        .order_by("connected_at", "pk")
    )
    return [
        {
            "address": i.address,
            "version": i.version,
            "connected_at": i.connected_at,
            "in_flight": i.in_flight,
        }
        for i in instances
    ]


def _latency_percentiles(
    finished: QuerySet[WorkItem],
) -> tuple[float | None, float | None]:
    answered = finished.filter(
        state__in=(WorkItem.State.DONE, WorkItem.State.SKIPPED),
        leased_at__isnull=False,
    ).annotate(latency=_latency())
    count = answered.count()
    if not count:
        return None, None
    ordered = answered.order_by("latency").values_list("latency", flat=True)

    def at(fraction: float) -> float:
        # Nearest rank: the smallest latency at or above `fraction` of them.
        rank = max(1, -(-int(fraction * 100) * count // 100))
        return round(float(ordered[rank - 1]), 3)

    return at(0.5), at(0.95)


def failing_streak(plugin: Plugin) -> dict[str, Any] | None:
    """ "Since when is it failing?": the items that failed (an error, an
    invalid answer, a time-out; not a person's cancellation) since the
    plugin's last answered one, whatever the window: when the first of them
    ended, how many, and its run. None while the last item that ended was
    answered. Read from the ledger, so a restarted hub tells the same; through
    the (plugin, finished_at) index, newest first, it reads the streak only."""
    ended = WorkItem.objects.filter(plugin=plugin, finished_at__isnull=False)
    last_answer = (
        ended.filter(state__in=(WorkItem.State.DONE, WorkItem.State.SKIPPED))
        .order_by("-finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    failed = ended.filter(state=WorkItem.State.FAILED).exclude(
        failure=WorkItem.Failure.CANCELLED
    )
    if last_answer is not None:
        failed = failed.filter(finished_at__gt=last_answer)
    first = failed.order_by("finished_at", "pk").values("pk", "run_id").first()
    if first is None:
        return None
    row = failed.order_by().aggregate(
        since=Min("finished_at"),
        items=Count("pk"),
        errors=Count("pk", filter=Q(failure__in=ERRORS)),
        timeouts=Count("pk", filter=Q(failure=WorkItem.Failure.TIMEOUT)),
    )
    return {
        **row,
        "first_run": first["run_id"],
        "first_item": first["pk"],
        "last_answer_at": last_answer,
    }


def last_errors(finished: QuerySet[WorkItem]) -> list[dict[str, Any]]:
    rows = (
        finished.filter(state=WorkItem.State.FAILED)
        .exclude(failure=WorkItem.Failure.CANCELLED)
        .order_by("-finished_at", "-pk")
        .values("pk", "run_id", "failure", "error", "finished_at")[:LAST_ERRORS]
    )
    return [
        {
            "item": r["pk"],
            "run": r["run_id"],
            "failure": r["failure"],
            "error": r["error"][:300],
            "at": r["finished_at"],
        }
        for r in rows
    ]


def _series(
    finished: QuerySet[WorkItem], window: Window, now: datetime
) -> dict[str, list[float]]:
    """Per time bucket, oldest first: items answered per minute, errors,
    time-outs, retries and the mean latency. One query grouped by the bucket's
    number, computed by the database from the end time."""
    start = (now - window.span).timestamp()
    width = window.bucket.total_seconds()
    answered = Q(state__in=(WorkItem.State.DONE, WorkItem.State.SKIPPED))
    rows = (
        finished.filter(finished_at__lte=now)
        .annotate(bucket=Floor((Epoch(F("finished_at")) - start) / width))
        .values("bucket")
        .annotate(
            answered=Count("pk", filter=answered),
            errors=Count(
                "pk", filter=Q(state=WorkItem.State.FAILED, failure__in=ERRORS)
            ),
            timeouts=Count(
                "pk",
                filter=Q(state=WorkItem.State.FAILED, failure=WorkItem.Failure.TIMEOUT),
            ),
            retries=Sum(F("attempts") - 1, filter=Q(attempts__gt=1)),
            latency=Avg(_latency(), filter=answered & Q(leased_at__isnull=False)),
        )
        .order_by()
    )
    count = window.buckets
    series: dict[str, list[float]] = {
        key: [0.0] * count
        for key in ("items_per_minute", "errors", "timeouts", "retries", "latency")
    }
    minutes = width / 60
    for row in rows:
        n = min(max(int(row["bucket"]), 0), count - 1)
        series["items_per_minute"][n] = round(row["answered"] / minutes, 3)
        series["errors"][n] = row["errors"]
        series["timeouts"][n] = row["timeouts"]
        series["retries"][n] = row["retries"] or 0
        series["latency"][n] = round(row["latency"] or 0.0, 3)
    return series
