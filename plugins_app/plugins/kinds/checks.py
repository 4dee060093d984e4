"""The one class-mapping check and the one config check. The Run dialog, the
JSON API (both through runs/creation.run_create), presets and workflow Plugin
stages all call these, so a mapping or a config is refused with the same
message wherever it is entered."""

from __future__ import annotations

from typing import Any

from plugins_app.inputs import json_loads_bounded
from plugins_app.plugins.kinds import kind_for
from plugins_app.plugins.models import Plugin
from plugins_app.workspace.models import Project

NOTHING_MAPPED = (
    "Every class is unmapped: this run could write nothing. Map at least one "
    "class to a label of this project."
)

# Class mapping pairs as a job's categorySchema carries them.
Pairs = list[dict[str, str]]


def config_problems(text: str | None, *, what: str = "Config JSON") -> list[str]:
    """A config (a run's, a preset's, a stage's, a plugin's default) must be
    a JSON object: the samples read keys from it (`json.loads(configJSON)[…]`).
    Empty means {}."""
    try:
        value = json_loads_bounded((text or "").strip() or "{}", what="It")
    except ValueError as exc:
        return [f"{what} is not valid JSON: {exc}"]
    if not isinstance(value, dict):
        return [f'{what} must be a JSON object, like {{"threshold": 0.5}}.']
    return []


def normal_config(text: str | None) -> str:
    """A checked config as stored: stripped, empty as {}."""
    return (text or "").strip() or "{}"


def mapping_problems(
    plugin: Plugin,
    project: Project,
    class_mapping: dict[str, Any],
    *,
    source: str = "",
) -> list[str]:
    """What is wrong with a {model class: schemaId} mapping ("" = unmapped)
    for this plugin on this project; `source` names where it came from (a
    preset) in the messages."""
    known = schema_ids(project)
    problems = []
    mapped = 0
    for model_class, schema_id in class_mapping.items():
        if model_class not in plugin.class_names:
            problems.append(f"“{model_class}”{source} is not a class of {plugin.name}.")
        elif schema_id and schema_id not in known:
            problems.append(
                f"“{model_class}” is mapped to “{schema_id}”{source}, which is not "
                "a label of this project's ontology: choose another label."
            )
        elif schema_id:
            mapped += 1
    if not problems and not mapped and kind_for(plugin.type).needs_classes:
        problems.append(NOTHING_MAPPED)
    return problems


def mapping_pairs(class_mapping: dict[str, Any]) -> Pairs | None:
    """A checked mapping as a run stores it (the job's categorySchema)."""
    pairs = [
        {"schemaId": str(sid), "modelClass": str(mc)}
        for mc, sid in class_mapping.items()
        if sid
    ]
    return pairs or None


def schema_ids(project: Project) -> set[str]:
    return {e["schemaId"] for e in project.ontology_entries() if e.get("schemaId")}
