"""An export line's `prelabel` block: which plugin, version and run wrote the
task's current pre-label, and whether a person changed the answer since.

Read from the task's history (TaskEvent), which keeps every answer change
with who made it: the run's `answer.written` event carries the version that
answered (workspace/writes.py), and a person's later change is an event of
theirs whose `answer` differs from its `previousAnswer` (a submit, a review,
a send-back that removed the answer).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby
from operator import itemgetter
from typing import Any

from plugins_app.workspace import events
from plugins_app.workspace.models import TaskEvent

# The events read: the run's write, and what people do to an answer (an undo
# gives a run's answer back, which is no person's change).
_READ = (
    events.ANSWER_WRITTEN,
    events.LABEL_SUBMITTED,
    events.LABEL_REVIEWED,
    events.TASK_SENT_BACK,
)
# The task fields an export row needs for the block (exports/lines.py).
PRELABEL_FIELDS = (
    "prelabel_run_id",
    "prelabel_run__plugin__name",
    "prelabel_run__plugin_version",
)


def prelabel_blocks(rows: Iterable[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The block of each exported task (by task id) that holds a plugin's
    pre-label, from one query over a chunk's history."""
    runs = {row["pk"]: row for row in rows if row["prelabel_run_id"]}
    if not runs:
        return {}
    history = (
        TaskEvent.objects.filter(task_id__in=list(runs), name__in=_READ)
        .order_by("task_id", "id")
        .values_list("task_id", "name", "actor_id", "data")
    )
    found = {
        task_id: _block(runs[task_id], of_task)
        for task_id, of_task in groupby(history.iterator(), key=itemgetter(0))
    }
    # A pre-label without history (written before the hub kept one): the run's.
    return {
        task_id: found.get(task_id) or _block(row, ()) for task_id, row in runs.items()
    }


def _block(row: dict[str, Any], history: Iterable[tuple[Any, ...]]) -> dict[str, Any]:
    run_id = row["prelabel_run_id"]
    version = row["prelabel_run__plugin_version"]
    changed = False
    for _task_id, name, actor_id, data in history:
        data = data or {}
        if name == events.ANSWER_WRITTEN and data.get("run") == run_id:
            # The run's (last) write: the version that answered; changes count
            # from here.
            version = data.get("pluginVersion", version)
            changed = False
        elif actor_id is not None and "previousAnswer" in data:
            changed = changed or (data.get("answer") or {}) != (
                data["previousAnswer"] or {}
            )
    return {
        "plugin": row["prelabel_run__plugin__name"],
        "version": version,
        "run": run_id,
        "changedByPerson": changed,
    }
