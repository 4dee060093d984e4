"""Run logs: plugins' log lines (socket, REST, hosted) with the progress they
report, and the hub's notes about what a plugin did over REST."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeGuard

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from plugins_app.inputs import flat_json_text, json_trimmed
from plugins_app.plugins.models import PluginInstance
from plugins_app.runs.models import (
    Run,
    RunLogLine,
    WorkItem,
)
from plugins_app.runs.notify import HUB, hub_log, notify_after_commit
from plugins_app.workspace.bulk import quoted
from plugins_app.workspace.models import Task


@dataclass(frozen=True)
class PluginLogRecord:
    session: str
    level: str
    message: str
    extra: dict[str, Any]


MAX_LOG_MESSAGE = 20_000


LOG_FIELDS = {"level", "msg", "organization", "pluginId", "runBy", "session"}


def parse_log_event(data: Any) -> PluginLogRecord | None:
    """Read a `log` event; 1.4.x merges `extra` into the top level, 1.3.x nests it."""
    if not isinstance(data, dict) or not isinstance(data.get("session"), str):
        return None
    extra = {k: v for k, v in data.items() if k not in LOG_FIELDS and k != "extra"}
    if isinstance(data.get("extra"), dict):
        extra.update(data["extra"])
    return PluginLogRecord(
        session=data["session"],
        level=str(data.get("level") or "INFO")[:20],
        message=str(data.get("msg", ""))[:MAX_LOG_MESSAGE],
        extra=extra,
    )


def logs_ingest(records: Iterable[PluginLogRecord], *, channel_name: str) -> int:
    """Store a batch of plugin log lines, update progress, push them to watchers.
    Lines for sessions this instance does not hold are dropped (and counted)."""
    records = list(records)
    sessions = sorted({r.session for r in records})
    if not sessions:
        return 0
    # Raw SQL: the ORM spent longer building this lookup than running it, once
    # per flush (20+ a second from a busy plugin).
    with connection.cursor() as cursor:
        cursor.execute(
            _held_sql(connection.vendor, len(sessions)), [channel_name, *sessions]
        )
        held = cursor.fetchall()
    return _logs_store(records, held)


def logs_ingest_hosted(records: Iterable[PluginLogRecord], *, item_id: int) -> int:
    """The same for a hosted handler's lines, sent by the worker running it
    (which holds the item without an instance) while the item is leased."""
    items = WorkItem.objects.filter(pk=item_id, state=WorkItem.State.LEASED)
    return _logs_store(list(records), items.values_list("session", "run_id", "pk"))


def _logs_store(
    records: list[PluginLogRecord], held: Iterable[tuple[str, int, int]]
) -> int:
    """Store the lines of the sessions in `held` (session, run id, item id)."""
    items = {session: (run_id, pk) for session, run_id, pk in held}
    # One line's extra must not cost the batch (NaN fails SQLite's JSON_VALID
    # and would roll back every line with it) nor the run page (a value nested
    # ~1,000 deep recursed past Python's limit on every render).
    rows = []
    progress: dict[int, tuple[int, int]] = {}
    created_at = connection.ops.adapt_datetimefield_value(timezone.now())
    for r in records:
        held_item = items.get(r.session)
        if held_item is None:
            continue
        run_id, item_id = held_item
        level, message = _no_nul(r.level), _no_nul(r.message)
        rows.append(
            (run_id, item_id, level, message, log_extra_json(r.extra), created_at)
        )
        done, total = r.extra.get("progress"), r.extra.get("total")
        if _is_count(done) and _is_count(total):
            progress[run_id] = (int(done), int(total))
    if not rows:
        return len(records)
    with transaction.atomic():
        # A prepared executemany: bulk_create built and compiled a model
        # instance per line (83-103 µs a line against 5-8).
        with connection.cursor() as cursor:
            cursor.executemany(_insert_sql(connection.vendor), rows)
        for run_id, (done, total) in progress.items():
            Run.objects.filter(pk=run_id).update(
                reported_progress=done, reported_total=total
            )
    # Progress only comes with stored lines: one notification per run covers both.
    for run_id in {row[0] for row in rows}:
        notify_after_commit(run_id)
    return len(records) - len(rows)


def log_rows(run_id: int, *, after: int, limit: int) -> list[tuple[Any, ...]]:
    """(id, level, created_at, message, extra) of a run's lines after the id
    `after`, oldest first, at most `limit`: what a watcher is pushed next.
    Raw SQL and values as the database driver returns them (created_at a
    datetime, or SQLite's text of one; extra its JSON text): the ORM's
    converters cost more than rendering the line (web/log_extras.py)."""
    with connection.cursor() as cursor:
        cursor.execute(log_rows_sql(connection.vendor), [run_id, after, limit])
        return cursor.fetchall()


# The raw SQL of the hot paths names tables and columns from the models' meta
# (workspace/bulk.py quoted; values are always parameters); `vendor` keys each
# cache, as a process has one database.
@functools.cache
def log_rows_sql(vendor: str) -> str:
    """log_rows' SELECT (its parameters: the run, `after`, `limit`); a run
    watcher's push sends it with its other reads (web/watch_reads.py)."""
    line = RunLogLine
    names = ("id", "level", "created_at", "message", "extra")
    columns = ", ".join(quoted(line, n) for n in names)
    run, pk = quoted(line, "run"), quoted(line, "id")
    return (
        f"SELECT {columns} FROM {quoted(line)} "  # noqa: S608
        f"WHERE {run} = %s AND {pk} > %s ORDER BY {pk} LIMIT %s"
    )


@functools.cache
def _held_sql(vendor: str, sessions: int) -> str:
    """(session, run id, item id) of the named sessions the instance on a
    channel holds."""
    item, instance = WorkItem, PluginInstance
    places = ", ".join(["%s"] * sessions)
    return (
        f"SELECT w.{quoted(item, 'session')}, w.{quoted(item, 'run')}, "  # noqa: S608
        f"w.{quoted(item, 'id')} FROM {quoted(item)} w JOIN {quoted(instance)} i "
        f"ON i.{quoted(instance, 'id')} = w.{quoted(item, 'instance')} "
        f"WHERE i.{quoted(instance, 'channel_name')} = %s "
        f"AND w.{quoted(item, 'session')} IN ({places})"
    )


@functools.cache
def _insert_sql(vendor: str) -> str:
    names = ("run", "item", "level", "message", "extra", "created_at")
    columns = ", ".join(quoted(RunLogLine, n) for n in names)
    # PostgreSQL takes the extra's JSON text into jsonb with a cast; SQLite
    # keeps JSONField values as that text.
    extra = "%s::jsonb" if vendor == "postgresql" else "%s"
    return (
        f"INSERT INTO {quoted(RunLogLine)} ({columns}) "  # noqa: S608
        f"VALUES (%s, %s, %s, %s, {extra}, %s)"
    )


def log_extra_json(extra: dict[str, Any]) -> str:
    """bounded_log_extra as the JSON text the column stores. A small flat extra
    (the usual kind, or none at all) is dumped as it is: trimming would keep it
    whole, and the walk would cost more than everything else a line costs."""
    text = flat_json_text(
        extra,
        max_depth=settings.HUB_MAX_JSON_DEPTH,
        max_chars=settings.HUB_MAX_LOG_EXTRA_BYTES,
    )
    if text is None:
        text = json.dumps(bounded_log_extra(extra))
    if "\\u0000" in text:
        # PostgreSQL's jsonb refuses \u0000 (and would fail the whole batch).
        text = _NUL_ESCAPE.sub(r"\1\\ufffd", text)
    return text


# A NUL as JSON escapes it: \u0000 after an even number of backslashes (an odd
# number means the backslash itself is escaped and the text is literal).
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _no_nul(text: str) -> str:
    # PostgreSQL text columns refuse NUL; it shows as U+FFFD, as in a browser.
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def bounded_log_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """What of a log line's extra is kept: HUB_MAX_JSON_DEPTH levels and about
    HUB_MAX_LOG_EXTRA_BYTES of JSON; NaN/Infinity as strings. Anything cut is
    marked in place ("…(cut)") and by a `hub_truncated` key."""
    kept, cut = json_trimmed(
        extra,
        max_depth=settings.HUB_MAX_JSON_DEPTH,
        max_chars=settings.HUB_MAX_LOG_EXTRA_BYTES,
    )
    if cut and isinstance(kept, dict):
        kept["hub_truncated"] = (
            "Parts of this extra were cut: over HUB_MAX_JSON_DEPTH levels or "
            "HUB_MAX_LOG_EXTRA_BYTES of JSON."
        )
    return kept


def _is_count(value: object) -> TypeGuard[int | float]:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and 0 <= value < 2**31
    )


