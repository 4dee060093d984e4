"""Example Ango *Model* plugin: boxes faces, coins and blobs in one image.

Run it against a hub (see README.md)::

    HOST=http://127.0.0.1:8000 PLUGIN_ID=... PLUGIN_SECRET=... python model_plugin.py

The plugin's class names are ``face``, ``coin`` and ``blob`` (see detector.py).
Config JSON keys are those of detector.py, plus ``"fail": true`` to make the
callback raise (to see how the hub shows a failed run).

Works with imerit-ango 1.3.22 (the callback returns a plain dict) and 1.4.x (it
returns an ``AnnotationPayload``).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from detector import detect
from imerit_ango.plugins import ModelPlugin, run
from plugin_common import (
    class_mapping,
    fetch_image,
    hub_host,
    job_logger,
    parse_config,
    split_supported,
    to_objects,
)

try:  # imerit-ango >= 1.4: Model callbacks must return an AnnotationPayload.
    from imerit_ango.models.annotate import AnnotationPayload, Answer
except ImportError:  # imerit-ango 1.3.x: they return a plain dict.
    AnnotationPayload = None
    Answer = None

# 1.4.x sends a callback's exception to the hub as an ERROR log line itself;
# 1.3.x only prints it locally, so the callback reports it (see run_model).
SDK_LOGS_FAILURES = AnnotationPayload is not None

HOST = hub_host()
CONCURRENCY = int(os.environ.get("CONCURRENCY", "1"))  # parallel workflow tasks

STEPS = 3  # download, detect, answer: the "total" of the progress log lines


def make_answer(external_id: str, objects: list[dict[str, Any]]) -> Any:
    """The callback's return value, in the shape the installed SDK expects."""
    if AnnotationPayload is not None:
        return AnnotationPayload(
            answer=Answer(objects=objects, classifications=[], relations=[])
        )
    return {
        "externalId": external_id,
        "objects": objects,
        "classifications": [],
        "relations": [],
    }


def run_model(data: dict[str, Any] | None = None, **fields: Any) -> Any:
    """Model callback.

    The SDK calls ``callback(data)`` with the job dict; ``callback(**data)`` (the
    pre-2024 samples' convention) works too.
    """
    job = data if data is not None else fields
    logger = job_logger(job, "model_plugin")
    try:
        return label_image(job, logger)
    except Exception as exc:
        if not SDK_LOGS_FAILURES:
            logger.error(f"Plugin callback failed: {exc}")
        raise


def label_image(job: dict[str, Any], logger: logging.Logger) -> Any:
    """Detect the mapped classes in the job's image and build the answer."""
    external_id = str(job.get("externalId") or job.get("assetId") or "")
    logger.info(
        f"Model plugin started for asset {external_id or '?'}",
        extra={"progress": 0, "total": STEPS},
    )

    config = parse_config(job.get("configJSON"))
    if config.get("fail"):
        raise RuntimeError('failing on purpose: the config has "fail": true')

    mapping = class_mapping(job.get("categorySchema"))
    if not mapping:
        logger.warning(
            "No class was mapped to this plugin's classes (face, coin, blob): "
            "returning no objects. Map the classes and run again."
        )
        return make_answer(external_id, [])
    classes, unsupported = split_supported(mapping)
    if unsupported:
        logger.warning(f"Skipping unknown plugin classes: {', '.join(unsupported)}")
    if not classes:
        logger.warning("None of the mapped classes is face, coin or blob")
        return make_answer(external_id, [])

    image = fetch_image(job.get("dataURL") or "", base=HOST)
    height, width = image.shape[:2]
    logger.info(
        f"Downloaded the image ({width}x{height})",
        extra={"progress": 1, "total": STEPS},
    )

    detections = detect(image, classes=set(classes), config=config)
    counts = {name: 0 for name in classes}
    for detection in detections:
        counts[detection.model_class] += 1
    summary = ", ".join(f"{n} {name}" for name, n in counts.items())
    logger.info(f"Detected {summary}", extra={"progress": 2, "total": STEPS})

    objects = to_objects(detections, mapping)
    logger.info(
        f"Returning {len(objects)} objects", extra={"progress": 3, "total": STEPS}
    )
    return make_answer(external_id, objects)


def main() -> None:
    plugin_id = os.environ.get("PLUGIN_ID")
    secret = os.environ.get("PLUGIN_SECRET")
    if not plugin_id or not secret:
        sys.exit("Set PLUGIN_ID and PLUGIN_SECRET (and HOST) to the hub's values.")
    logging.getLogger(__name__).info("Connecting to %s as plugin %s", HOST, plugin_id)
    plugin = ModelPlugin(
        id=plugin_id,
        secret=secret,
        callback=run_model,
        host=HOST,  # used for REST calls (overwrite=false, workflow stages)
        concurrency=CONCURRENCY,
    )
    run(plugin, host=HOST)


if __name__ == "__main__":
    main()
