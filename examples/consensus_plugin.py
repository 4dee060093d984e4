"""Example *Event-triggered* plugin: consensus of N labelers' boxes.

With *labels per asset* N > 1 on the project, the hub sends ``label.submitted``
to event plugins only when the N-th labeler submits, with every label of the
round in the job's ``labels``. This plugin merges their boxes by IoU
(examples/consensus.py: overlapping boxes of one class from a majority of
labelers become one mean box) and writes the result as the task's pre-label
for the reviewer (``SDK.import_labels``), with ``consensus_labelers`` and
``consensus_objects`` in the task's metadata. Config JSON: ``iou_threshold``
(default 0.5), ``min_votes`` (default a strict majority).

Register it as an Event-triggered plugin with ``label.submitted`` ticked, then::

    HOST=http://127.0.0.1:8000 PLUGIN_ID=... PLUGIN_SECRET=... \\
        python consensus_plugin.py

Works with imerit-ango 1.3.22 and 1.4.x (a plain callback plugin).
"""

from __future__ import annotations

import json
from typing import Any

from ango_actions import (
    import_prelabel,
    job_logger,
    run_callback,
    sdk_for,
    set_metadata,
)
from consensus import consensus


def merge(job: dict[str, Any]) -> str:
    logger = job_logger(job)
    labels = job.get("labels") or []
    if job.get("event") != "label.submitted" or len(labels) < 2:
        return f"nothing to merge ({len(labels)} label(s) for {job.get('event')})"
    config = json.loads(job.get("configJSON") or "{}")
    merged = consensus(
        [label.get("answer") or {} for label in labels],
        iou_threshold=float(config.get("iou_threshold", 0.5)),
        min_votes=config.get("min_votes"),
    )
    who = ", ".join(str(label.get("submittedBy")) for label in labels)
    logger.info(
        f"Merging {len(labels)} labels of {job.get('externalId')} (by {who}): "
        f"{len(merged['objects'])} object(s) agreed"
    )
    sdk = sdk_for(job)
    import_prelabel(sdk, job["projectId"], job["externalId"], merged)
    set_metadata(
        sdk,
        job["taskId"],
        {
            "consensus_labelers": len(labels),
            "consensus_objects": len(merged["objects"]),
        },
    )
    return f"merged {len(labels)} labels into {len(merged['objects'])} object(s)"


def main() -> None:
    run_callback(merge)


if __name__ == "__main__":
    main()
