"""The runs list's `status` filter, checked: an unknown value is a clear
message naming the valid ones, not a filter that is silently dropped (the
page) or silently matches nothing (the JSON API)."""

from __future__ import annotations

from plugins_app.runs.models import Run


def unknown_status_message(status: str) -> str:
    """'' when `status` is empty or a run status, else the message to show."""
    if not status or status in Run.Status.values:
        return ""
    valid = ", ".join(Run.Status.values)
    return f"Unknown status {status!r}. Valid statuses: {valid}."
