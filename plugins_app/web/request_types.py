"""Request types for views, told to mypy (as django-stubs and django-htmx's
example do): what the decorators in front of a view already guarantee."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest


class AuthenticatedHttpRequest(HttpRequest):
    """A request behind @login_required or the JSON API's auth (a token or the
    session): `user` is a signed-in User, never AnonymousUser, so views can hand
    it to services that record who acted."""

    user: User
