"""The login page, telling a throttled user why and for how long
(ops/login_throttle.py refuses the login itself, here and in the admin)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpResponse

from plugins_app.ops.login_throttle import client_address, throttled


class LoginView(auth_views.LoginView):
    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        username = form.data.get("username")
        throttle = throttled(
            username if isinstance(username, str) else None,
            client_address(self.request),
        )
        if throttle is None:
            return super().form_invalid(form)
        # Replaces "enter a correct username and password": while throttled,
        # even the right password is refused, and the user must know that.
        form.errors.clear()
        form.add_error(None, throttled_message(throttle.reason, throttle.retry_after))
        response = super().form_invalid(form)
        response.status_code = 429
        response["Retry-After"] = str(throttle.retry_after)
        return response


def throttled_message(reason: str, seconds: int) -> str:
    source = "for this account" if reason == "account" else "from your address"
    return (
        f"Too many failed logins {source}. Logins are paused for "
        f"{_duration(seconds)}; try again then, even with the right password."
    )


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' * (seconds != 1)}"
    minutes = -(-seconds // 60)  # rounded up: never tell the user too early
    return f"{minutes} minute{'s' * (minutes != 1)}"
