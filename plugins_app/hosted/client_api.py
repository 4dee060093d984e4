"""What a hosted handler's client may do, executed in the worker on the
handler's behalf. Every call acts on the run's own task through the shared
services of workspace/lifecycle.py; nothing here takes an id from the handler,
so nothing outside the run's task and project can be reached."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plugins_app.hosted.labels import asset_labels
from plugins_app.plugins.models import Plugin
from plugins_app.runs.models import Run
from plugins_app.workspace import lifecycle, workflow
from plugins_app.workspace.models import Task

MAX_ISSUE_CHARS = 5_000
MAX_METADATA_BYTES = 64 * 1024


class CallRefused(Exception):
    """Bad parameters or a call the task's state does not allow."""


@dataclass(frozen=True)
class Scope:
    run: Run
    task: Task
    plugin: Plugin

    @property
    def actor_label(self) -> str:
        return f"plugin {self.plugin.name}"


def _issue_create(scope: Scope, params: dict[str, Any]) -> dict[str, Any]:
    content = params.get("content")
    if not isinstance(content, str) or not content.strip():
        raise CallRefused("an issue needs a non-empty text")
    object_id = params.get("object_id")
    position = {"objectId": str(object_id)} if object_id else {}
    issue = lifecycle.issue_create(
        scope.task,
        content=content[:MAX_ISSUE_CHARS],
        position=position,
        actor_label=scope.actor_label,
    )
    return {"id": issue.pk}


def _send_back(scope: Scope, params: dict[str, Any]) -> dict[str, Any]:
    reason = str(params.get("reason") or "")[:MAX_ISSUE_CHARS]
    task = lifecycle.task_send_back(
        _fresh(scope), actor_label=scope.actor_label, reason=reason
    )
    return {"stage": task.stage, "status": task.status}


def _add_to_review(scope: Scope, params: dict[str, Any]) -> dict[str, Any]:
    task = _fresh(scope)
    current = workflow.stage_named(task.project.workflow, task.stage) or {}
    if current.get("type") != workflow.REVIEW:
        review = workflow.first_stage_of_type(task.project.workflow, workflow.REVIEW)
        if review is None:
            raise CallRefused("this project's workflow has no Review stage")
        task = lifecycle.task_move(
            task, to_stage=review["name"], actor_label=scope.actor_label
        )
    return {"stage": task.stage, "status": task.status}


def _metadata_update(scope: Scope, params: dict[str, Any]) -> dict[str, Any]:
    values = params.get("values")
    if not isinstance(values, dict):
        raise CallRefused("metadata must be a JSON object")
    if len(json.dumps(values)) > MAX_METADATA_BYTES:
        raise CallRefused(f"metadata over {MAX_METADATA_BYTES} bytes")
    task = lifecycle.task_metadata_update(scope.task, values)
    return {"metadata": task.metadata}


def _ontology(scope: Scope, params: dict[str, Any]) -> dict[str, Any]:
    return scope.run.project.ontology or {}


def _labels(scope: Scope, params: dict[str, Any]) -> list[dict[str, Any]]:
    return asset_labels(_fresh(scope))


def _asset(scope: Scope, params: dict[str, Any]) -> dict[str, Any]:
    task = _fresh(scope)
    return {
        "id": str(task.asset_id),
        "externalId": task.asset.external_id,
        "stage": task.stage,
        "status": task.status,
        "metadata": task.metadata,
    }


def _fresh(scope: Scope) -> Task:
    return Task.objects.select_related("project", "asset").get(pk=scope.task.pk)


METHODS: dict[str, Callable[[Scope, dict[str, Any]], Any]] = {
    "issue_create": _issue_create,
    "send_back": _send_back,
    "add_to_review": _add_to_review,
    "metadata_update": _metadata_update,
    "ontology": _ontology,
    "labels": _labels,
    "asset": _asset,
}


def call(scope: Scope, method: Any, params: Any) -> dict[str, Any]:
    """One JSON-RPC call: {"result": ...} or {"error": "why"}."""
    fn = METHODS.get(method) if isinstance(method, str) else None
    if fn is None:
        return {"error": f"unknown method {method!r}"}
    if not isinstance(params, dict):
        return {"error": "params must be an object"}
    try:
        return {"result": fn(scope, params)}
    except (CallRefused, lifecycle.TaskActionError) as exc:
        return {"error": str(exc)}
