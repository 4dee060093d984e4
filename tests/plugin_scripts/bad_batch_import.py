"""A Batch Model plugin (public SDK, unmodified) that imports one good and one
bad record: the hub must refuse the whole call and say which record is bad."""

import os

from imerit_ango.plugins import BatchModelPlugin, run
from imerit_ango.sdk import SDK


def callback(data):
    sdk = SDK(api_key=data["apiKey"], host=os.environ["HOST"])
    project_id = data["projectId"]
    assets = sdk.get_assets(project_id, page=1, limit=2)["data"]["assets"]
    good = {
        "schemaId": "face-box",
        "bounding-box": {"x": 1, "y": 1, "width": 5, "height": 5},
    }
    bad = {
        "schemaId": "no-such-tool",
        "bounding-box": {"x": 1, "y": 1, "width": 5, "height": 5},
    }
    sdk.import_labels(
        project_id,
        [
            {"externalId": assets[0]["externalId"], "objects": [good]},
            {"externalId": assets[1]["externalId"], "objects": [bad]},
        ],
    )
    return "All annotations are imported!"


if __name__ == "__main__":
    plugin = BatchModelPlugin(
        id=os.environ["PLUGIN_ID"],
        secret=os.environ["PLUGIN_SECRET"],
        callback=callback,
    )
    run(plugin, host=os.environ["HOST"])
