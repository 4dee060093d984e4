"""The failed-heartbeat guard: a limit per (IP, plugin id) in a clock-aligned
window (unknown ids share one key per IP), one alert (log + mail to admins)
when a key reaches it, recording again when the window ends; the right secret
always authenticates, and one plugin's failures never touch another's."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.test import override_settings

from plugins_app.ops import window
from plugins_app.ops.auth_guard import Verdict, failures_recorded, heartbeat_failed

WINDOW = 60
LIMIT = 3
START = 60 * 16_667 + 20.0  # 20 s into a 60 s window
PID = "a" * 24
OTHER = "b" * 24


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    fake = Clock(START)
    monkeypatch.setattr(window, "clock", fake)
    with override_settings(
        HUB_AUTH_FAILURES_PER_WINDOW=LIMIT, HUB_AUTH_WINDOW_SECONDS=WINDOW, ADMINS=[]
    ):
        cache.clear()
        yield fake
        cache.clear()


def fail(address: str, times: int, plugin: str | None = PID) -> list[Verdict]:
    return [heartbeat_failed(address, plugin) for _ in range(times)]


def test_it_records_an_address_under_the_limit(clock: Clock) -> None:
    assert failures_recorded("10.0.0.9:5000", PID)
    verdicts = fail("10.0.0.9:5000", LIMIT - 1)
    assert verdicts == [
        Verdict(failures=1, blocked=False, alert=False, retry_after=0),
        Verdict(failures=2, blocked=False, alert=False, retry_after=0),
    ]
    assert failures_recorded("10.0.0.9:5001", PID)


def test_it_blocks_for_the_rest_of_the_window_and_alerts_once(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="plugins_app.ops.auth_guard")
    fail("10.0.0.9:5000", LIMIT - 1)
    verdict = heartbeat_failed("10.0.0.9:5002", PID)  # another port, same IP
    assert verdict == Verdict(failures=3, blocked=True, alert=True, retry_after=40)
    assert not failures_recorded("10.0.0.9:6000", PID)
    assert failures_recorded("10.0.0.10:6000", PID)

    later = fail("10.0.0.9:5003", 2)
    assert [v.alert for v in later] == [False, False]
    assert [v.blocked for v in later] == [True, True]
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        f"heartbeat failures from 10.0.0.9 for plugin {PID} over the limit; "
        "not recorded for 40 s"
    ]
    assert caplog.records[0].ip == "10.0.0.9"
    assert caplog.records[0].plugin_id == PID

    clock.now += 39.5
    assert not failures_recorded("10.0.0.9:5000", PID)
    assert heartbeat_failed("10.0.0.9:5000", PID).retry_after == 1


def test_it_counts_each_plugin_of_an_address_apart(clock: Clock) -> None:
    fail("10.0.0.9:5000", LIMIT + 5, PID)
    assert not failures_recorded("10.0.0.9:5000", PID)
    assert failures_recorded("10.0.0.9:5000", OTHER)
    assert failures_recorded("10.0.0.9:5000", None)
    assert heartbeat_failed("10.0.0.9:5000", OTHER) == Verdict(1, False, False, 0)


def test_it_counts_every_unknown_id_of_an_address_under_one_key(
    clock: Clock,
) -> None:
    verdicts = fail("10.0.0.9:5000", LIMIT, None)
    assert verdicts[-1].blocked and verdicts[-1].alert
    assert not failures_recorded("10.0.0.9:7000", None)
    assert failures_recorded("10.0.0.9:7000", PID)
    assert failures_recorded("10.0.0.10:7000", None)


def test_it_opens_again_when_the_window_ends(clock: Clock) -> None:
    fail("10.0.0.9:5000", LIMIT)
    assert not failures_recorded("10.0.0.9:5000", PID)
    clock.now += 40
    assert failures_recorded("10.0.0.9:5000", PID)
    assert heartbeat_failed("10.0.0.9:5000", PID) == Verdict(1, False, False, 0)
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
    from plugins_app.ops import auth_guard

    assert auth_guard._ip(address) == ip
    fail(address, LIMIT)
    assert not failures_recorded(ip, PID)


def test_it_mails_the_admins(clock: Clock, mailoutbox: list[Any]) -> None:
    with override_settings(ADMINS=[("Ops", "ops@x.test")]):
        fail("10.0.0.9:5000", LIMIT + 2)
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["ops@x.test"]
    assert "heartbeat failures" in mailoutbox[0].subject
    assert mailoutbox[0].body == (
        f"heartbeat failures from 10.0.0.9 for plugin {PID} over the limit; "
        "not recorded for 40 s"
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
        assert not failures_recorded("10.0.0.9", PID)
        clock.now += 40
        assert failures_recorded("10.0.0.9", PID)
        cache.clear()


def heartbeat(plugin: Any, secret: str, address: str, channel: str) -> Any:
    from plugins_app.runs.instances import instance_heartbeat

    return instance_heartbeat(
        channel_name=channel,
        plugin_public_id=plugin.public_id,
        secret=secret,
        address=address,
    )


def test_it_stops_recording_but_never_refuses_the_right_secret(
    workspace: Any, make_plugin: Any, settings: Any
) -> None:
    from plugins_app.plugins.models import FailedHeartbeat, PluginInstance

    settings.HUB_AUTH_FAILURES_PER_WINDOW = 3
    registered = make_plugin()
    for n in range(5):
        assert heartbeat(registered.plugin, "wrong", "10.9.8.7:4000", f"c!{n}") is None
    # Recorded until the limit, then refused without filling the table.
    assert FailedHeartbeat.objects.filter(address="10.9.8.7:4000").count() == 3
    # The right secret from that very address still authenticates (a stale
    # instance after Rotate secret must not lock the new one out).
    assert heartbeat(registered.plugin, registered.secret, "10.9.8.7:4001", "c!ok")
    assert PluginInstance.objects.get().channel_name == "c!ok"


def test_it_keeps_recording_another_plugin_of_the_same_address(
    workspace: Any, make_plugin: Any, settings: Any
) -> None:
    from plugins_app.plugins.models import FailedHeartbeat

    settings.HUB_AUTH_FAILURES_PER_WINDOW = 3
    noisy = make_plugin(name="Noisy").plugin
    quiet = make_plugin(name="Quiet").plugin
    for n in range(6):
        heartbeat(noisy, "wrong", "10.9.8.7:4000", f"n!{n}")
    heartbeat(quiet, "wrong", "10.9.8.7:4000", "q!1")
    counts = {
        plugin.name: FailedHeartbeat.objects.filter(plugin=plugin).count()
        for plugin in (noisy, quiet)
    }
    assert counts == {"Noisy": 3, "Quiet": 1}


ECHO = Path(__file__).resolve().parent / "plugin_scripts" / "echo_model.py"


def test_the_real_sdk_connects_and_works_after_another_plugins_failures(
    workspace: Any, make_plugin: Any, plugin_runner: Any, settings: Any
) -> None:
    """Everything here comes from 127.0.0.1: 20 wrong heartbeats for one plugin
    (and 20 unknown ids) from the address do not keep the real SDK of another
    plugin, nor the right secret of the failing plugin itself, from connecting
    and running a job."""
    from plugins_app.plugins.models import FailedHeartbeat
    from plugins_app.runs.instances import instance_heartbeat
    from plugins_app.runs.models import Run
    from tests.test_sdk_model_runs import start_run_from_dialog, wait_finished

    settings.HUB_AUTH_FAILURES_PER_WINDOW = 15
    stale = make_plugin(name="Stale")
    working = make_plugin(name="Working")
    for n in range(20):
        heartbeat(stale.plugin, "rotated-away", "127.0.0.1:40000", f"s!{n}")
        instance_heartbeat(
            channel_name=f"u!{n}",
            plugin_public_id=f"{n:024x}",
            secret="x",
            address="127.0.0.1:40001",
        )
    for registered in (working, stale):
        process = plugin_runner(ECHO, registered, sdk="1.4")
        run = start_run_from_dialog(workspace, registered.plugin, "astronaut")
        run = wait_finished(run, timeout=60)
        assert run.status == Run.Status.SUCCEEDED, (run.error, process.log())
    assert FailedHeartbeat.objects.count() == 30  # 15 + 15, the rest not recorded
