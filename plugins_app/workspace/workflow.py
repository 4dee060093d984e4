"""A project's workflow: the stages a task moves through, in order.

Stored on `Project.workflow` as a list of dicts, Ango-style:
``{"name": "Label", "type": "label"}``. A Plugin stage also names its plugin and
what to run it with: ``{"name": "Auto-label", "type": "plugin", "plugin": <pk>,
"class_mapping": {...}, "config_json": "..."}``. `Task.stage` holds a stage name.
"""

from __future__ import annotations

from typing import Any

START = "start"
LABEL = "label"
REVIEW = "review"
PLUGIN = "plugin"
COMPLETE = "complete"
STAGE_TYPES = (START, LABEL, REVIEW, PLUGIN, COMPLETE)

Stage = dict[str, Any]


def default_workflow() -> list[Stage]:
    return [
        {"name": "Start", "type": START},
        {"name": "Label", "type": LABEL},
        {"name": "Review", "type": REVIEW},
        {"name": "Complete", "type": COMPLETE},
    ]


def stages(workflow: list[Stage] | None) -> list[Stage]:
    return list(workflow or default_workflow())


def stage_named(workflow: list[Stage] | None, name: str) -> Stage | None:
    return next((s for s in stages(workflow) if s.get("name") == name), None)


def next_stage(workflow: list[Stage] | None, name: str) -> Stage | None:
    """The stage after `name`, or None at the end (or for an unknown name)."""
    ordered = stages(workflow)
    for index, stage in enumerate(ordered[:-1]):
        if stage.get("name") == name:
            return ordered[index + 1]
    return None


def first_stage_of_type(workflow: list[Stage] | None, type_: str) -> Stage | None:
    return next((s for s in stages(workflow) if s.get("type") == type_), None)
