"""A Model plugin for tests (imerit-ango 1.4.x) that logs a burst before it
answers. The job's configJSON says how: {"lines": N, "start_at": <unix time>}
— it waits until start_at (so watchers can subscribe first), logs N lines
`burst <i>` as fast as the SDK sends them, then answers one box. Prints
`HANDLED <session>` per job."""

import json
import os
import sys
import time

from imerit_ango.models.annotate import AnnotationPayload, Answer
from imerit_ango.plugins import ModelPlugin, run

MAX_WAIT_SECONDS = 20.0


def callback(data):
    sys.stdout.write(f"HANDLED {data['session']}\n")
    sys.stdout.flush()
    config = json.loads(data.get("configJSON") or "{}")
    logger = data["logger"]
    start_at = float(config.get("start_at", 0))
    time.sleep(max(0.0, min(start_at - time.time(), MAX_WAIT_SECONDS)))
    for i in range(int(config.get("lines", 0))):
        logger.info(f"burst {i}", extra={"i": i})
    mapping = data.get("categorySchema") or [{"schemaId": "face-box"}]
    box = {"x": 10, "y": 20, "width": 30, "height": 40}
    objects = [{"schemaId": mapping[0]["schemaId"], "bounding-box": box}]
    return AnnotationPayload(answer=Answer(objects=objects))


if __name__ == "__main__":
    plugin = ModelPlugin(
        id=os.environ["PLUGIN_ID"],
        secret=os.environ["PLUGIN_SECRET"],
        callback=callback,
    )
    run(plugin, host=os.environ["HOST"])
