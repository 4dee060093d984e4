"""A Model plugin for tests, written against the public imerit-ango SDK (runs
unmodified under 1.3.22 and 1.4.x). ECHO_MODE picks its behaviour:
ok, error, invalid, plain_dict, big, slow, other_asset (1.3.x: the answer names
another asset's externalId). Prints `HANDLED <session>` per job."""

import os
import sys
import time

from imerit_ango.plugins import ModelPlugin, run

try:  # 1.4.x wants an AnnotationPayload
    from imerit_ango.models.annotate import AnnotationPayload, Answer
except ImportError:  # 1.3.x sends a plain dict verbatim
    AnnotationPayload = Answer = None

MODE = os.environ.get("ECHO_MODE", "ok")


def answer(objects, external_id):
    if MODE == "other_asset":
        external_id = "someone-elses-asset"
    if AnnotationPayload is None or MODE == "plain_dict":
        return {
            "externalId": external_id,
            "objects": objects,
            "classifications": [],
            "relations": [],
        }
    return AnnotationPayload(answer=Answer(objects=objects))


def callback(data):
    logger = data["logger"]
    # One write, so that threads answering at once cannot split the line.
    sys.stdout.write(f"HANDLED {data['session']}\n")
    sys.stdout.flush()
    logger.info("echo got the job", extra={"progress": 1, "total": 2})
    if MODE == "slow":
        time.sleep(float(os.environ.get("ECHO_SLEEP", "1")))
    if MODE == "error":
        logger.error("model weights not found: /models/detector.onnx")
        raise RuntimeError("boom")
    mapping = data.get("categorySchema") or [{"schemaId": "face-box"}]
    box = {"x": 10, "y": 20, "width": 30, "height": 40}
    if MODE == "invalid":
        box = {"x": -5, "y": 20, "width": 99999, "height": 40}
    objects = [{"schemaId": mapping[0]["schemaId"], "bounding-box": box}]
    if MODE == "big":
        objects = objects * int(os.environ.get("ECHO_COPIES", "200000"))
    logger.info("echo done", extra={"progress": 2, "total": 2})
    return answer(objects, data.get("externalId"))


if __name__ == "__main__":
    plugin = ModelPlugin(
        id=os.environ["PLUGIN_ID"],
        secret=os.environ["PLUGIN_SECRET"],
        callback=callback,
        # REST connector mode: the SDK's logger posts to plugin.host.
        host=os.environ["HOST"],
    )
    run(plugin, host=os.environ["HOST"])
