"""Dashboard views are thin: each an access helper, a form, one service call
and a render. htmx requests get the named partial of the same template."""

from __future__ import annotations

from django.http import HttpRequest


def page_or_partial(request: HttpRequest, template: str, partial: str) -> str:
    """`template`, or its `partial` (`template#partial`) for an htmx request."""
    return f"{template}#{partial}" if getattr(request, "htmx", False) else template
