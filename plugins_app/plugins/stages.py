"""Adding a workflow Plugin stage: the stage's plugin and preset (or its
suggested mapping and the plugin's default config) pass the same mapping and
config checks as a Run dialog (plugins/kinds/checks.py) before the stage is
saved; runs/workflow.stage_settings checks them again when a task arrives."""

from __future__ import annotations

from plugins_app.plugins.kinds import checks
from plugins_app.plugins.models import PluginType, Preset
from plugins_app.plugins.presets import suggested_mapping
from plugins_app.workspace import workflow
from plugins_app.workspace.lifecycle import TaskActionError
from plugins_app.workspace.models import Project


def workflow_plugin_stage_add(
    project: Project,
    *,
    name: str,
    plugin_id: int | None,
    preset_id: int | None,
    overwrite: bool,
) -> Project:
    """Add a Plugin stage before Review. The stage runs the preset's mapping and
    config when one is chosen, else the plugin's default config and the mapping
    the hub suggests (exact, case-insensitive, then close label names)."""
    plugin = None
    if plugin_id is not None:  # None: the form named no plugin (or no valid id)
        plugin = project.plugins.filter(
            pk=plugin_id, organization_id=project.organization_id, type=PluginType.MODEL
        ).first()
    if plugin is None:
        raise TaskActionError("Choose a Model plugin active on this project.")
    preset = None
    if preset_id:
        preset = Preset.objects.filter(
            pk=preset_id, project=project, plugin=plugin
        ).first()
        if preset is None:
            raise TaskActionError(f"That preset is not one of {plugin.name}'s presets.")
    if preset is not None:
        mapping, config = preset.class_mapping, preset.config_json
        source = f" (from preset “{preset.name}”)"
    else:
        mapping = suggested_mapping(plugin, project)
        config = plugin.default_config or "{}"
        source = " (suggested from the label names; choose a preset to map them)"
    problems = checks.mapping_problems(
        plugin, project, mapping, source=source
    ) + checks.config_problems(config)
    if problems:
        raise TaskActionError(" ".join(problems))
    try:
        stages = workflow.with_plugin_stage(
            project.workflow,
            name=name,
            plugin_id=plugin.pk,
            preset_id=preset.pk if preset else None,
            overwrite=overwrite,
        )
    except workflow.WorkflowError as exc:
        raise TaskActionError(str(exc)) from exc
    if preset is None:
        added = next(s for s in stages if s.get("name") == name.strip())
        added.update(class_mapping=mapping, config_json=config)
    project.workflow = stages
    project.save(update_fields=["workflow"])
    return project
