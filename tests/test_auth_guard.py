"""The failed-heartbeat guard: per-IP limit in a clock-aligned window, one alert
(log + mail to admins) when an IP reaches it, open again when the window ends."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import override_settings

from plugins_app.ops import auth_guard
from plugins_app.ops.auth_guard import Verdict, heartbeat_allowed, heartbeat_failed

WINDOW = 60
LIMIT = 3
START = 60 * 16_667 + 20.0  # 20 s into a 60 s window


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    fake = Clock(START)
    monkeypatch.setattr(auth_guard, "clock", fake)
    with override_settings(
        HUB_AUTH_FAILURES_PER_WINDOW=LIMIT, HUB_AUTH_WINDOW_SECONDS=WINDOW, ADMINS=[]
    ):
        cache.clear()
        yield fake
        cache.clear()


def fail(address: str, times: int) -> list[Verdict]:
    return [heartbeat_failed(address) for _ in range(times)]


def test_it_allows_an_address_under_the_limit(clock: Clock) -> None:
    assert heartbeat_allowed("10.0.0.9:5000")
    verdicts = fail("10.0.0.9:5000", LIMIT - 1)
    assert verdicts == [
        Verdict(failures=1, blocked=False, alert=False, retry_after=0),
        Verdict(failures=2, blocked=False, alert=False, retry_after=0),
    ]
    assert heartbeat_allowed("10.0.0.9:5001")


def test_it_blocks_for_the_rest_of_the_window_and_alerts_once(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="plugins_app.ops.auth_guard")
    fail("10.0.0.9:5000", LIMIT - 1)
    verdict = heartbeat_failed("10.0.0.9:5002")  # another port, same IP
    assert verdict == Verdict(failures=3, blocked=True, alert=True, retry_after=40)
    assert not heartbeat_allowed("10.0.0.9:6000")
    assert heartbeat_allowed("10.0.0.10:6000")

    later = fail("10.0.0.9:5003", 2)
    assert [v.alert for v in later] == [False, False]
    assert [v.blocked for v in later] == [True, True]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "heartbeat failures from 10.0.0.9 over the limit; blocked for 40 s"
    ]
    assert caplog.records[0].ip == "10.0.0.9"

    clock.now += 39.5
    assert not heartbeat_allowed("10.0.0.9:5000")
    assert heartbeat_failed("10.0.0.9:5000").retry_after == 1


def test_it_opens_again_when_the_window_ends(clock: Clock) -> None:
    fail("10.0.0.9:5000", LIMIT)
    assert not heartbeat_allowed("10.0.0.9:5000")
    clock.now += 40
    assert heartbeat_allowed("10.0.0.9:5000")
    assert heartbeat_failed("10.0.0.9:5000") == Verdict(1, False, False, 0)
    # A new window has its own alert.
    verdicts = fail("10.0.0.9:5000", LIMIT - 1)
    assert verdicts[-1].alert and verdicts[-1].retry_after == WINDOW


@pytest.mark.parametrize(
    ("address", "ip"),
    [
        ("10.0.0.9:5000", "10.0.0.9"),
        ("10.0.0.9", "10.0.0.9"),
        ("::1:5000", "::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
    ],
)
def test_it_counts_by_ip(clock: Clock, address: str, ip: str) -> None:
    assert auth_guard._ip(address) == ip
    fail(address, LIMIT)
    assert not heartbeat_allowed(ip)


def test_it_mails_the_admins(clock: Clock, mailoutbox: list[Any]) -> None:
    with override_settings(ADMINS=[("Ops", "ops@x.test")]):
        fail("10.0.0.9:5000", LIMIT + 2)
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["ops@x.test"]
    assert "heartbeat failures" in mailoutbox[0].subject
    assert mailoutbox[0].body == (
        "heartbeat failures from 10.0.0.9 over the limit; blocked for 40 s"
    )


def test_without_admins_it_only_logs(clock: Clock, mailoutbox: list[Any]) -> None:
    verdicts = fail("10.0.0.9:5000", LIMIT)
    assert verdicts[-1].alert
    assert mailoutbox == []


def redis_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(
    not redis_reachable(), reason="needs Redis on 127.0.0.1:6379 (it runs on CI)"
)
def test_it_works_on_the_redis_cache(clock: Clock) -> None:
    redis_cache = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/9",
            "KEY_PREFIX": "test-guard",
        }
    }
    with override_settings(CACHES=redis_cache):
        cache.clear()
        verdicts = fail("10.0.0.9:5000", LIMIT)
        assert [v.failures for v in verdicts] == [1, 2, 3]
        assert verdicts[-1].alert
        assert not heartbeat_allowed("10.0.0.9")
        clock.now += 40
        assert heartbeat_allowed("10.0.0.9")
        cache.clear()


def test_it_refuses_an_address_over_the_limit_in_the_heartbeat_path(
    workspace: Any, make_plugin: Any, settings: Any
) -> None:
    from plugins_app.plugins.models import FailedHeartbeat, PluginInstance
    from plugins_app.runs.services import instance_heartbeat

    settings.HUB_AUTH_FAILURES_PER_WINDOW = 3
    registered = make_plugin()
    public_id = registered.plugin.public_id
    for n in range(5):
        assert (
            instance_heartbeat(
                channel_name=f"c!{n}",
                plugin_public_id=public_id,
                secret="wrong",
                address="10.9.8.7:4000",
            )
            is None
        )
    # Recorded until the limit, then refused without filling the table.
    assert FailedHeartbeat.objects.filter(address="10.9.8.7:4000").count() == 3
    # Even the right secret is refused from that address for the window...
    assert (
        instance_heartbeat(
            channel_name="c!ok",
            plugin_public_id=public_id,
            secret=registered.secret,
            address="10.9.8.7:4001",
        )
        is None
    )
    assert not PluginInstance.objects.exists()
    # ...while another address connects.
    assert instance_heartbeat(
        channel_name="c!other",
        plugin_public_id=public_id,
        secret=registered.secret,
        address="10.9.8.8:4000",
    )
