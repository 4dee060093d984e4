"""Helpers for hosted-plugin tests: upload and build code synchronously, and
create an event-triggered run the way the trigger service does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plugins_app.hosted.build import build
from plugins_app.hosted.invoices import invoice_answer
from plugins_app.hosted.models import HostedCode
from plugins_app.hosted.services import code_upload
from plugins_app.plugins.models import Plugin
from plugins_app.runs.creation import run_create_for_event
from plugins_app.runs.models import Run
from plugins_app.workspace.lifecycle import task_submit
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
    """The run the trigger service creates for the task's last `event`."""
    last = task.events.filter(name=event).last()
    assert last is not None, f"no {event} on {task}"
    run = run_create_for_event(plugin.pk, last.pk)
    assert run is not None
    return run


def submit(workspace: Any, external_id: str, *, iban: str, currency: str) -> Task:
    """A labeler submits an invoice label (the task moves on to Review)."""
    task = workspace.asset(external_id).task
    return task_submit(
        task, user=workspace.annotator, answer=invoice_answer(iban, currency)
    )


def log_text(run: Run) -> str:
    return "\n".join(f"[{ln.level}] {ln.message}" for ln in run.log_lines.all())
