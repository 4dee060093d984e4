"""The JSON API's operationIds, which generated clients name their methods
after, stay those of before web/api.py became a package of one module per
area (ninja derives them from the view's module)."""

from __future__ import annotations

from typing import Any

from django.test import Client

# Every route of plugins_app/web/api/ as it was served from one module.
WEB_API_OPERATIONS = {
    ("get", "/api/projects"): "list_projects",
    ("get", "/api/projects/{project_id}/tasks"): "list_tasks",
    ("get", "/api/tasks/{task_id}"): "get_task",
    ("get", "/api/tasks/{task_id}/events"): "get_task_events",
    ("post", "/api/tasks/{task_id}/submit"): "submit_task",
    ("post", "/api/tasks/{task_id}/review"): "review_task",
    ("get", "/api/plugins"): "list_plugins",
    ("post", "/api/plugins"): "create_plugin",
    ("get", "/api/plugins/{plugin_id}"): "get_plugin",
    ("patch", "/api/plugins/{plugin_id}"): "update_plugin",
    ("post", "/api/plugins/{plugin_id}/rotate-secret"): "rotate_secret",
    ("get", "/api/plugins/{plugin_id}/code"): "get_code",
    ("post", "/api/plugins/{plugin_id}/code"): "upload_code",
    ("get", "/api/runs"): "list_runs",
    ("post", "/api/runs"): "create_run",
    ("get", "/api/runs/{run_id}"): "get_run",
    ("post", "/api/runs/{run_id}/cancel"): "cancel_run",
    ("post", "/api/runs/{run_id}/retry"): "retry_run",
    ("post", "/api/runs/{run_id}/undo"): "undo_run",
    ("get", "/api/runs/{run_id}/logs"): "get_run_logs",
}


def test_it_keeps_the_operation_ids_of_the_single_module(db: Any) -> None:
    paths = Client().get("/api/openapi.json").json()["paths"]
    served = {
        (method, path): operation["operationId"]
        for path, methods in paths.items()
        for method, operation in methods.items()
    }
    expected = {
        key: f"plugins_app_web_api_{name}" for key, name in WEB_API_OPERATIONS.items()
    }
    assert {key: served.get(key) for key in expected} == expected


def test_it_leaves_other_apps_routers_their_own_ids(db: Any) -> None:
    paths = Client().get("/api/openapi.json").json()["paths"]
    dashboard = paths["/api/plugins/{plugin_id}/dashboard"]["get"]
    assert dashboard["operationId"] == "plugins_app_dashboard_api_plugin_dashboard"
