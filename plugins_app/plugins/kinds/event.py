"""Event-triggered plugins: a run per task event they subscribe to (submitted,
reviewed, moved…), never from a Run dialog."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plugins_app.plugins.kinds.base import Kind, asset_file_link, base_job
from plugins_app.plugins.models import PluginType

if TYPE_CHECKING:
    from plugins_app.runs.models import WorkItem

# Keys of an event's data that are bookkeeping, not part of the plugin's job.
_EVENT_DATA_HIDDEN = ("complete",)


class EventKind(Kind):
    type = PluginType.EVENT
    label = "Event-triggered"
    description = (
        "Runs by itself when a task event it is set to (Run on events) happens "
        "on a project it is active on; there is no Run button."
    )
    register_fields = ("trigger_events",)
    runnable = False
    not_runnable_reason = "runs on task events"

    def build_job(self, item: WorkItem, *, api_key: str) -> dict[str, Any]:
        """The event, the task and its asset, plus what the event carried
        (answer, submittedBy, labels, verdict...; for task.jobs_complete,
        `jobs`: each labeling job's part, what a merging plugin reads)."""
        job = base_job(item, api_key=api_key)
        run, asset = item.run, item.asset
        task, event = run.task, run.event
        assert asset is not None and task is not None
        data = dict(event.data) if event is not None else {}
        job.update(
            {
                "event": run.trigger,
                "eventId": str(event.pk) if event is not None else "",
                "taskId": str(task.pk),
                "assetId": str(asset.pk),
                "externalId": asset.external_id,
                "dataURL": asset_file_link(asset.pk),
                "stage": data.get("stage", task.stage),
                "answer": data.get("answer", task.answer),
                "submittedBy": data.get("submittedBy", ""),
                "labels": data.get("labels", []),
                "metadata": task.metadata,
            }
        )
        for key, value in data.items():
            if key not in _EVENT_DATA_HIDDEN:
                job.setdefault(key, value)
        return job
