"""Rate limiting of failed plugin heartbeats, per client IP.

A wrong id or secret leaves the socket open (see the README), so nothing else
stops a script from guessing secrets as fast as it can. Each failure counts
against the IP in a fixed window aligned to the clock; once an IP has made
`HUB_AUTH_FAILURES_PER_WINDOW` failures, `heartbeat_allowed` is False until the
window ends. The failure that reaches the limit logs a warning and mails the
admins, once per IP and window.

Counters live in Django's cache (Redis when `REDIS_URL` is set, so all ASGI
processes share them); `cache.incr` is atomic, so exactly one caller sees the
count reach the limit.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.mail import mail_admins

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    failures: int  # failures of this IP in the current window, this one included
    blocked: bool  # further heartbeats from this IP are refused
    alert: bool  # this failure reached the limit: admins were told
    retry_after: int  # seconds until the window ends (0 when not blocked)


def clock() -> float:
    # One seam for tests to move time; cache expiry is only garbage collection.
    return time.time()


def heartbeat_allowed(address_ip: str) -> bool:
    window = _window()
    count = cache.get(_key(_ip(address_ip), window), 0)
    return count < settings.HUB_AUTH_FAILURES_PER_WINDOW


def heartbeat_failed(address_ip: str) -> Verdict:
    ip = _ip(address_ip)
    window = _window()
    key = _key(ip, window)
    cache.add(key, 0, timeout=settings.HUB_AUTH_WINDOW_SECONDS + 60)
    try:
        failures = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=settings.HUB_AUTH_WINDOW_SECONDS + 60)
        failures = 1
    limit = settings.HUB_AUTH_FAILURES_PER_WINDOW
    blocked = failures >= limit
    retry_after = _seconds_left(window) if blocked else 0
    alert = failures == limit
    if alert:
        _alert(ip, retry_after)
    return Verdict(failures, blocked, alert, retry_after)


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


def _window() -> int:
    return int(clock() // settings.HUB_AUTH_WINDOW_SECONDS)


def _seconds_left(window: int) -> int:
    end = (window + 1) * settings.HUB_AUTH_WINDOW_SECONDS
    return max(1, math.ceil(end - clock()))


def _key(ip: str, window: int) -> str:
    return f"ops:heartbeat-failures:{ip}:{window}"


def _alert(ip: str, seconds: int) -> None:
    message = f"heartbeat failures from {ip} over the limit; blocked for {seconds} s"
    log.warning(message, extra={"ip": ip, "blocked_seconds": seconds})
    if settings.ADMINS:
        # fail_silently: a mail server outage must not break the socket consumer.
        mail_admins("Plugin Hub: heartbeat failures", message, fail_silently=True)
