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

# What log_rows_html reads of a RunLogLine, in order (a values_list).
LOG_ROW_FIELDS = ("id", "level", "created_at", "message", "extra")
LogRow = tuple[int, str, datetime, str, Any]


def log_rows_html(rows: Iterable[LogRow]) -> SafeString:
    return mark_safe("".join([_row_html(*row) for row in rows]))  # noqa: S308


def _row_html(pk: int, level: str, at: datetime, message: str, extra: Any) -> str:
    # HH:MM:SS.mmm, as strftime("%H:%M:%S.%f")[:12] wrote it, at a third of the cost.
    time = f"{at.hour:02d}:{at.minute:02d}:{at.second:02d}.{at.microsecond // 1000:03d}"
    lvl = escape(level)
    return (
        f'<div class="log-line level-{lvl.lower()}" data-id="{int(pk)}">'
        f'<time>{time}</time><span class="lvl">{lvl}</span>'
        f'<span class="msg">{escape(message)}</span>{extras_html(extra)}</div>'
    )


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
