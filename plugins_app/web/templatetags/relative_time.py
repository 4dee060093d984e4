"""`{{ when|ago }}`: a relative time that reads as people say it. Django's
`timesince` gives "0 minutes" for anything under a minute, which a heartbeat
from two seconds ago always is."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()

JUST_NOW_SECONDS = 60


@register.filter
def ago(value: datetime | None, now: datetime | None = None) -> str:
    if not value:
        return "—"
    now = now or timezone.now()
    if (now - value).total_seconds() < JUST_NOW_SECONDS:
        # Includes a clock a little ahead of ours: still "just now".
        return "just now"
    return f"{timesince(value, now)} ago"
