"""A Model plugin for workflow Plugin stages, written against the public
imerit-ango SDK (unmodified under 1.3.22 and 1.4.x): it answers every job with
one face box. The SDK posts workflow answers to POST /v2/annotate/{taskId}, so
the plugin needs `host`. WORKFLOW_SLEEP slows the callback (to be killed mid-job),
WORKFLOW_MODE=error makes it raise. Prints `HANDLED <taskId>` per job."""

import os
import sys
import time

from imerit_ango.plugins import ModelPlugin, run

try:  # 1.4.x wants an AnnotationPayload
    from imerit_ango.models.annotate import AnnotationPayload, Answer
except ImportError:  # 1.3.x sends a plain dict verbatim
    AnnotationPayload = Answer = None

HOST = os.environ["HOST"]


def callback(data):
    logger = data["logger"]
    # One write, so that threads answering at once cannot split the line.
    sys.stdout.write(f"HANDLED {data.get('taskId')}\n")
    sys.stdout.flush()
    logger.info(f"workflow job for task {data.get('taskId')}")
    time.sleep(float(os.environ.get("WORKFLOW_SLEEP", "0")))
    if os.environ.get("WORKFLOW_MODE") == "error":
        logger.error("model weights not found")
        raise RuntimeError("boom")
    mapping = data.get("categorySchema") or [{"schemaId": "face-box"}]
    box = {"x": 10, "y": 20, "width": 30, "height": 40}
    objects = [{"schemaId": mapping[0]["schemaId"], "bounding-box": box}]
    if AnnotationPayload is None:
        return {
            "externalId": data.get("externalId"),
            "objects": objects,
            "classifications": [],
            "relations": [],
        }
    return AnnotationPayload(answer=Answer(objects=objects))


if __name__ == "__main__":
    plugin = ModelPlugin(
        id=os.environ["PLUGIN_ID"],
        secret=os.environ["PLUGIN_SECRET"],
        callback=callback,
        host=HOST,
        concurrency=int(os.environ.get("CONCURRENCY", "1")),
    )
    run(plugin, host=HOST)
