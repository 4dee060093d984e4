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


class WorkflowError(ValueError):
    """An edit the workflow cannot take (shown to the user)."""


def plugin_stages(workflow: list[Stage] | None) -> list[Stage]:
    return [s for s in stages(workflow) if s.get("type") == PLUGIN]


def with_plugin_stage(
    workflow: list[Stage] | None,
    *,
    name: str,
    plugin_id: int,
    preset_id: int | None = None,
    overwrite: bool = True,
) -> list[Stage]:
    """A copy with a Plugin stage added just before the first Review stage (or
    before Complete): tasks reach it once labeled, and reviewers see its answer."""
    name = (name or "").strip()
    ordered = stages(workflow)
    if not name:
        raise WorkflowError("Give the stage a name.")
    if any(s.get("name", "").lower() == name.lower() for s in ordered):
        raise WorkflowError(f"The workflow already has a stage named “{name}”.")
    stage: Stage = {
        "name": name,
        "type": PLUGIN,
        "plugin": plugin_id,
        "preset": preset_id,
        "overwrite": overwrite,
    }
    before = first_stage_of_type(ordered, REVIEW) or first_stage_of_type(
        ordered, COMPLETE
    )
    index = ordered.index(before) if before is not None else len(ordered)
    return ordered[:index] + [stage] + ordered[index:]


def without_stage(workflow: list[Stage] | None, name: str) -> list[Stage]:
    ordered = stages(workflow)
    stage = stage_named(ordered, name)
    if stage is None or stage.get("type") != PLUGIN:
        raise WorkflowError(f"“{name}” is not a Plugin stage of this workflow.")
    return [s for s in ordered if s is not stage]
