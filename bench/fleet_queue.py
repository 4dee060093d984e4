"""Create M single-asset runs through the JSON API (`POST /api/runs` with a
Bearer token), as a script would, from one process with `IN_FLIGHT` requests
open at a time (one keep-alive connection each). bench/fleet.py starts two of
these, each on its own web process. Prints one JSON line:

    {"seconds": ..., "created": M, "run_ids": [first, last], "refused": {...}}

and exits 1 if any request was refused (the refusals are in the line).

    .venv/bin/python bench/fleet_queue.py PORT TOKEN PLUGIN_PK PROJECT_ID \
        RUNS OFFSET IN_FLIGHT EXTERNAL_ID [EXTERNAL_ID ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter

from _measure import HttpConn
from _servers import run_driver


async def queue(args: list[str]) -> dict[str, object]:
    port, token = int(args[0]), args[1]
    plugin_pk, project_id, runs, offset, in_flight = (int(a) for a in args[2:7])
    assets = args[7:]
    headers = {"Authorization": f"Bearer {token}"}
    next_n = 0
    run_ids: list[int] = []
    refused: Counter[str] = Counter()

    async def worker() -> None:
        nonlocal next_n
        conn = await HttpConn(port, timeout=120).open()
        try:
            while next_n < runs:
                n = next_n
                next_n += 1
                body = {
                    "plugin_id": plugin_pk,
                    "project_id": project_id,
                    "class_mapping": {"face": "face-box"},
                    "config_json": "{}",
                    "external_ids": [assets[(n + offset) % len(assets)]],
                }
                status, answer = await conn.request("POST", "/api/runs", body, headers)
                if status == 201:
                    run_ids.append(int(answer["id"]))
                else:
                    refused[f"{status} {str(answer)[:200]}"] += 1
        finally:
            await conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, in_flight))))
    return {
        "seconds": time.perf_counter() - start,
        "created": len(run_ids),
        "run_ids": [min(run_ids, default=0), max(run_ids, default=0)],
        "refused": dict(refused),
    }


def main() -> None:
    if len(sys.argv) < 9:
        sys.exit(__doc__)
    result: dict[str, object] = {}

    async def go(args: argparse.Namespace) -> None:
        result.update(await queue(args.argv))

    run_driver(go, argparse.Namespace(argv=sys.argv[1:]))
    print(json.dumps(result), flush=True)
    if result["refused"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
