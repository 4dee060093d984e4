"""Example *Event-triggered* plugin: merge a parallel-labeling task's jobs.

A project split into labeling jobs (e.g. *Boxes*: the face and coin tools;
*Scene*: the scene classification) has each task labeled once per job, by
that job's members. When every job is in, the hub raises
``task.jobs_complete``; its job carries ``jobs``: one entry per labeling job,
``{"job", "tools", "classifications", "submittedBy", "answer"}``, where
``answer`` holds that job's part only. This plugin unions the parts (keeping
from each job only its own tools and classifications, and renaming an objectId
two jobs both used), writes the result as the task's answer for review
(``SDK.import_labels``) and records ``merged_jobs`` / ``merged_objects`` in the
task's metadata. The hub lets this one write replace the answer once: every
job's label stays in its submission, and the write can be undone.

Register it as an Event-triggered plugin with ``task.jobs_complete`` ticked,
then::

    HOST=http://127.0.0.1:8000 PLUGIN_ID=... PLUGIN_SECRET=... \\
        python merge_jobs_plugin.py

Works with imerit-ango 1.3.22 and 1.4.x (a plain callback plugin).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ango_actions import (
    import_prelabel,
    job_logger,
    run_callback,
    sdk_for,
    set_metadata,
)

EVENT = "task.jobs_complete"


def merge_parts(jobs: list[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The union of the jobs' parts, each limited to its own job's schemaIds
    (a stray object of another job's tool is not this job's to give), in
    Ango's import naming (``objects``; the hub's answers say ``tools``)."""
    merged: dict[str, list[Any]] = {
        "objects": [],
        "classifications": [],
        "relations": [],
    }
    seen_ids: set[str] = set()
    for job in jobs:
        answer = job.get("answer") or {}
        tools = set(job.get("tools") or [])
        classifications = set(job.get("classifications") or [])
        renamed: dict[str, str] = {}
        for obj in answer.get("tools") or []:
            if obj.get("schemaId") not in tools:
                continue
            obj = dict(obj)
            object_id = str(obj.get("objectId") or f"{job.get('job')}-object")
            if object_id in seen_ids:  # two jobs' labelers picked the same id
                renamed[object_id] = f"{job.get('job')}-{object_id}"
                object_id = renamed[object_id]
            obj["objectId"] = object_id
            seen_ids.add(object_id)
            merged["objects"].append(obj)
        merged["classifications"] += [
            c
            for c in answer.get("classifications") or []
            if c.get("schemaId") in classifications
        ]
        merged["relations"] += [
            _renamed(relation, renamed) for relation in answer.get("relations") or []
        ]
    return merged


def _renamed(relation: Mapping[str, Any], renamed: Mapping[str, str]) -> dict:
    def ref(value: Any) -> Any:
        if isinstance(value, list):
            return [ref(v) for v in value]
        if isinstance(value, str):
            return renamed.get(value, value)
        if isinstance(value, dict) and "objectId" in value:
            return {
                **value,
                "objectId": renamed.get(value["objectId"], value["objectId"]),
            }
        return value

    return {
        k: ref(v) if k in ("from", "to", "group") else v for k, v in relation.items()
    }


def merge(job: dict[str, Any]) -> str:
    logger = job_logger(job)
    jobs = job.get("jobs") or []
    if job.get("event") != EVENT or not jobs:
        return f"nothing to merge ({len(jobs)} job(s) for {job.get('event')})"
    merged = merge_parts(jobs)
    who = ", ".join(f"{j.get('job')} by {j.get('submittedBy')}" for j in jobs)
    logger.info(
        f"Merging {len(jobs)} jobs of {job.get('externalId')} ({who}): "
        f"{len(merged['objects'])} object(s), "
        f"{len(merged['classifications'])} classification(s)"
    )
    sdk = sdk_for(job)
    import_prelabel(sdk, job["projectId"], job["externalId"], merged)
    set_metadata(
        sdk,
        job["taskId"],
        {"merged_jobs": len(jobs), "merged_objects": len(merged["objects"])},
    )
    return f"merged {len(jobs)} jobs into {len(merged['objects'])} object(s)"


def main() -> None:
    run_callback(merge)


if __name__ == "__main__":
    main()
