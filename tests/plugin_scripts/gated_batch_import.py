"""A Batch Model plugin (public SDK, unmodified) that works in steps a test
opens one at a time, so progress can be looked at before the end without any
timing: it logs `progress`/`total` for the first GATE_CHUNK assets, waits for
the file GATE_DIR/logged; imports those assets in one import_labels call,
waits for GATE_DIR/imported; then imports the rest."""

import os
import time
from pathlib import Path

from imerit_ango.plugins import BatchModelPlugin, run
from imerit_ango.sdk import SDK

GATES = Path(os.environ["GATE_DIR"])
CHUNK = int(os.environ.get("GATE_CHUNK", "4"))


def wait_for_gate(name):
    while not (GATES / name).exists():
        time.sleep(0.05)


def callback(data):
    logger = data["logger"]
    sdk = SDK(api_key=data["apiKey"], host=os.environ["HOST"])
    project_id = data["projectId"]
    schema_id = data["categorySchema"][0]["schemaId"]
    assets = sdk.get_assets(project_id, page=1, limit=1000)["data"]["assets"]
    total = len(assets)
    records = [
        {
            "externalId": asset["externalId"],
            "objects": [
                {
                    "schemaId": schema_id,
                    "bounding-box": {"x": 1, "y": 1, "width": 5, "height": 5},
                }
            ],
        }
        for asset in assets
    ]
    for done in range(1, CHUNK + 1):
        logger.info(
            f"[{done}/{total}] detected", extra={"progress": done, "total": total}
        )
    wait_for_gate("logged")
    sdk.import_labels(project_id, records[:CHUNK])
    logger.info(f"imported {CHUNK}")
    wait_for_gate("imported")
    sdk.import_labels(project_id, records[CHUNK:])
    logger.info("imported all", extra={"progress": total, "total": total})
    return "All annotations are imported!"


if __name__ == "__main__":
    plugin = BatchModelPlugin(
        id=os.environ["PLUGIN_ID"],
        secret=os.environ["PLUGIN_SECRET"],
        callback=callback,
    )
    run(plugin, host=os.environ["HOST"])
