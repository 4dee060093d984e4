"""Many lightweight plugin instances in one process (run with .venv: it has
`websockets`; .venv-sdk14's python-socketio AsyncClient needs aiohttp, which
no venv here has).

Each instance is one websocket speaking Engine.IO 4 / Socket.IO 5 frames by
hand, as the SDK does on the wire: `/socket.io/?EIO=4&transport=websocket`,
no permessage-deflate (the SDK's websocket-client has none; `--deflate`
offers it), connect to namespace `/plugin` (`40/plugin,`), `heartbeat` {id, secret} once
connected (and every 60 s), a pong `3` for every ping `2`, and every `plugin`
job answered with an empty valid `response` (acknowledged if it carries an ack
id) — unless `--hold`: jobs are received and never answered (the process that
gets SIGKILLed).

Every job received and answered is appended to `--out` as
`R|A <unix time> <instance> <session>`, flushed per line, so the parent can
read what a killed process held and when another instance got it.

    fleet_client.py --url http://127.0.0.1:P --count 100 --id ID --secret S \
        --out /tmp/x.txt [--hold] [--tag name]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import websockets

EMPTY = {"objects": [], "classifications": [], "relations": []}
NS = "/plugin"


def event(name: str, data: Any) -> str:
    return f"42{NS}," + json.dumps([name, data], separators=(",", ":"))


class Instance:
    def __init__(self, n: int, args: argparse.Namespace, out: Any) -> None:
        self.n, self.args, self.out = n, args, out
        self.ws: Any = None
        self.connected = asyncio.Event()
        self.closed = False

    async def run(self, gate: asyncio.Semaphore) -> None:
        url = self.args.url.replace("http", "ws", 1)
        url += "/socket.io/?EIO=4&transport=websocket"
        hello = {"id": self.args.id, "secret": self.args.secret}
        async with gate:
            self.ws = await websockets.connect(
                url,
                max_size=None,
                ping_interval=None,
                open_timeout=60,
                # The SDK's websocket-client never offers permessage-deflate;
                # accepting it costs the hub a zlib state per connection.
                compression="deflate" if self.args.deflate else None,
            )
        try:
            async for frame in self.ws:
                if not isinstance(frame, str):
                    continue
                if frame == "2":
                    await self.ws.send("3")
                elif frame.startswith("0"):
                    await self.ws.send(f"40{NS},")
                elif frame.startswith(f"40{NS},"):
                    await self.ws.send(event("heartbeat", hello))
                    self.connected.set()
                elif frame.startswith(f"42{NS},"):
                    await self.on_event(frame[len(NS) + 3 :])
                elif frame.startswith(f"44{NS},"):
                    print(f"connect refused: {frame}", flush=True)
                    return
        except websockets.ConnectionClosed as exc:
            print(f"{self.args.tag}-{self.n} closed: {exc}", flush=True)
        finally:
            self.closed = True

    async def on_event(self, body: str) -> None:
        ack = ""
        while body and body[0].isdigit():
            ack, body = ack + body[0], body[1:]
        name, *rest = json.loads(body)
        if ack:
            await self.ws.send(f"43{NS},{ack}[]")
        if name != "plugin" or not rest:
            return
        session = rest[0].get("session")
        tag = f"{self.args.tag}-{self.n}"
        self.out.write(f"R {time.time():.6f} {tag} {session}\n")
        if self.args.hold:
            self.out.flush()
            return
        await self.ws.send(event("response", {"response": EMPTY, "session": session}))
        self.out.write(f"A {time.time():.6f} {tag} {session}\n")
        self.out.flush()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--id", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--tag", default="c")
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--deflate", action="store_true", help="offer compression")
    args = parser.parse_args()
    gate = asyncio.Semaphore(20)
    hello = {"id": args.id, "secret": args.secret}
    with open(args.out, "a") as out:
        instances = [Instance(n, args, out) for n in range(args.count)]
        tasks = [asyncio.create_task(i.run(gate)) for i in instances]
        await asyncio.wait_for(
            asyncio.gather(*(i.connected.wait() for i in instances)), 120
        )
        print(f"CONNECTED {len(instances)}", flush=True)
        while True:
            await asyncio.sleep(60)
            for inst in instances:
                if not inst.closed:
                    try:
                        await inst.ws.send(event("heartbeat", hello))
                    except websockets.ConnectionClosed:
                        inst.closed = True
            if all(inst.closed for inst in instances):
                del tasks
                sys.exit("every connection dropped")


if __name__ == "__main__":
    asyncio.run(main())
