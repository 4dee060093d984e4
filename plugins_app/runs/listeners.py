"""Runs started by labeling events: a task entering a workflow Plugin stage.
Registered in RunsConfig.ready(); quick, the run itself is made by Celery."""

from __future__ import annotations

from plugins_app.workspace import events, workflow
from plugins_app.workspace.models import Project, TaskEvent


def on_stage_entered(event: TaskEvent) -> None:
    if event.name != events.TASK_STAGE_ENTERED:
        return
    stage_name = event.data.get("to", "")
    project = Project.objects.filter(tasks=event.task_id).only("workflow").first()
    stage = workflow.stage_named(project.workflow if project else None, stage_name)
    if stage is None or stage.get("type") != workflow.PLUGIN:
        return
    from plugins_app.tasks import workflow_stage_entered

    workflow_stage_entered.delay(event.task_id, stage_name)
