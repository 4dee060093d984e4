"""A log line's extras (the SDK's `extra=` fields, the hub's own details) as
`key=value` chips, instead of the Python dict repr the run page used to end
its lines with."""

from __future__ import annotations

import json
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString


def _value_text(value: Any) -> str:
    # Strings as they are (no quotes); anything else as compact JSON, which
    # reads the same as the plugin sent it (true/null, not True/None).
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def extras_html(extra: Any) -> SafeString | str:
    if not extra:
        return ""
    if not isinstance(extra, dict):
        return format_html(
            '<span class="extras"><span class="chip">{}</span></span>',
            _value_text(extra),
        )
    chips = format_html_join(
        "",
        '<span class="chip"><b>{}</b>={}</span>',
        ((key, _value_text(value)) for key, value in extra.items()),
    )
    return format_html('<span class="extras">{}</span>', chips)
