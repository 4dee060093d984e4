"""Throttling of password logins, per account and per client address.

Every failed password login (the login page, the admin's, any `authenticate()`
with a username) counts against the account and against the address it came
from, in clock-aligned windows (window.py, shared with the heartbeat guard).
Once either key reaches its limit, `ThrottleBackend`, first in
AUTHENTICATION_BACKENDS, refuses every password login for it, the right
password included, until the window ends; the login page says so and for how
long (web/login.py). The JSON API's bearer tokens never pass through here.

Per address catches one client trying many accounts; per account catches many
addresses (a botnet) trying one. The price is that anyone can hold one account
shut for a window by failing on purpose; the limits are generous enough for
typos, and an admin can clear a lock with `clear_account`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from plugins_app.ops import window

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Throttle:
    reason: str  # "account" or "address"
    retry_after: int  # seconds until the window ends


def throttled(username: str | None, address: str | None) -> Throttle | None:
    """The throttle that refuses this login now, if any."""
    seconds = settings.HUB_LOGIN_WINDOW_SECONDS
    for reason, key, limit in _keys(username, address):
        if window.is_over(key, limit=limit, seconds=seconds):
            return Throttle(reason, window.seconds_left(seconds))
    return None


def login_failed(username: str | None, address: str | None) -> None:
    seconds = settings.HUB_LOGIN_WINDOW_SECONDS
    for reason, key, limit in _keys(username, address):
        count = window.add_failure(key, limit=limit, seconds=seconds)
        if count.first:
            log.warning(
                "password logins throttled per %s for %d s (%d failures)",
                reason,
                count.retry_after,
                count.failures,
                extra={"username": username, "ip": address, "throttle": reason},
            )


def clear_account(username: str) -> None:
    """Forget the account's failures of this window (after a successful login,
    or by an admin from `manage.py shell`)."""
    window.reset(_account_key(username), seconds=settings.HUB_LOGIN_WINDOW_SECONDS)


def client_address(request: HttpRequest | None) -> str | None:
    # uvicorn's client, which --proxy-headers sets from X-Forwarded-For when the
    # proxy is trusted (FORWARDED_ALLOW_IPS); never read the header here.
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def _keys(username: str | None, address: str | None) -> list[tuple[str, str, int]]:
    keys = []
    if username:
        keys.append(
            (
                "account",
                _account_key(username),
                settings.HUB_LOGIN_FAILURES_PER_ACCOUNT,
            )
        )
    if address:
        keys.append(
            (
                "address",
                f"login-failures:address:{address}",
                settings.HUB_LOGIN_FAILURES_PER_ADDRESS,
            )
        )
    return keys


def _account_key(username: str) -> str:
    # Hashed: usernames typed at a login form can hold anything; folded, so
    # "Admin" and "admin" share one count.
    digest = hashlib.sha256(username.casefold().encode()).hexdigest()[:32]
    return f"login-failures:account:{digest}"


class ThrottleBackend:
    """First in AUTHENTICATION_BACKENDS: refuses a throttled login before any
    password is checked (PermissionDenied stops `authenticate()` there). Not a
    BaseBackend: without `get_user` it is never the backend a session (or the
    test client's `force_login`) is bound to."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, **kw: Any
    ) -> None:
        if username is not None and throttled(username, client_address(request)):
            raise PermissionDenied("too many failed logins")
        return None


def on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None, **kw: Any
) -> None:
    username = credentials.get("username")
    login_failed(
        username if isinstance(username, str) else None, client_address(request)
    )


def on_logged_in(sender: Any, request: HttpRequest, user: Any, **kw: Any) -> None:
    clear_account(user.get_username())
