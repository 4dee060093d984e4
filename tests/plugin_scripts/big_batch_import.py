"""A Batch Model plugin (public SDK, unmodified) in the style of the sample:
pages through every asset with get_assets, builds one record per asset and
imports them all in one import_labels call. `configJSON` {"bad": [indexes]}
spoils those records; the script logs what the SDK handed back."""

import json
import os

from imerit_ango.plugins import BatchModelPlugin, run
from imerit_ango.sdk import SDK

PAGE = 1000


def callback(data):
    logger = data["logger"]
    sdk = SDK(api_key=data["apiKey"], host=os.environ["HOST"])
    project_id = data["projectId"]
    bad = set(json.loads(data["configJSON"]).get("bad", []))
    schema_id = data["categorySchema"][0]["schemaId"]
    assets, page = [], 1
    while True:
        got = sdk.get_assets(project_id, page=page, limit=PAGE)["data"]["assets"]
        assets += got
        if len(got) < PAGE:
            break
        page += 1
    logger.info(f"paged {len(assets)} assets in {page} pages")
    records = []
    for index, asset in enumerate(assets):
        box = {"x": 1, "y": 1, "width": 5, "height": 5}
        if index in bad:
            box["x"] = 10**6
        records.append(
            {
                "externalId": asset["externalId"],
                "objects": [{"schemaId": schema_id, "bounding-box": box}],
            }
        )
    try:
        answer = sdk.import_labels(project_id, records)
    except Exception as exc:  # 1.4.x raises with the response body as text
        answer = json.loads(str(exc))
    logger.info("import answer:" + json.dumps(answer))
    return "done"


if __name__ == "__main__":
    plugin = BatchModelPlugin(
        id=os.environ["PLUGIN_ID"],
        secret=os.environ["PLUGIN_SECRET"],
        callback=callback,
    )
    run(plugin, host=os.environ["HOST"])
