"""What an event plugin does to a task, through the hub's Ango REST endpoints,
the same way under imerit-ango 1.3.22 and 1.4.x (no hub import).

* ``create_issue``: ``SDK.create_issue`` (``POST /v2/issues``).
* ``requeue``: ``SDK.requeue_tasks`` (1.4.x; 1.3.22 has no such method, so the
  same ``POST /v2/project/{id}/requeueTasks`` body goes through
  ``SDK.make_request``).
* ``import_prelabel``: ``SDK.import_labels`` (``POST /v2/import/labels``).
* ``set_metadata``: the hub's ``POST /v2/task/{id}/metadata`` (no SDK method
  updates task metadata), through ``SDK.make_request``.

1.3.22's ``make_request`` returns the error message (a str) instead of raising;
every helper here raises ``RuntimeError`` on a failed call under both versions.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from imerit_ango.sdk import SDK
from sdk_logging import quiet_sdk_chatter

try:  # the plain callback plugin: BasePlugin in 1.4.x ...
    from imerit_ango.plugins import BasePlugin
except ImportError:  # ... and Plugin in 1.3.22 (same constructor and callback)
    from imerit_ango.plugins import Plugin as BasePlugin

quiet_sdk_chatter()  # every example plugin imports this module first

__all__ = [
    "BasePlugin",
    "create_issue",
    "import_prelabel",
    "requeue",
    "run_callback",
    "sdk_for",
    "set_metadata",
]


def hub_host() -> str:
    return (os.environ.get("HOST") or "http://127.0.0.1:8000").rstrip("/")


def run_callback(callback: Callable[[dict[str, Any]], Any]) -> None:
    """Connect a plain callback plugin with the hub's PLUGIN_ID, PLUGIN_SECRET
    and HOST from the environment, and serve jobs until the connection ends."""
    from imerit_ango.plugins import run

    plugin_id, secret = os.environ.get("PLUGIN_ID"), os.environ.get("PLUGIN_SECRET")
    if not plugin_id or not secret:
        sys.exit("Set PLUGIN_ID and PLUGIN_SECRET (and HOST) to the hub's values.")
    run(BasePlugin(id=plugin_id, secret=secret, callback=callback), host=hub_host())


def sdk_for(job: Mapping[str, Any]) -> SDK:
    """The SDK client with the job's own apiKey (valid for its project only)."""
    return SDK(api_key=job["apiKey"], host=hub_host())


def _checked(response: Any, call: str) -> dict[str, Any]:
    if not isinstance(response, dict) or response.get("status") == "fail":
        raise RuntimeError(f"{call} failed: {response or 'no details'}")
    return response


def create_issue(sdk: SDK, task_id: str, content: str, position: Any = None) -> str:
    """Open an issue on the task; returns its id. ``position`` is [x, y]."""
    response = sdk.create_issue(task_id, content, position=position)
    return _checked(response, "create_issue")["data"]["issue"]["_id"]


def requeue(sdk: SDK, project_id: str, task_id: str, to_stage: str = "") -> int:
    """Send the task back; an empty ``to_stage`` means the first Label stage."""
    filters = {"taskIds": [task_id]}
    if hasattr(sdk, "requeue_tasks"):  # 1.4.x
        response = sdk.requeue_tasks(project_id, to_stage, filters=filters)
    else:  # 1.3.22
        response = sdk.make_request(
            "POST",
            f"/v2/project/{project_id}/requeueTasks",
            {"toStageId": to_stage, "filters": filters, "options": {}},
        )
    return _checked(response, "requeue_tasks")["data"]["requeued"]


def set_metadata(sdk: SDK, task_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``values`` into the task's metadata (None removes a key)."""
    response = sdk.make_request(
        "POST", f"/v2/task/{task_id}/metadata", {"metadata": dict(values)}
    )
    return _checked(response, "set_metadata")["data"]["task"]["metadata"]


def import_prelabel(
    sdk: SDK, project_id: str, external_id: str, answer: Mapping[str, Any]
) -> None:
    """Write ``answer`` as the asset's pre-label (``SDK.import_labels``)."""
    record = {"externalId": external_id, **answer}
    _checked(sdk.import_labels(project_id, [record]), "import_labels")


def job_logger(job: Mapping[str, Any]) -> Any:
    import logging

    return job.get("logger") or logging.getLogger("event-plugin")
