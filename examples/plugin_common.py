"""Helpers shared by the example plugins (no SDK import).

They read the fields of a job the way the Ango SDK hands it to a callback: one
``dict`` with ``configJSON`` (a JSON *string*, possibly null), ``categorySchema``
(the class mapping ``[{"schemaId", "modelClass"}]`` or null), ``dataURL`` and a
``logger`` added by the SDK.
"""

from __future__ import annotations

import io
import json
import logging
import os
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from detector import SUPPORTED_CLASSES, Detection
from PIL import Image
from sdk_logging import quiet_sdk_chatter

DEFAULT_HOST = "http://127.0.0.1:8000"
FETCH_TIMEOUT = 60.0  # seconds, per image download
USER_AGENT = "plugin-hub-example/1.0"

quiet_sdk_chatter()  # every example imports this module before its plugin


def hub_host() -> str:
    """The hub's base URL from ``$HOST``, without a trailing slash.

    The SDK builds REST URLs as ``host + "/v2/..."``, so a trailing slash would
    double up.
    """
    return (os.environ.get("HOST") or DEFAULT_HOST).rstrip("/")


def job_logger(job: Mapping[str, Any], name: str) -> logging.Logger:
    """The SDK's per-job ``PluginLogger`` (its lines reach the hub), or a local one.

    Log with a single preformatted string, e.g. ``logger.info(f"...")``: the
    1.3.x logger concatenates extra positional arguments instead of %-formatting
    them.
    """
    logger = job.get("logger")
    return logger if logger is not None else logging.getLogger(name)


def parse_config(raw: Any) -> dict[str, Any]:
    """Decode ``configJSON``; null or blank means ``{}``."""
    if raw is None:
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    if not isinstance(raw, (str, bytes)):
        raise ValueError(f"configJSON must be a JSON string, got {type(raw).__name__}")
    if not raw.strip():
        return {}
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"configJSON is not valid JSON: {exc}") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ValueError("configJSON must be a JSON object")
    return config


def class_mapping(category_schema: Any) -> dict[str, list[str]]:
    """``{modelClass: [schemaId, ...]}`` from a job's ``categorySchema``.

    Returns ``{}`` when no class was mapped (``categorySchema`` null or empty).
    """
    mapping: dict[str, list[str]] = {}
    if not category_schema:
        return mapping
    if not isinstance(category_schema, list):
        raise ValueError("categorySchema must be a list of {schemaId, modelClass}")
    for entry in category_schema:
        if not isinstance(entry, Mapping):
            continue
        model_class = entry.get("modelClass")
        schema_id = entry.get("schemaId")
        if not model_class or not schema_id:
            continue
        schema_ids = mapping.setdefault(str(model_class), [])
        if str(schema_id) not in schema_ids:
            schema_ids.append(str(schema_id))
    return mapping


def split_supported(mapping: Mapping[str, list[str]]) -> tuple[list[str], list[str]]:
    """Split mapped class names into (supported by the detector, unsupported)."""
    supported, unsupported = [], []
    for name in sorted(mapping):
        if name.strip().lower() in SUPPORTED_CLASSES:
            supported.append(name)
        else:
            unsupported.append(name)
    return supported, unsupported


def fetch_image(url: str, *, base: str | None = None) -> np.ndarray:
    """Download an image (no auth) and return it as an ``(H, W, 3)`` uint8 array.

    A URL starting with ``/`` is resolved against ``base`` (the hub's HOST).
    ``data:`` and ``file:`` URLs work too (urllib handles them).
    """
    if not url:
        raise ValueError("the job has no image URL")
    if base and url.startswith("/"):
        url = urllib.parse.urljoin(base + "/", url)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:
        payload = response.read()
    with Image.open(io.BytesIO(payload)) as picture:
        return np.asarray(picture.convert("RGB"))


def to_objects(
    detections: Iterable[Detection], mapping: Mapping[str, list[str]]
) -> list[dict[str, Any]]:
    """Ango import objects for ``detections``; unmapped classes are skipped."""
    objects: list[dict[str, Any]] = []
    for detection in detections:
        for schema_id in mapping.get(detection.model_class, []):
            objects.append(
                {
                    "schemaId": schema_id,
                    "bounding-box": {
                        "x": round(detection.x, 1),
                        "y": round(detection.y, 1),
                        "width": round(detection.width, 1),
                        "height": round(detection.height, 1),
                    },
                }
            )
    return objects
