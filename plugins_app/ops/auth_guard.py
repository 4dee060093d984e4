"""Rate limiting of failed plugin heartbeats, per (client IP, plugin).

A wrong id or secret leaves the socket open (ango-plugin-protocol.md §7), so
nothing else bounds what a script costs by sending bad heartbeats: each one is
a row in the plugin's *failed connection attempts* and a warning in the log.
Failures count per IP **and plugin id** (unknown ids share one "unknown" key per
IP, so guessing ids is limited too) in a clock-aligned window (window.py). Once a
key has made `HUB_AUTH_FAILURES_PER_WINDOW` failures, its further failures are
no longer recorded until the window ends; the failure that reaches the limit
logs a warning and mails the admins, once per key and window.

What the guard never does is refuse a correct secret: plugin secrets carry 256
bits (plugins/secrets.py), so there is nothing to brute force, while a stale
instance left running after *Rotate secret* (one wrong heartbeat a minute, one
reconnect every `HUB_SOCKET_AUTH_SECONDS`) or a neighbour's misconfigured script
on the same host must not lock the right one out.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import mail_admins

from plugins_app.ops import window

log = logging.getLogger(__name__)

UNKNOWN = "unknown"


@dataclass(frozen=True)
class Verdict:
    failures: int  # failures of this IP and plugin in the window, this one included
    blocked: bool  # further failures of this IP and plugin are not recorded
    alert: bool  # this failure reached the limit: admins were told
    retry_after: int  # seconds until the window ends (0 when not blocked)


def failures_recorded(address: str, plugin_id: str | None) -> bool:
    """Whether a failed heartbeat from this address for this plugin (None: an
    unknown id) is still recorded, i.e. the key is under its limit."""
    return not window.is_over(
        _key(_ip(address), plugin_id),
        limit=settings.HUB_AUTH_FAILURES_PER_WINDOW,
        seconds=settings.HUB_AUTH_WINDOW_SECONDS,
    )


def heartbeat_failed(address: str, plugin_id: str | None) -> Verdict:
    ip = _ip(address)
    count = window.add_failure(
        _key(ip, plugin_id),
        limit=settings.HUB_AUTH_FAILURES_PER_WINDOW,
        seconds=settings.HUB_AUTH_WINDOW_SECONDS,
    )
    if count.first:
        _alert(ip, plugin_id or UNKNOWN, count.retry_after)
    return Verdict(count.failures, count.reached, count.first, count.retry_after)


def _key(ip: str, plugin_id: str | None) -> str:
    return f"heartbeat-failures:{ip}:{plugin_id or UNKNOWN}"


def _ip(address: str) -> str:
    """The IP part of the consumer's "ip:port" ("::1:5000" for IPv6, no
    brackets). The port goes first: "::1:5000" is itself a valid IPv6 address,
    and keeping the port would give every connection its own counter."""
    address = address.strip()
    host, _, port = address.rpartition(":")
    if port.isdigit() and _is_ip(host.strip("[]")):
        return host.strip("[]")
    return address.strip("[]")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _alert(ip: str, plugin: str, seconds: int) -> None:
    message = (
        f"heartbeat failures from {ip} for plugin {plugin} over the limit; "
        f"not recorded for {seconds} s"
    )
    log.warning(
        message, extra={"ip": ip, "plugin_id": plugin, "blocked_seconds": seconds}
    )
    if settings.ADMINS:
        # fail_silently: a mail server outage must not break the socket consumer.
        mail_admins("Plugin Hub: heartbeat failures", message, fail_silently=True)
