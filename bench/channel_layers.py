"""Channel-layer round trip: channels_redis's RedisPubSubChannelLayer (`pubsub`,
the hub's default) against its RedisChannelLayer (`core`), on the real Redis.

    .venv/bin/python bench/channel_layers.py              # 2,000 messages per row
    .venv/bin/python bench/channel_layers.py --messages 500 --warmup 50

For each layer a consumer process is started (a Channels `AsyncConsumer` run as
an ASGI app, on uvloop, as the hub's uvicorn runs it; it joins a group the way
the run page's consumer does). The driver process sends it, one at a time,
  - `send` to its channel name: a `job.dispatch` message built by
    `protocol.job_dispatch` (how a job reaches the socket holding its lease),
  - `group_send` to its group: a `run.changed` built by `protocol.run_changed`
    (how a run's watchers learn of a change),
and the consumer's handler answers each with `send` to the driver's own channel
through the same layer. Latency = sent -> answer received by the driver: two
layer hops between two processes, Redis in the middle. Warm-up messages first,
then a fixed count; the loop stops by itself (a missing answer times out).

Redis: 127.0.0.1:6379 db 9, flushed before and after (only that db); both layers
use a prefix of their own (Redis pub/sub channels are not scoped by db).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _measure import load_average, machine_facts, percentile, say, table  # noqa: E402
from _processes import HUB_PYTHON  # noqa: E402
from _servers import run_driver  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/9"
GROUP = "run-1"
ANSWER_TIMEOUT = 5.0
LAYERS = {
    "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
}
# A job of the size a one-asset Model run sends (protocol section 3).
JOB = {
    "session": "0123456789abcdef0123456789abcdef",
    "pluginId": "65f0c0ffee0123456789abcd",
    "orgId": "65f0c0ffee0123456789abce",
    "runBy": "65f0c0ffee0123456789abcf",
    "projectId": "65f0c0ffee0123456789abd0",
    "configJSON": '{"classMapping": {"face": "face-box"}}',
    "dataset": [{"externalId": "asset-000001", "data": "https://example.test/1.jpg"}],
    "batches": [],
    "logLevel": "info",
}


def configure() -> None:
    """Both layers as aliases of one settings module, named after the layer."""
    import django
    from django.conf import settings

    settings.configure(
        CHANNEL_LAYERS={
            name: {
                "BACKEND": backend,
                "CONFIG": {"hosts": [REDIS_URL], "prefix": f"bench-{name}"},
            }
            for name, backend in LAYERS.items()
        }
    )
    django.setup()


# --- the consumer process ----------------------------------------------------
def consumer_class(alias: str) -> type:
    from channels.consumer import AsyncConsumer

    class EchoConsumer(AsyncConsumer):
        """Answers each hub message with `send` to the channel named in it."""

        channel_layer_alias = alias

        async def bench_start(self, message: dict[str, Any]) -> None:
            await self.channel_layer.group_add(GROUP, self.channel_name)
            # The driver reads this line to learn where to `send`.
            print(f"CHANNEL {self.channel_name}", flush=True)

        async def job_dispatch(self, message: dict[str, Any]) -> None:
            await self._answer(message)

        async def run_changed(self, message: dict[str, Any]) -> None:
            await self._answer(message)

        async def _answer(self, message: dict[str, Any]) -> None:
            await self.channel_layer.send(
                message["reply_to"], {"type": "bench.answer", "n": message["n"]}
            )

    return EchoConsumer


async def consumer_main(args: argparse.Namespace) -> None:
    app = consumer_class(args.consumer).as_asgi()
    started = False

    async def receive() -> dict[str, Any]:
        nonlocal started
        if not started:
            started = True
            return {"type": "bench.start"}
        await asyncio.Event().wait()  # no ASGI events after that; ended by SIGTERM
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        pass

    await app({"type": "channel"}, receive, send)


# --- the driver --------------------------------------------------------------
async def round_trips(
    layer: Any, method: str, target: str, count: int
) -> tuple[list[float], float]:
    """`count` messages one at a time; latencies in ms and the elapsed seconds."""
    from plugins_app import protocol

    reply_to = await layer.new_channel()
    latencies: list[float] = []
    start = time.perf_counter()
    for n in range(count):
        if method == "send":
            message: dict[str, Any] = dict(protocol.job_dispatch(JOB))
        else:
            message = dict(protocol.run_changed(n))
        message.update(reply_to=reply_to, n=n)
        t0 = time.perf_counter()
        await getattr(layer, method)(target, message)
        while True:
            answer = await asyncio.wait_for(layer.receive(reply_to), ANSWER_TIMEOUT)
            if answer.get("n") == n:
                break
        latencies.append((time.perf_counter() - t0) * 1000)
    return latencies, time.perf_counter() - start


async def measure_layer(name: str, args: argparse.Namespace) -> list[list[Any]]:
    from channels.layers import get_channel_layer

    proc = await asyncio.create_subprocess_exec(
        str(HUB_PYTHON),
        __file__,
        "--consumer",
        name,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line.startswith(b"CHANNEL "):
            raise RuntimeError(f"{name} consumer did not start: {line!r}")
        channel = line.split()[1].decode()
        layer = get_channel_layer(name)
        rows = []
        for method, target in (("send", channel), ("group_send", GROUP)):
            say(f"  {name}: {method}, {args.warmup} warm-up + {args.messages} …")
            await round_trips(layer, method, target, args.warmup)
            ms, elapsed = await round_trips(layer, method, target, args.messages)
            rows.append(
                [
                    name,
                    method,
                    len(ms),
                    percentile(ms, 50),
                    percentile(ms, 90),
                    percentile(ms, 99),
                    len(ms) / elapsed,
                    os.getloadavg()[0],
                ]
            )
        if hasattr(layer, "flush"):
            await layer.flush()
        return rows
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def flush_db() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def report(rows: list[list[Any]], args: argparse.Namespace) -> None:
    print()
    print(f"machine: {machine_facts()}")
    print(f"load average at the end (1/5/15 min): {load_average()}")
    print(
        f"{args.messages} messages per row after {args.warmup} warm-up, one at a"
        " time; latency = sent -> consumer's answer received (two layer hops)"
    )
    print()
    print(
        table(
            ["layer", "method", "n", "p50 ms", "p90 ms", "p99 ms", "msg/s", "load 1m"],
            rows,
        )
    )
    by = {(r[0], r[1]): r for r in rows}
    ratios = [
        [
            method,
            by[("pubsub", method)][3],
            by[("core", method)][3],
            by[("core", method)][3] / by[("pubsub", method)][3],
            by[("pubsub", method)][5],
            by[("core", method)][5],
            by[("core", method)][5] / by[("pubsub", method)][5],
        ]
        for method in ("send", "group_send")
    ]
    print()
    print(
        table(
            [
                "method",
                "pubsub p50",
                "core p50",
                "core/pubsub p50",
                "pubsub p99",
                "core p99",
                "core/pubsub p99",
            ],
            ratios,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--consumer", choices=list(LAYERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.messages = max(10, min(args.messages, 100_000))
    args.warmup = max(0, min(args.warmup, 10_000))
    configure()
    if args.consumer:
        run_driver(consumer_main, args)
        return
    print(f"load average at the start (1/5/15 min): {load_average()}")
    flush_db()
    rows: list[list[Any]] = []
    try:
        run_driver(driver_main, (args, rows))
    finally:
        flush_db()
    report(rows, args)


async def driver_main(args_rows: tuple[argparse.Namespace, list[list[Any]]]) -> None:
    args, rows = args_rows
    for name in LAYERS:
        rows += await measure_layer(name, args)


if __name__ == "__main__":
    main()
