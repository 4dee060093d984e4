"""Plugin setting presets: saving them, and telling when the project's ontology
(or the plugin's classes) changed under a saved one."""

from __future__ import annotations

import difflib
import re
from typing import Any

from django.contrib.auth.models import User

from plugins_app.plugins.kinds import checks
from plugins_app.plugins.models import Plugin, Preset
from plugins_app.workspace import workflow
from plugins_app.workspace.models import Membership, Project


class PresetError(Exception):
    """Bad input for a preset (shown to the user)."""


class PresetPermissionError(PresetError):
    """The user may not change this preset (a 403)."""


def stages_using(preset: Preset) -> list[str]:
    """The workflow Plugin stages of the preset's project that run it."""
    return [
        str(stage.get("name"))
        for stage in workflow.plugin_stages(preset.project.workflow)
        if stage.get("preset") == preset.pk
    ]


def _check_may_change(preset: Preset, user: User | None) -> None:
    """A preset a workflow stage runs labels every task that reaches the stage:
    only an admin of the organization replaces or deletes it. Any member may
    change the others (annotators keep their own presets)."""
    used_by = stages_using(preset)
    if used_by and not _is_admin(user, preset.project.organization_id):
        raise PresetPermissionError(
            f"Preset “{preset.name}” is used by the workflow stage "
            f"“{used_by[0]}”: only an admin can change or delete it. Save yours "
            "under another name."
        )


def _is_admin(user: User | None, organization_id: int) -> bool:
    return bool(
        user
        and user.is_authenticated
        and Membership.objects.filter(
            user=user, organization_id=organization_id, role=Membership.Role.ADMIN
        ).exists()
    )


def preset_delete(*, preset: Preset, user: User | None) -> None:
    _check_may_change(preset, user)
    preset.delete()


def preset_save(
    *,
    project: Project,
    plugin: Plugin,
    name: str,
    class_mapping: dict[str, str],
    config_json: str,
    user: User | None,
) -> Preset:
    """Create the preset, or overwrite the one of the same name."""
    name = (name or "").strip()
    if not name:
        raise PresetError("Give the preset a name.")
    if len(name) > 100:
        raise PresetError("A preset name has at most 100 characters.")
    # The one mapping and config checks (plugins/kinds/checks.py): a preset
    # that could not run is refused with the Run dialog's own message.
    problems = checks.config_problems(config_json) + checks.mapping_problems(
        plugin, project, class_mapping or {}
    )
    if problems:
        raise PresetError(" ".join(problems))
    mapping = {str(k): str(v) for k, v in (class_mapping or {}).items() if k and v}
    existing = Preset.objects.filter(project=project, plugin=plugin, name=name).first()
    if existing is not None:
        _check_may_change(existing, user)
    preset, _ = Preset.objects.update_or_create(
        project=project,
        plugin=plugin,
        name=name,
        defaults={
            "class_mapping": mapping,
            "config_json": (config_json or "").strip() or "{}",
            "created_by": user,
        },
    )
    return preset


def preset_problems(preset: Preset, project: Project | None = None) -> list[str]:
    """What no longer fits: labels gone from the ontology, classes gone from the
    plugin (the one mapping check). An empty list means the preset can be used
    as it is."""
    return checks.mapping_problems(
        preset.plugin, project or preset.project, preset.class_mapping
    )


def broken_schema_ids(preset: Preset) -> set[str]:
    known = checks.schema_ids(preset.project)
    return {sid for sid in preset.class_mapping.values() if sid not in known}


def presets_with_problems(presets: Any) -> list[tuple[Preset, list[str]]]:
    return [(p, preset_problems(p)) for p in presets]


def suggest_mapping(model_class: str, entries: list[dict[str, Any]]) -> str:
    """The ontology label a model class most likely means: an exact title or
    schemaId, then a case-insensitive one, then one equal but for separators and
    a plural "s" ("traffic_lights" = "Traffic light"), then a close name."""
    candidates = [(e.get("title") or "", e["schemaId"]) for e in entries]
    for title, schema_id in candidates:
        if model_class in (title, schema_id):
            return schema_id
    for normalize in (str.lower, _loose):
        wanted = normalize(model_class)
        for title, schema_id in candidates:
            if wanted in (normalize(title), normalize(schema_id)):
                return schema_id
    names = {_loose(title): sid for title, sid in candidates if title}
    close = difflib.get_close_matches(
        _loose(model_class), list(names), n=1, cutoff=0.75
    )
    return names[close[0]] if close else ""


def _loose(name: str) -> str:
    words = re.sub(r"[\s_\-.]+", " ", name.lower()).strip()
    return words[:-1] if words.endswith("s") and len(words) > 3 else words


def suggested_mapping(plugin: Plugin, project: Project) -> dict[str, str]:
    """Every class of the plugin with its suggested label (unmatched left out)."""
    entries = [e for e in project.ontology_entries() if e.get("schemaId")]
    pairs = {c: suggest_mapping(c, entries) for c in plugin.class_names}
    return {c: sid for c, sid in pairs.items() if sid}
