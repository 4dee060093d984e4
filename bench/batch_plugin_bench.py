"""The Batch Model plugin the Batch Model benchmark starts (run it with
.venv-sdk14): the public SDK, unmodified. It pages through the project with
``SDK.get_assets`` and imports one box per asset with ``SDK.import_labels`` in
chunks, then logs how long each phase took:

    configJSON {"page": 1000, "chunk": 2000}

Environment: HOST, PLUGIN_ID, PLUGIN_SECRET (as for any plugin script).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from imerit_ango.plugins import BatchModelPlugin, run
from imerit_ango.sdk import SDK


def callback(data: dict[str, Any]) -> str:
    config = json.loads(data.get("configJSON") or "{}")
    page_size, chunk = int(config.get("page", 1000)), int(config.get("chunk", 2000))
    sdk = SDK(api_key=data["apiKey"], host=os.environ["HOST"])
    project_id = data["projectId"]
    schema_id = data["categorySchema"][0]["schemaId"]
    filters = {"batches": data["batches"]} if data.get("batches") else {}
    t0 = time.perf_counter()
    assets: list[dict[str, Any]] = []
    page = 1
    while True:
        got = sdk.get_assets(project_id, page=page, limit=page_size, filters=filters)
        batch = got["data"]["assets"]
        assets += batch
        if len(batch) < page_size:
            break
        page += 1
    t1 = time.perf_counter()
    box = {"x": 10, "y": 20, "width": 30, "height": 40}
    records = [
        {
            "externalId": a["externalId"],
            "objects": [{"schemaId": schema_id, "bounding-box": box}],
        }
        for a in assets
    ]
    for start in range(0, len(records), chunk):
        sdk.import_labels(project_id, records[start : start + chunk])
    t2 = time.perf_counter()
    data["logger"].info(
        "bench "
        + json.dumps({"assets": len(assets), "paging_s": t1 - t0, "import_s": t2 - t1})
    )
    return "All annotations are imported!"


if __name__ == "__main__":
    plugin = BatchModelPlugin(
        id=os.environ["PLUGIN_ID"],
        secret=os.environ["PLUGIN_SECRET"],
        callback=callback,
    )
    run(plugin, host=os.environ["HOST"])
