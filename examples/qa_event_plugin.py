"""Example *Event-triggered* plugin: a programmatic QA bot for submitted labels.

Register it in the hub as an Event-triggered plugin, tick ``label.submitted``
under *Run on events*, then run it (imerit-ango 1.3.22 or 1.4.x)::

    HOST=http://127.0.0.1:8000 PLUGIN_ID=... PLUGIN_SECRET=... \\
        python qa_event_plugin.py

For each submitted task it checks the labeler's answer (the job's ``answer``):
at least ``min_objects`` objects, and no bounding box smaller than
``min_box_size`` pixels on a side (config JSON, defaults 1 and 8). A task that
fails gets one issue per problem (``SDK.create_issue``, at the box), is sent back
to the labeling queue (``requeueTasks``) and its metadata records the verdict
(``qa``, ``qa_problems``); a task that passes gets ``qa: passed`` and goes on to
review. It is a plain ``BasePlugin`` callback (``Plugin`` in 1.3.22): the job
is one dict, and the callback must return something (here a one-line verdict)
for the hub to count the run as done — returning None sends nothing and the
run would time out.
"""

from __future__ import annotations

import json
from typing import Any

from ango_actions import (
    create_issue,
    job_logger,
    requeue,
    run_callback,
    sdk_for,
    set_metadata,
)


def problems_of(
    answer: dict[str, Any], config: dict[str, Any]
) -> list[tuple[str, Any]]:
    """(message, position) for each problem of the answer; position [x, y] or None."""
    tools = (answer or {}).get("tools") or []
    min_objects = int(config.get("min_objects", 1))
    min_size = float(config.get("min_box_size", 8))
    found: list[tuple[str, Any]] = []
    if len(tools) < min_objects:
        found.append(
            (f"Expected at least {min_objects} object(s), got {len(tools)}.", None)
        )
    for obj in tools:
        box = obj.get("bounding-box")
        if box and min(box.get("width", 0), box.get("height", 0)) < min_size:
            found.append(
                (
                    f"Box {obj.get('objectId', '?')} is smaller than {min_size:g} px.",
                    [box.get("x", 0), box.get("y", 0)],
                )
            )
    return found


def check(job: dict[str, Any]) -> str:
    logger = job_logger(job)
    if job.get("event") != "label.submitted":
        return f"ignored {job.get('event')}"
    config = json.loads(job.get("configJSON") or "{}")
    task_id, project_id = job["taskId"], job["projectId"]
    logger.info(
        f"QA of {job.get('externalId')} submitted by {job.get('submittedBy')} "
        f"in {job.get('stage')}"
    )
    problems = problems_of(job.get("answer") or {}, config)
    sdk = sdk_for(job)
    if not problems:
        set_metadata(sdk, task_id, {"qa": "passed", "qa_problems": 0})
        logger.info("QA passed")
        return "passed"
    for message, position in problems:
        create_issue(sdk, task_id, message, position)
    set_metadata(sdk, task_id, {"qa": "failed", "qa_problems": len(problems)})
    requeue(sdk, project_id, task_id)
    logger.warning(f"QA failed ({len(problems)} problem(s)); task sent back")
    return f"failed: {len(problems)} problem(s), sent back"


def main() -> None:
    run_callback(check)


if __name__ == "__main__":
    main()
