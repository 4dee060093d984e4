"""An Export plugin (public SDK, unmodified) in the style of the v3 sample: it
writes every line of the export it was given back as NDJSON in a zip (plus the
SDK's numTasks), so a test can compare what the user downloads with the DB."""

import io
import json
import os
import zipfile

from imerit_ango.plugins import ExportPlugin, ExportResponse, run

HOST = os.environ["HOST"]


def sample_callback(data):
    logger = data.get("logger")
    logger.info("Plugin session is started!")
    lines = [json.dumps(task) for task in data.get("jsonExport")]
    zip_data = io.BytesIO()
    with zipfile.ZipFile(zip_data, mode="w") as zf:
        zf.writestr("export.ndjson", "".join(line + "\n" for line in lines))
        zf.writestr("meta.json", json.dumps({"numTasks": data.get("numTasks")}))
    logger.info("Plugin session is ended!")
    return ExportResponse(file=zip_data, file_name="passthrough.zip")


if __name__ == "__main__":
    plugin = ExportPlugin(
        id=os.environ["PLUGIN_ID"],
        secret=os.environ["PLUGIN_SECRET"],
        callback=sample_callback,
        host=HOST,
    )
    run(plugin, host=HOST)
