"""The plugin the benchmarks start: a real imerit-ango Model plugin (run it with
.venv-sdk14). Its callback returns one tiny valid box and nothing else, unless the
job's configJSON asks for log lines:

    {"lines": N, "start_at": <unix time>, "rate": R}

then it waits until `start_at` (so the watcher can subscribe first), logs N lines
`t=<send time> i=<index>` with `data["logger"].info(...)` as fast as the SDK lets
it (or R lines a second, evenly, if `rate` is given), and then returns the same
answer.

Environment: HOST, PLUGIN_ID, PLUGIN_SECRET (as for any plugin script).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from imerit_ango.models.annotate import AnnotationPayload, Answer
from imerit_ango.plugins import ModelPlugin, run

BOX = {"x": 10, "y": 20, "width": 30, "height": 40}
MAX_LINES = 1_000_000
MAX_WAIT_SECONDS = 10.0


def callback(data: dict[str, Any]) -> AnnotationPayload:
    config = json.loads(data.get("configJSON") or "{}")
    lines = min(int(config.get("lines", 0)), MAX_LINES)
    if lines > 0:
        logger = data["logger"]
        start_at = float(config.get("start_at", 0))
        time.sleep(max(0.0, min(start_at - time.time(), MAX_WAIT_SECONDS)))
        rate = float(config.get("rate") or 0)
        for i in range(lines):
            if rate > 0:
                # Paced from the start, so a late line does not shift the rest.
                time.sleep(max(0.0, start_at + i / rate - time.time()))
            logger.info(f"t={time.time():.6f} i={i}")
    mapping = data.get("categorySchema") or [{"schemaId": "face-box"}]
    objects = [{"schemaId": mapping[0]["schemaId"], "bounding-box": dict(BOX)}]
    return AnnotationPayload(answer=Answer(objects=objects))


if __name__ == "__main__":
    plugin = ModelPlugin(
        id=os.environ["PLUGIN_ID"],
        secret=os.environ["PLUGIN_SECRET"],
        callback=callback,
    )
    run(plugin, host=os.environ["HOST"])
