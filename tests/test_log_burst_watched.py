"""A log burst from four real SDK plugins into four runs, each watched by its
own websocket as a browser watches the run page: every line reaches the
database and its watcher, once, in the order the plugin logged it, and the
watcher sees the run succeed (issue 10, "Tests that must exist")."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

from django.test import Client
from websockets.asyncio.client import connect

from plugins_app.runs.creation import RunRequest, run_create
from plugins_app.runs.models import Run, RunLogLine
from tests.hub import SCRIPTS, LiveHub, wait_for

LOG_BURST = SCRIPTS / "log_burst.py"
PLUGINS = 4
LINES = 2_000  # per plugin
LEAD_SECONDS = 3.0  # the watchers subscribe within this, before the first line
ROW = re.compile(r'<div class="log-line level-info" data-id="(\d+)">.*?burst (\d+)<')


async def _watch(
    live_hub: LiveHub, cookie: str, run_id: int, subscribed: list[float]
) -> list[tuple[int, int]]:
    """(row id, burst index) of every INFO line pushed to this run's watcher,
    in arrival order, until all LINES arrived and the run's status says done."""
    url = live_hub.url.replace("http", "ws") + f"/ws/runs/{run_id}/"
    seen: list[tuple[int, int]] = []
    succeeded = False
    async with connect(
        url,
        additional_headers={"Cookie": cookie, "Origin": live_hub.url},
        max_size=None,
    ) as ws:
        subscribed.append(time.time())
        deadline = time.monotonic() + 45
        while not (succeeded and len(seen) >= LINES):
            try:
                html = str(
                    await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
                )
            except TimeoutError:
                raise AssertionError(
                    f"run {run_id}: {len(seen)} of {LINES} lines pushed, "
                    f"succeeded={succeeded}"
                ) from None
            seen += [(int(row), int(i)) for row, i in ROW.findall(html)]
            succeeded = succeeded or ('id="run-status"' in html and "Succeeded" in html)
    return seen


async def _watch_all(
    live_hub: LiveHub, cookie: str, runs: list[Run], subscribed: list[float]
) -> list[Any]:
    return await asyncio.gather(
        *(_watch(live_hub, cookie, r.pk, subscribed) for r in runs)
    )


def test_four_plugins_burst_into_four_watched_runs_and_no_line_is_lost_or_reordered(
    live_hub: LiveHub, workspace: Any, make_plugin: Any, plugin_runner: Any
) -> None:
    registered = [make_plugin(name=f"burst {n}") for n in range(PLUGINS)]
    processes = [plugin_runner(LOG_BURST, r) for r in registered]
    start_at = time.time() + LEAD_SECONDS
    assets = ["astronaut", "coins", "camera", "chelsea"]
    runs = [
        run_create(
            RunRequest(
                plugin=r.plugin,
                project=workspace.project,
                user=workspace.annotator,
                class_mapping={"face": "face-box"},
                config_json=json.dumps({"lines": LINES, "start_at": start_at}),
                external_ids=[asset],
                batch_ids=[],
            )
        )
        for r, asset in zip(registered, assets, strict=True)
    ]
    browser = Client()
    browser.force_login(workspace.annotator)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"

    subscribed: list[float] = []
    watched = asyncio.run(_watch_all(live_hub, cookie, runs, subscribed))

    # Watched live: every watcher was there before the first line was logged.
    assert max(subscribed) < start_at, (subscribed, start_at)
    assert all(len(p.handled()) == 1 for p in processes)
    for run, lines in zip(runs, watched, strict=True):
        # The watcher got every line once, in the order it was logged, and
        # rows in the order they were stored.
        assert [i for _, i in lines] == list(range(LINES)), run.pk
        assert [row for row, _ in lines] == sorted(row for row, _ in lines)
        stored = RunLogLine.objects.filter(run=run, level="INFO")
        assert [m for m in stored.values_list("message", flat=True)] == [
            f"burst {i}" for i in range(LINES)
        ]
        assert [row for row, _ in lines] == list(stored.values_list("id", flat=True))
    wait_for(
        lambda: all(Run.objects.get(pk=r.pk).status == "succeeded" for r in runs),
        timeout=10,
        what="every run to succeed",
    )
