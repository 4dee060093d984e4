"""Dialogs that are also pages: the same form fragment is loaded by htmx into
the layout's <dialog>, and, when its URL is opened directly (a bookmark, a new
tab, no JavaScript), rendered inside the layout with navigation instead of as
a raw, unstyled fragment."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django_htmx.http import HttpResponseClientRedirect

PAGE = "web/dialog_page.html"


def render_dialog(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    title: str,
    back: str = "",
    status: int = 200,
) -> HttpResponse:
    """`template` (a fragment, e.g. "plugins/plugin_list.html#plugin-form") as
    the dialog's body for htmx, or as a whole page otherwise. `back` is where
    the page's Cancel goes (the dialog's just closes)."""
    if getattr(request, "htmx", False):
        return render(request, template, context, status=status)
    page = context | {"dialog_template": template, "dialog_title": title, "back": back}
    return render(request, PAGE, page, status=status)


def dialog_done(request: HttpRequest, url: str) -> HttpResponse:
    """After a dialog's form succeeded: htmx follows HX-Redirect; a plain form
    post (the full page without JavaScript) gets an ordinary redirect."""
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(url)
    return redirect(url)
