"""Failure counters in fixed windows aligned to the clock, kept in Django's cache.

Shared by the heartbeat guard (auth_guard.py) and the login throttle
(login_throttle.py). The cache is Redis when `REDIS_URL` is set, so every
process sees the same counts; `cache.incr` is atomic, so exactly one caller
sees a count reach its limit (and sends the one alert).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.core.cache import cache


@dataclass(frozen=True)
class Count:
    failures: int  # failures under this key in the current window, this one included
    reached: bool  # the limit is reached: the key is refused until the window ends
    first: bool  # this failure is the one that reached the limit
    retry_after: int  # seconds until the window ends (0 while under the limit)


def clock() -> float:
    # One seam for tests to move time; the cache's expiry is only garbage collection.
    return time.time()


def failures(key: str, *, seconds: int) -> int:
    return int(cache.get(_cache_key(key, _window(seconds)), 0))


def is_over(key: str, *, limit: int, seconds: int) -> bool:
    return failures(key, seconds=seconds) >= limit


def add_failure(key: str, *, limit: int, seconds: int) -> Count:
    window = _window(seconds)
    cache_key = _cache_key(key, window)
    cache.add(cache_key, 0, timeout=seconds + 60)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, timeout=seconds + 60)
        count = 1
    reached = count >= limit
    retry_after = seconds_left(seconds) if reached else 0
    return Count(count, reached, count == limit, retry_after)


def reset(key: str, *, seconds: int) -> None:
    """Forget the key's failures in the current window."""
    cache.delete(_cache_key(key, _window(seconds)))


def seconds_left(seconds: int) -> int:
    """Whole seconds until the current window of this length ends (at least 1)."""
    end = (_window(seconds) + 1) * seconds
    return max(1, math.ceil(end - clock()))


def _window(seconds: int) -> int:
    return int(clock() // seconds)


def _cache_key(key: str, window: int) -> str:
    return f"ops:{key}:{window}"
