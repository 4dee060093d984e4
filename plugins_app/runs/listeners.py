"""Runs started by labeling events: a triggering event (a plugin's trigger), a
task entering a workflow Plugin stage. Registered in RunsConfig.ready(); quick,
the run itself is made by Celery once the event's transaction has committed."""

from __future__ import annotations

from plugins_app.plugins.triggers import triggered_plugin_ids
from plugins_app.runs.tasks import create_event_run, workflow_stage_entered
from plugins_app.workspace import events, workflow
from plugins_app.workspace.models import Project, TaskEvent


def on_task_event(event: TaskEvent) -> None:
    """events.listen hook: one Celery task per triggered plugin."""
    if event.name not in events.TRIGGER_EVENTS:
        return
    # A consensus submission short of the N-th starts nothing.
    if event.data.get("complete") is False:
        return
    for plugin_id in triggered_plugin_ids(event.task.project_id, event.name):
        create_event_run.delay(plugin_id, event.pk)


def on_stage_entered(event: TaskEvent) -> None:
    if event.name != events.TASK_STAGE_ENTERED:
        return
    stage_name = event.data.get("to", "")
    project = Project.objects.filter(tasks=event.task_id).only("workflow").first()
    stage = workflow.stage_named(project.workflow if project else None, stage_name)
    if stage is None or stage.get("type") != workflow.PLUGIN:
        return
    workflow_stage_entered.delay(event.task_id, stage_name)
