"""Watch latency: how long after a plugin's answer arrives does a browser that is
already watching the run see it finished? Side by side with the bare relay,
where the one waiting is the HTTP client of `POST /job`.

    .venv/bin/python bench/watch.py [--quick] [--samples N] [--json]
    .venv/bin/python bench/watch.py --production pubsub     # PostgreSQL + Redis

Both servers are started as in bench/relay.py (the hub under uvicorn in
embedded mode, or production mode with `--production LAYER`; the bare relay
under .venv-sdk14's uvicorn). This process plays the plugin itself, speaking
Engine.IO 4 / Socket.IO 5 on a raw websocket exactly as the imerit-ango SDK
does (open, namespace CONNECT, `heartbeat`, then `plugin` jobs in and
`response` events out), so that it knows to the microsecond when the answer
frame left: t0 is taken just before the `response` frame is written.

Hub, per sample: a run is created with `POST /api/runs`; its job arrives on the
plugin socket; a browser socket (`/ws/runs/<id>/`, logged in with a session
cookie) is opened and its first pushes read (through the gallery's) until it is
quiet for 50 ms; t0;
the answer is sent; t1 when a push shows the status "Succeeded".
Bare, per sample: `POST /job` is sent; its job arrives; t0; the answer is sent;
t1 when the HTTP answer arrives. Samples run one at a time.

The last line with --json: {"mode", "load", "cases": [{"hub_watch_p50_ms",
"hub_watch_p90_ms", "bare_p50_ms", "bare_p90_ms", "p50_ratio", "samples"}]}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import websockets
from _measure import (
    HttpConn,
    json_summary,
    load_average,
    machine_facts,
    percentile,
    say,
    table,
)
from _processes import HUB_PYTHON, LOCALHOST, ROOT, Processes, psql
from _servers import BareRelay, Hub
from relay import production_database

ANSWER = {
    "objects": [
        {
            "schemaId": "face-box",
            "bounding-box": {"x": 1, "y": 2, "width": 3, "height": 4},
        }
    ]
}
FINISHED_MARK = "Succeeded"
GALLERY_MARK = 'id="run-gallery-'
QUIET_SECONDS = 0.05
TIMEOUT = 30.0


class RawPlugin:
    """A plugin socket spoken by hand (the SDK's frames, nothing more)."""

    def __init__(self, port: int, plugin_id: str, secret: str) -> None:
        self.url = f"ws://{LOCALHOST}:{port}/socket.io/?EIO=4&transport=websocket"
        self.hello = {"id": plugin_id, "secret": secret}
        self.jobs: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.ws: Any = None
        self.reader: asyncio.Task[None] | None = None

    async def connect(self) -> RawPlugin:
        self.ws = await websockets.connect(self.url, max_size=None)
        opened = await self.ws.recv()
        assert str(opened).startswith("0"), opened
        await self.ws.send("40/plugin,")
        while not str(await self.ws.recv()).startswith("40/plugin"):
            pass
        await self._emit("heartbeat", self.hello)
        self.reader = asyncio.create_task(self._read())
        return self

    async def _emit(self, event: str, data: Any) -> None:
        await self.ws.send("42/plugin," + json.dumps([event, data]))

    async def _read(self) -> None:
        async for frame in self.ws:
            text = str(frame)
            if text == "2":  # Engine.IO ping
                await self.ws.send("3")
            elif text.startswith("42/plugin,"):
                event, *args = json.loads(text[len("42/plugin,") :])
                if event == "plugin" and args:
                    await self.jobs.put(args[0])

    async def answer(self, job: dict[str, Any]) -> float:
        """Send the job's answer; returns the time just before it was written."""
        frame = "42/plugin," + json.dumps(
            ["response", {"session": job["session"], "response": ANSWER}]
        )
        t0 = time.perf_counter()
        await self.ws.send(frame)
        return t0

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        if self.ws is not None:
            await self.ws.close()


def browser_session(hub: Hub) -> str:
    """A logged-in session of the hub's admin (made by Django in a subprocess
    with the hub's settings and database, as a login would)."""
    code = (
        "import sys; sys.path.insert(0, 'bench');"
        "from _processes import django_here; django_here();"
        "from django.contrib.auth import get_user_model;"
        "from django.test import Client;"
        "c = Client(); c.force_login(get_user_model().objects.get(username='admin'));"
        "print(c.cookies['sessionid'].value)"
    )
    out = subprocess.run(
        [str(HUB_PYTHON), "-c", code],
        env=hub.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip().splitlines()[-1]


async def hub_samples(hub: Hub, count: int) -> list[float]:
    plugin = await RawPlugin(
        hub.port, hub.info["plugin_id"], hub.info["plugin_secret"]
    ).connect()
    cookie = f"sessionid={browser_session(hub)}"
    conn = await HttpConn(hub.port).open()
    external_ids = hub.info["external_ids"]
    samples: list[float] = []
    try:
        await _wait_live(conn, hub)
        for k in range(count):
            body = {
                "plugin_id": hub.info["plugin_pk"],
                "project_id": hub.info["project_id"],
                "external_ids": [external_ids[k % len(external_ids)]],
                "class_mapping": {"face": "face-box"},
            }
            status, created = await conn.request("POST", "/api/runs", body, hub.auth)
            if status != 201:
                raise RuntimeError(f"POST /api/runs answered {status}: {created}")
            job = await asyncio.wait_for(plugin.jobs.get(), TIMEOUT)
            url = f"ws://{LOCALHOST}:{hub.port}/ws/runs/{created['id']}/"
            headers = {"Cookie": cookie, "Origin": hub.url}
            async with websockets.connect(url, additional_headers=headers) as watcher:
                # What the page may have missed: the live status, then the
                # gallery in a frame of its own; then whatever else is queued.
                while GALLERY_MARK not in str(
                    await asyncio.wait_for(watcher.recv(), TIMEOUT)
                ):
                    pass
                await _until_quiet(watcher)
                t0 = await plugin.answer(job)
                while FINISHED_MARK not in str(
                    await asyncio.wait_for(watcher.recv(), TIMEOUT)
                ):
                    pass
                samples.append(time.perf_counter() - t0)
    finally:
        await conn.close()
        await plugin.close()
    return samples


async def _wait_live(conn: HttpConn, hub: Hub) -> None:
    path = f"/api/plugins/{hub.info['plugin_pk']}"
    for _ in range(200):
        status, body = await conn.request("GET", path, None, hub.auth)
        if status == 200 and int(body.get("live_instances", 0)) > 0:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the raw plugin never showed as live on the hub")


async def _until_quiet(watcher: Any) -> None:
    while True:
        try:
            await asyncio.wait_for(watcher.recv(), QUIET_SECONDS)
        except TimeoutError:
            return


async def bare_samples(bare: BareRelay, count: int) -> list[float]:
    plugin = await RawPlugin(bare.port, "bare", "bare").connect()
    conn = await HttpConn(bare.port).open()
    samples: list[float] = []
    try:
        for _ in range(200):
            if bare.live_instances() > 0:
                break
            await asyncio.sleep(0.05)
        for _ in range(count):
            waiting = asyncio.create_task(conn.request("POST", "/job", {"config": {}}))
            job = await asyncio.wait_for(plugin.jobs.get(), TIMEOUT)
            t0 = await plugin.answer(job)
            status, _ = await asyncio.wait_for(waiting, TIMEOUT)
            samples.append(time.perf_counter() - t0)
            assert status == 200, status
    finally:
        await conn.close()
        await plugin.close()
    return samples


async def main_async(args: argparse.Namespace) -> None:
    count = args.samples or (30 if args.quick else 200)
    var_dir = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    processes = Processes(var_dir)
    hub = Hub(var_dir / "hub")
    database = ""
    if args.production:
        database = production_database(hub, args.production)
    try:
        say(f"starting the hub and the bare relay ({machine_facts()})")
        hub.launch(processes)
        bare = BareRelay().launch(processes)
        hub.wait_ready(processes)
        bare.wait_ready(processes)
        say(f"hub: {count} runs, each watched, answered by the raw plugin")
        hub_ms = [s * 1000 for s in await hub_samples(hub, count)]
        say(f"bare: {count} jobs answered by the raw plugin")
        bare_ms = [s * 1000 for s in await bare_samples(bare, count)]
        load = load_average()
    finally:
        processes.stop_all()
        if database:
            psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        if args.keep:
            say(f"kept {var_dir}")
        else:
            shutil.rmtree(var_dir, ignore_errors=True)
    case = {
        "samples": count,
        "hub_watch_p50_ms": round(percentile(hub_ms, 50), 2),
        "hub_watch_p90_ms": round(percentile(hub_ms, 90), 2),
        "bare_p50_ms": round(percentile(bare_ms, 50), 2),
        "bare_p90_ms": round(percentile(bare_ms, 90), 2),
    }
    case["p50_ratio"] = round(case["hub_watch_p50_ms"] / case["bare_p50_ms"], 2)
    print(
        table(
            ["answer -> seen", "p50 ms", "p90 ms"],
            [
                [
                    "hub, browser watching",
                    case["hub_watch_p50_ms"],
                    case["hub_watch_p90_ms"],
                ],
                ["bare relay, POST /job", case["bare_p50_ms"], case["bare_p90_ms"]],
            ],
        )
    )
    say(f"load {load}")
    if args.json:
        mode = "production" if args.production else "embedded"
        print(json_summary(mode, [case]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="30 samples a side")
    parser.add_argument("--samples", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="last line: JSON")
    parser.add_argument("--keep", action="store_true", help="keep logs and the DB")
    parser.add_argument(
        "--production",
        metavar="LAYER",
        choices=["pubsub", "core"],
        help="production mode (PostgreSQL + Redis) on this channel layer",
    )
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
