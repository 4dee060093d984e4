"""Helpers for hosted-plugin tests: upload and build code synchronously, and
create an event-triggered run the way the trigger service does."""

from __future__ import annotations

import uuid
from pathlib import Path

from plugins_app.hosted.build import build
from plugins_app.hosted.models import HostedCode
from plugins_app.hosted.services import code_upload
from plugins_app.plugins.models import Plugin
from plugins_app.runs.models import Run, WorkItem
from plugins_app.workspace.models import Task

ROOT = Path(__file__).resolve().parent.parent
QA_EXAMPLE = ROOT / "examples" / "hosted_qa" / "main.py"


def upload_and_build(
    plugin: Plugin,
    source: str | bytes,
    *,
    filename: str = "main.py",
    memory_mb: int = 256,
) -> HostedCode:
    data = source.encode() if isinstance(source, str) else source
    code = code_upload(
        plugin, filename=filename, data=data, memory_limit_mb=memory_mb, user=None
    )
    build(code.pk)
    code.refresh_from_db()
    return code


def event_run(plugin: Plugin, task: Task, event: str) -> Run:
    """An event-triggered run of one task (until the triggers' own service is on
    main, the same rows it writes: a Run with trigger and task, one item)."""
    run = Run.objects.create(
        organization_id=task.project.organization_id,
        project=task.project,
        plugin=plugin,
        trigger=event,
        task=task,
    )
    WorkItem.objects.create(
        run=run, plugin=plugin, asset=task.asset, session=uuid.uuid4().hex
    )
    return run


def log_text(run: Run) -> str:
    return "\n".join(f"[{ln.level}] {ln.message}" for ln in run.log_lines.all())
