"""GET /healthz: the database, the channel layer and the Celery broker, each with
ok, latency and error; 200 only when all pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.test import Client, override_settings

from plugins_app.ops.health import _round_trip
from tests.production import REDIS, reachable

REDIS_URL = "redis://127.0.0.1:6379/9"
CLOSED_URL = "redis://127.0.0.1:1/9"
IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


needs_redis = pytest.mark.skipif(
    not reachable(REDIS),
    reason="the Redis health checks need Redis on 127.0.0.1:6379 (it runs on CI)",
)


def redis_layers(url: str, backend: str = "pubsub") -> dict[str, Any]:
    path = {
        "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "core": "channels_redis.core.RedisChannelLayer",
    }[backend]
    return {"default": {"BACKEND": path, "CONFIG": {"hosts": [url]}}}


def filesystem_broker(root: Path) -> dict[str, Any]:
    folders = {name: root / name for name in ("out", "processed", "control")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return {
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_BROKER_TRANSPORT_OPTIONS": {
            "data_folder_in": str(folders["out"]),
            "data_folder_out": str(folders["out"]),
            "processed_folder": str(folders["processed"]),
            "control_folder": str(folders["control"]),
        },
    }


def get_health(client: Client) -> tuple[int, dict[str, Any]]:
    response = client.get("/healthz")
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


@pytest.mark.django_db
class TestEmbedded:
    def test_it_is_ok_without_a_login(self, client: Client, tmp_path: Path) -> None:
        with override_settings(CHANNEL_LAYERS=IN_MEMORY, **filesystem_broker(tmp_path)):
            status, body = get_health(client)
        assert status == 200
        assert body["status"] == "ok"
        checks = body["checks"]
        assert set(checks) == {"database", "channel_layer", "broker"}
        for check in checks.values():
            assert check["ok"] is True
            assert check["error"] is None
            assert isinstance(check["latency_ms"], float)
            assert check["latency_ms"] >= 0
        assert checks["channel_layer"]["mode"] == "in-process"
        assert checks["broker"]["mode"] == "filesystem"

    def test_it_fails_when_a_broker_folder_is_missing(
        self, client: Client, tmp_path: Path
    ) -> None:
        broker = filesystem_broker(tmp_path)
        (tmp_path / "processed").rmdir()
        with override_settings(CHANNEL_LAYERS=IN_MEMORY, **broker):
            status, body = get_health(client)
        assert status == 503
        assert body["status"] == "fail"
        assert body["checks"]["broker"]["ok"] is False
        assert "processed is missing" in body["checks"]["broker"]["error"]
        assert body["checks"]["database"]["ok"] is True

    def test_it_fails_when_a_broker_folder_is_read_only(
        self, client: Client, tmp_path: Path
    ) -> None:
        broker = filesystem_broker(tmp_path)
        (tmp_path / "out").chmod(0o500)
        try:
            with override_settings(CHANNEL_LAYERS=IN_MEMORY, **broker):
                status, body = get_health(client)
        finally:
            (tmp_path / "out").chmod(0o700)
        if body["checks"]["broker"]["ok"]:
            pytest.skip("running as root: permissions do not stop writes")
        assert status == 503
        assert "not writable" in body["checks"]["broker"]["error"]

    def test_it_refuses_post(self, client: Client) -> None:
        assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
class TestRedis:
    @needs_redis
    @pytest.mark.parametrize("backend", ["pubsub", "core"])
    def test_it_round_trips_the_layer_and_pings_the_broker(
        self, client: Client, backend: str
    ) -> None:
        with override_settings(
            CHANNEL_LAYERS=redis_layers(REDIS_URL, backend),
            CELERY_BROKER_URL=REDIS_URL,
        ):
            status, body = get_health(client)
        assert status == 200, body
        assert body["checks"]["channel_layer"]["mode"] == "redis"
        assert body["checks"]["broker"] == {
            "ok": True,
            "error": None,
            "mode": "redis",
            "latency_ms": body["checks"]["broker"]["latency_ms"],
        }

    @needs_redis
    def test_the_probe_leaves_no_subscription_behind(self) -> None:
        with override_settings(CHANNEL_LAYERS=redis_layers(REDIS_URL)):
            layer = get_channel_layer()

            async def probe_twice() -> dict[str, Any]:
                await _round_trip(layer)
                await _round_trip(layer)
                return layer._get_layer().channels

            assert async_to_sync(probe_twice)() == {}

    def test_it_fails_when_redis_is_down(self, client: Client) -> None:
        with override_settings(
            CHANNEL_LAYERS=redis_layers(CLOSED_URL), CELERY_BROKER_URL=CLOSED_URL
        ):
            status, body = get_health(client)
        assert status == 503
        assert body["status"] == "fail"
        broker = body["checks"]["broker"]
        assert broker["ok"] is False
        assert broker["error"].startswith("ConnectionError:")
        assert "127.0.0.1:1" in broker["error"]
        assert body["checks"]["channel_layer"]["ok"] is False
        assert body["checks"]["database"]["ok"] is True