def run_count_labeled(run: Run, count: int) -> None:
    """After an import: count the assets that carry this run's pre-label (an
    asset imported twice counts once)."""
    labeled = Task.objects.filter(prelabel_run=run).count()
    Run.objects.filter(pk=run.pk).update(assets_labeled=labeled)
    hub_log(run, f"Imported pre-labels for {count} asset(s).")
    notify_after_commit(run.pk)


def run_log_import_errors(
    run: Run, errors: list[dict[str, Any]], *, total: int
) -> None:
    """Show a refused import in the run log: which records, and why."""
    lines = [
        f"records[{e['index']}] ({e.get('externalId')}): " + "; ".join(e["problems"])
        for e in errors[:20]
    ]
    more = f"\n… and {len(errors) - 20} more" if len(errors) > 20 else ""
    hub_log(
        run,
        f"Refused an import of {total} record(s); nothing was written:\n"
        + "\n".join(lines)
        + more,
        level="ERROR",
    )


def run_log_import_skips(run: Run, skipped: list[dict[str, Any]]) -> None:
    """Show which imported records were kept from their tasks, and why."""
    lines = [f"{s['externalId']}: {s['reason']}" for s in skipped[:20]]
    more = f"\n… and {len(skipped) - 20} more" if len(skipped) > 20 else ""
    hub_log(
        run,
        f"Skipped {len(skipped)} record(s) whose task holds a person's work "
        "(the others were written):\n" + "\n".join(lines) + more,
    )


def run_note(run: Run, message: str, *, error: bool = False) -> None:
    """A line of the hub's own in the run log (what a plugin did over REST)."""
    hub_log(run, message, level="ERROR" if error else HUB)
