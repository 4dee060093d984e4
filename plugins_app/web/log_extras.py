"""A run log's lines as HTML rows, with their extras (the SDK's `extra=`
fields, the hub's own details) as `key=value` chips instead of a Python dict
repr.

Built with f-strings and `html.escape`, not `format_html`: a busy plugin logs
thousands of lines a second and each push renders up to 2,000 of them, where
format_html's per-value SafeString checks cost more than the line's own
database read. html.escape is what django.utils.html.escape calls (the same
five characters escaped); every value from a plugin passes through it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from html import escape
from typing import Any

from django.utils.safestring import SafeString, mark_safe

# (id, level, created_at, message, extra) of a RunLogLine: model values, or
# the database's own as runs.logs.log_rows reads them (created_at as SQLite's
# text, extra as JSON text), which are not converted unless a line shows them.
LogRow = tuple[int, str, datetime | str, str, Any]


def log_rows_html(rows: Iterable[LogRow]) -> SafeString:
    return mark_safe("".join([_row_html(*row) for row in rows]))  # noqa: S308


def _row_html(pk: int, level: str, at: datetime | str, message: str, extra: Any) -> str:
    lvl = escape(level)
    if isinstance(extra, str):  # JSON text; most lines have none
        extra = None if extra == "{}" else json.loads(extra)
    return (
        f'<div class="log-line level-{lvl.lower()}" data-id="{int(pk)}">'
        f'<time>{_time_text(at)}</time><span class="lvl">{lvl}</span>'
        f'<span class="msg">{escape(message)}</span>{extras_html(extra)}</div>'
    )


def _time_text(at: datetime | str) -> str:
    """HH:MM:SS.mmm (UTC), as strftime("%H:%M:%S.%f")[:12] wrote it."""
    if isinstance(at, str):
        # SQLite's text of a datetime, "YYYY-MM-DD HH:MM:SS[.ffffff]", in UTC.
        return f"{at[11:19]}.{at[20:23] or '000'}"
    return f"{at.hour:02d}:{at.minute:02d}:{at.second:02d}.{at.microsecond // 1000:03d}"


def _value_text(value: Any) -> str:
    # Strings as they are (no quotes); anything else as compact JSON, which
    # reads the same as the plugin sent it (true/null, not True/None).
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def extras_html(extra: Any) -> str:
    if not extra:
        return ""
    if not isinstance(extra, dict):
        chips = f'<span class="chip">{escape(_value_text(extra))}</span>'
    else:
        chips = "".join(
            [
                f'<span class="chip"><b>{escape(str(key))}</b>='
                f"{escape(_value_text(value))}</span>"
                for key, value in extra.items()
            ]
        )
    return f'<span class="extras">{chips}</span>'
