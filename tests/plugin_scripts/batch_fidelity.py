"""A Batch Model plugin (public SDK, unmodified) that adds one batch with
create_batch and reads assets with the `_id` / `externalId` filters put in the
query string itself, as older SDKs and hand-written scripts do. It logs what
it got back, one line each, for the test to read from the run's log."""

import json
import os

from imerit_ango.plugins import BatchModelPlugin, run
from imerit_ango.sdk import SDK


def callback(data):
    logger = data["logger"]
    sdk = SDK(api_key=data["apiKey"], host=os.environ["HOST"])
    project = data["projectId"]
    # 1.3.22 posts every existing batch plus this one; 1.4.x posts the name.
    sdk.create_batch(project, "Night shots")
    base = f"/v2/project/{project}/assets?page=1&limit=50"
    by_external = sdk.make_request("GET", f"{base}&externalId=coins&externalId=moon")
    ids = [a["externalId"] for a in by_external["data"]["assets"]]
    logger.info("externalId:" + json.dumps(sorted(ids)))
    first = by_external["data"]["assets"][0]["_id"]
    by_id = sdk.make_request("GET", f"{base}&_id={first}")
    logger.info("_id:" + json.dumps([a["externalId"] for a in by_id["data"]["assets"]]))
    return "done"


if __name__ == "__main__":
    plugin = BatchModelPlugin(
        id=os.environ["PLUGIN_ID"],
        secret=os.environ["PLUGIN_SECRET"],
        callback=callback,
    )
    run(plugin, host=os.environ["HOST"])
