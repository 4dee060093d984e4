from __future__ import annotations

from collections.abc import Iterable

from django import template
from django.utils.safestring import SafeString

from plugins_app.runs.models import RunLogLine
from plugins_app.web.fragments import log_lines_html

register = template.Library()


@register.simple_tag
def log_lines(lines: Iterable[RunLogLine]) -> SafeString:
    return log_lines_html(lines)
