"""A Markdown plugin in the style of Ango's public sample: it decodes the CSV
(`inputFile`, base64), fills the template's |column| placeholders for each row,
creates the batches named in a `batch` column, and uploads the documents with
upload_files_cloud (raw markdown as `data`). Runs unmodified under imerit-ango
1.3.22 and 1.4.x; the csv module replaces the sample's pandas.

    HOST=http://127.0.0.1:8000 PLUGIN_ID=... PLUGIN_SECRET=... python markdown_plugin.py
Config JSON: {"batch_name_column": "AUTO_DETECT" | "IGNORE" | <column>,
              "external_id_columns": [<column>, ...], "upload_batch_size": 100}
"""

import csv
import io
import json
import os
from base64 import b64decode
from html import unescape

from imerit_ango.plugins import MarkdownPlugin, run
from imerit_ango.sdk import SDK

HOST = os.environ.get("HOST", "http://127.0.0.1:8000").rstrip("/")
PLUGIN_ID = os.environ["PLUGIN_ID"]
PLUGIN_SECRET = os.environ["PLUGIN_SECRET"]
BATCH_KEYWORDS = ["batch", "batch_name", "batch-name", "batchname"]


def batch_column(config, columns):
    wanted = config.get("batch_name_column", "AUTO_DETECT")
    if wanted == "IGNORE":
        return None
    if wanted in columns:
        return wanted
    return next((c for c in columns if c.lower() in BATCH_KEYWORDS), None)


def callback(data):
    logger = data.get("logger")
    project_id = data.get("projectId")
    config = json.loads(data.get("configJSON") or "{}")
    logger.info("Plugin session is started!")
    sdk = SDK(api_key=data.get("apiKey"), host=HOST)

    text = b64decode(data.get("inputFile")).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    columns = list(rows[0].keys()) if rows else []
    batch_field = batch_column(config, columns)
    id_columns = config.get("external_id_columns", [])
    size = max(1, int(config.get("upload_batch_size", 100)))

    if batch_field:
        existing = [b["name"] for b in sdk.get_batches(project_id)]
        for name in dict.fromkeys(row[batch_field] for row in rows):
            if name and name not in existing:
                sdk.create_batch(project_id=project_id, batch_name=name)

    template = unescape(data.get("markdownText", ""))
    response = {"status": "success"}
    logger.info(
        f"Files Uploaded: [{len(rows)}/0]", extra={"progress": 0, "total": len(rows)}
    )
    for start in range(0, len(rows), size):
        assets = []
        for index in range(start, min(start + size, len(rows))):
            row = rows[index]
            document = template
            for column in columns:
                document = document.replace("|" + column + "|", row[column] or "")
            if id_columns:
                external_id = "_".join(row[c] for c in id_columns)
            else:
                external_id = str(index).zfill(5) + ".md"
            asset = {"data": document, "externalId": external_id}
            if batch_field and row[batch_field]:
                asset["batches"] = [row[batch_field]]
            assets.append(asset)
        response = sdk.upload_files_cloud(project_id=project_id, assets=assets)
        done = min(start + size, len(rows))
        logger.info(
            f"Files Uploaded: [{len(rows)}/{done}]",
            extra={"progress": done, "total": len(rows)},
        )
        if response.get("status") != "success":
            break

    logger.info("Plugin session is ended!")
    if response.get("status") == "success":
        return "All markdown files are uploaded!"
    logger.warning(response.get("message", ""))
    return "Error: " + str(response.get("message"))


if __name__ == "__main__":
    plugin = MarkdownPlugin(id=PLUGIN_ID, secret=PLUGIN_SECRET, callback=callback)
    run(plugin, host=HOST)
