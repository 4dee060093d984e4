"""Example Ango *Batch Model* plugin: pre-labels every image of a project.

Run it against a hub (see README.md)::

    HOST=http://127.0.0.1:8000 PLUGIN_ID=... PLUGIN_SECRET=... \
        python batch_model_plugin.py

For each run it pages through the project's assets (only the chosen batches, if
any) with ``SDK.get_assets``, downloads each asset's image, runs detector.py and
imports the boxes with ``SDK.import_labels``, 50 assets per call. Class names and
config keys are the same as model_plugin.py's (``"fail": true`` makes it raise).
Assets in which nothing was found are not imported, so their labels are kept.

Works with imerit-ango 1.3.22 and 1.4.x.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from detector import detect
from imerit_ango.plugins import BatchModelPlugin, run
from imerit_ango.sdk import SDK
from plugin_common import (
    class_mapping,
    fetch_image,
    hub_host,
    job_logger,
    parse_config,
    split_supported,
    to_objects,
)

try:  # 1.4.x sends a callback's exception to the hub as an ERROR log line
    import imerit_ango.models.annotate  # noqa: F401

    SDK_LOGS_FAILURES = True
except ImportError:  # 1.3.x only prints it locally; the callback reports it
    SDK_LOGS_FAILURES = False

HOST = hub_host()
PAGE_SIZE = 50  # assets per get_assets page
IMPORT_CHUNK = 50  # label records per import_labels call
DONE_MESSAGE = "All annotations are imported!"


def _checked(response: Any, call: str) -> dict[str, Any]:
    # imerit-ango 1.3.x returns the error message (a str) instead of raising.
    if not isinstance(response, dict):
        raise RuntimeError(f"{call} failed: {response or 'no details'}")
    return response


def _asset_key(asset: dict[str, Any]) -> str:
    return str(asset.get("_id") or asset.get("externalId") or asset.get("data"))


def list_assets(
    sdk: SDK, project_id: str, batches: list[str] | None
) -> list[dict[str, Any]]:
    """Every asset of the project (in ``batches``, if given), page by page."""
    filters = {"batches": list(batches)} if batches else {}
    assets: list[dict[str, Any]] = []
    seen: set[str] = set()
    page = 1
    while True:
        response = _checked(
            sdk.get_assets(project_id, page=page, limit=PAGE_SIZE, filters=filters),
            "get_assets",
        )
        body = response.get("data") or {}
        page_assets = [a for a in body.get("assets") or [] if isinstance(a, dict)]
        fresh = [a for a in page_assets if _asset_key(a) not in seen]
        if not fresh:  # empty page, or a host that ignores `page`
            break
        seen.update(_asset_key(a) for a in fresh)
        assets.extend(fresh)
        total = body.get("total")
        if len(page_assets) < PAGE_SIZE:
            break
        if isinstance(total, int) and len(assets) >= total:
            break
        page += 1
    return assets


def run_batch_model(data: dict[str, Any] | None = None, **fields: Any) -> str:
    """Batch Model callback; the SDK calls ``callback(data)`` with the job dict."""
    job = data if data is not None else fields
    logger = job_logger(job, "batch_model_plugin")
    try:
        return label_project(job, logger)
    except Exception as exc:
        if not SDK_LOGS_FAILURES:
            logger.error(f"Plugin callback failed: {exc}")
        raise


def label_project(job: dict[str, Any], logger: logging.Logger) -> str:
    """Detect the mapped classes in every asset and import the boxes."""
    project_id = str(job.get("projectId") or "")
    logger.info(f"Batch model plugin started for project {project_id}")

    config = parse_config(job.get("configJSON"))
    if config.get("fail"):
        raise RuntimeError('failing on purpose: the config has "fail": true')
    if not project_id:
        raise ValueError("the job has no projectId")

    mapping = class_mapping(job.get("categorySchema"))
    classes, unsupported = split_supported(mapping)
    if unsupported:
        logger.warning(f"Skipping unknown plugin classes: {', '.join(unsupported)}")
    if not classes:
        logger.warning(
            "No class was mapped to this plugin's classes (face, coin, blob): "
            "nothing to import. Map the classes and run again."
        )
        return "Please complete class mapping!"

    sdk = SDK(api_key=job.get("apiKey"), host=HOST)
    batches = job.get("batches") or []
    assets = list_assets(sdk, project_id, batches)
    total = len(assets)
    scope = f"batches {', '.join(map(str, batches))}" if batches else "all batches"
    logger.info(
        f"{total} assets to label ({scope})", extra={"progress": 0, "total": total}
    )

    pending: list[dict[str, Any]] = []
    labelled = imported = failed = 0

    def flush() -> None:
        nonlocal imported
        if pending:
            _checked(sdk.import_labels(project_id, list(pending)), "import_labels")
            imported += len(pending)
            logger.info(f"Imported labels for {imported} assets so far")
            pending.clear()

    for done, asset in enumerate(assets, start=1):
        external_id = asset.get("externalId")
        name = external_id or asset.get("data") or "?"
        progress = {"progress": done, "total": total}
        try:
            image = fetch_image(asset.get("data") or "", base=HOST)
        except (OSError, ValueError) as exc:  # network, HTTP, undecodable image
            failed += 1
            logger.warning(
                f"[{done}/{total}] {name}: skipped, could not load its image ({exc})",
                extra=progress,
            )
            continue
        objects = to_objects(detect(image, classes=classes, config=config), mapping)
        if objects:
            labelled += 1
            target = {"externalId": external_id} if external_id else {"data": name}
            pending.append(
                {**target, "objects": objects, "classifications": [], "relations": []}
            )
        logger.info(f"[{done}/{total}] {name}: {len(objects)} objects", extra=progress)
        if len(pending) >= IMPORT_CHUNK:
            flush()
    flush()

    logger.info(
        f"Finished: {labelled} of {total} assets pre-labelled, {failed} failed",
        extra={"progress": total, "total": total},
    )
    if total and failed == total:
        raise RuntimeError("no asset image could be loaded")
    return DONE_MESSAGE


def main() -> None:
    plugin_id = os.environ.get("PLUGIN_ID")
    secret = os.environ.get("PLUGIN_SECRET")
    if not plugin_id or not secret:
        sys.exit("Set PLUGIN_ID and PLUGIN_SECRET (and HOST) to the hub's values.")
    logging.getLogger(__name__).info("Connecting to %s as plugin %s", HOST, plugin_id)
    plugin = BatchModelPlugin(id=plugin_id, secret=secret, callback=run_batch_model)
    run(plugin, host=HOST)


if __name__ == "__main__":
    main()
