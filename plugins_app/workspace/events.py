"""Labeling events: their names, and the one way to raise one.

`emit` records the event in the task's history (`TaskEvent`) inside the caller's
transaction and, once it commits, tells every listener. Listeners (event-plugin
triggers, workflow Plugin stages) register in their app's `ready()`; they must be
quick and hand real work to Celery, since the labeler's click waits for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from plugins_app.workspace.models import Task, TaskEvent

log = logging.getLogger(__name__)

LABEL_SUBMITTED = "label.submitted"
LABEL_REVIEWED = "label.reviewed"
TASK_SENT_BACK = "task.sent_back"
TASK_STAGE_ENTERED = "task.stage_entered"
# Run-level events of plugins, recorded on the task a run is about.
RUN_SUCCEEDED = "run.succeeded"
RUN_FAILED = "run.failed"
# A plugin run changed the task's answer (data: run, plugin, via, previousAnswer),
# kept it because a person's work was there (run, plugin, reason), or an undo
# gave back the answer the run had replaced (run, by, previousAnswer). Written
# in bulk with the answers themselves (workspace/writes.py): history only,
# never plugin triggers.
ANSWER_WRITTEN = "answer.written"
ANSWER_KEPT = "answer.kept"
ANSWER_RESTORED = "answer.restored"

# Parallel labeling (workspace/jobs.py): every labeling job of the task has
# submitted its part. data: jobs ([{job, tools, classifications, submittedBy,
# answer}] in job order), answer (their union), stage, complete (True).
TASK_JOBS_COMPLETE = "task.jobs_complete"

# What a plugin can be triggered by (the others are recorded, not triggers).
TRIGGER_EVENTS = (LABEL_SUBMITTED, LABEL_REVIEWED, TASK_SENT_BACK, TASK_JOBS_COMPLETE)

Listener = Callable[[TaskEvent], None]
_listeners: list[Listener] = []


def listen(listener: Listener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def emit(
    task: Task,
    name: str,
    *,
    actor: User | None = None,
    actor_label: str = "",
    data: dict[str, Any] | None = None,
) -> TaskEvent:
    event = TaskEvent.objects.create(
        task=task, name=name, actor=actor, actor_label=actor_label, data=data or {}
    )
    transaction.on_commit(lambda: _notify(event))
    return event


def _notify(event: TaskEvent) -> None:
    for listener in _listeners:
        # One broken listener must not keep the others from hearing the event.
        try:
            listener(event)
        except Exception:
            log.exception("listener %r failed on %s", listener, event.name)
