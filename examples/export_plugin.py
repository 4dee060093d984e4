"""Example Ango *Export* plugin: turns a project's v3 export into a CSV of boxes.

Run it against a hub (see README.md)::

    HOST=http://127.0.0.1:8000 PLUGIN_ID=... PLUGIN_SECRET=... \
        python export_plugin.py

Before calling back, the SDK downloads the export of the stages and batches
chosen in the Run dialog (``data["jsonExport"]``, one v3 task per item, and
``data["numTasks"]``). The callback writes ``boxes.csv`` (one row per bounding
box: externalId, stage, class title, x, y, width, height) and ``summary.json``
(tasks and boxes per class) into a zip and returns it as an ``ExportResponse``;
the SDK uploads it and the run page offers it for download.

Config: ``{"separator": ","}`` (the CSV delimiter), ``{"fail": true}`` raises.
Works with imerit-ango 1.3.22 and 1.4.x.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import zipfile
from collections import Counter
from typing import Any

from imerit_ango.plugins import ExportPlugin, ExportResponse, run
from plugin_common import hub_host, job_logger, parse_config

HOST = hub_host()
COLUMNS = ["externalId", "stage", "class", "x", "y", "width", "height"]


def box_rows(task_line: dict[str, Any]) -> list[list[Any]]:
    """The CSV rows of one v3 export line: one per bounding box."""
    task = task_line.get("task") or {}
    rows = []
    for tool in task.get("tools") or []:
        box = tool.get("bounding-box")
        if isinstance(box, dict):
            rows.append(
                [
                    task_line.get("externalId", ""),
                    task.get("stage", ""),
                    tool.get("title") or tool.get("schemaId", ""),
                    *(box.get(k) for k in ("x", "y", "width", "height")),
                ]
            )
    return rows


def export_boxes(data: dict[str, Any], *_: Any) -> ExportResponse:
    """Export callback; the SDK calls ``callback(data)`` with the job dict."""
    logger = job_logger(data, "export_plugin")
    config = parse_config(data.get("configJSON"))
    if config.get("fail"):
        raise RuntimeError('failing on purpose: the config has "fail": true')
    total = int(data.get("numTasks") or 0)
    logger.info(f"Exporting {total} tasks", extra={"progress": 0, "total": total})
    text = io.StringIO()
    writer = csv.writer(text, delimiter=str(config.get("separator", ","))[:1] or ",")
    writer.writerow(COLUMNS)
    classes: Counter[str] = Counter()
    done = 0
    for done, line in enumerate(data.get("jsonExport") or [], start=1):
        for row in box_rows(line):
            writer.writerow(row)
            classes[row[2]] += 1
        if done % 1000 == 0:
            logger.info(
                f"{done} of {total} tasks", extra={"progress": done, "total": total}
            )
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("boxes.csv", text.getvalue())
        summary = {"tasks": done, "boxes": dict(classes)}
        archive.writestr("summary.json", json.dumps(summary, indent=2))
    logger.info(
        f"Exported {sum(classes.values())} boxes of {done} tasks",
        extra={"progress": done, "total": max(total, done)},
    )
    name = f"boxes-{data.get('projectId', 'project')}.zip"
    return ExportResponse(file=zipped, file_name=name)


def main() -> None:
    plugin_id = os.environ.get("PLUGIN_ID")
    secret = os.environ.get("PLUGIN_SECRET")
    if not plugin_id or not secret:
        sys.exit("Set PLUGIN_ID and PLUGIN_SECRET (and HOST) to the hub's values.")
    # The SDK's REST calls (export, upload URLs) go to `host`; pass HOST here.
    plugin = ExportPlugin(id=plugin_id, secret=secret, callback=export_boxes, host=HOST)
    run(plugin, host=HOST)


if __name__ == "__main__":
    main()
