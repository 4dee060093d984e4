"""Production mode: the same code on PostgreSQL and Redis (channel layer and
Celery broker), every part in its own process: uvicorn, a Celery worker, the
CLI, and real SDK plugins. Skipped only when the services are not reachable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hub import wait_for
from tests.production import (
    Stack,
    model_plugin,
    needs_services,
    project_of,
    start_run,
    wait_live,
)

pytestmark = needs_services


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Stack, dict[str, Any]]]:
    # One stack for both tests: they touch different projects (the model
    # plugin's runs; the invoice project's submits) and count only their own.
    hub = Stack(tmp_path_factory.mktemp("production-mode"))
    try:
        info = hub.start()
        yield hub, info
    finally:
        hub.stop()


def test_it_runs_plugins_on_postgresql_and_redis_across_processes(
    stack: tuple[Stack, dict[str, Any]], tmp_path: Path
) -> None:
    hub, info = stack
    plugins = [
        hub.connect_plugin("a", tmp_path, sdk=sdk, env={}) for sdk in ("1.3.22", "1.4")
    ]
    api = hub.api()
    plugin = model_plugin(api)
    wait_live(api, plugin["id"], 2)
    project = project_of(api, plugin["id"])

    # Created in the ASGI process (JSON API) and in a separate process (CLI):
    # both reach plugins through Redis.
    run_id = start_run(api, plugin["id"], "astronaut", "coins", "camera")
    cli = json.loads(
        hub.manage(
            "run_plugin",
            "--plugin",
            plugin["public_id"],
            "--project",
            str(project),
            "--asset",
            "rocket",
            "--map",
            "face=face-box",
            "--wait",
            "--timeout",
            "60",
        )  # fmt: skip
    )
    assert cli["status"] == "succeeded", cli
    wait_for(
        lambda: api.get(f"/api/runs/{run_id}").json()["status"] == "succeeded",
        timeout=60,
        what="the API run to succeed",
    )
    logs = api.get(f"/api/runs/{run_id}/logs").json()
    assert any(line["message"] == "echo done" for line in logs)
    handled = [session for p in plugins for session in p.handled()]
    assert len(handled) == 4  # 3 assets + 1, each handled once


def test_a_submit_runs_the_hosted_qa_bot_in_its_sandbox_on_the_worker(
    stack: tuple[Stack, dict[str, Any]],
) -> None:
    # seed_demo uploads examples/hosted_qa as a hosted plugin triggered by
    # submits on the invoice project; the production worker builds it, and
    # runs each event's handler in bubblewrap, acting through the client.
    hub, _ = stack
    api = hub.api()
    wait_for(
        lambda: hub.sql("SELECT status FROM hosted_hostedcode") == "active",
        timeout=60,
        what=f"the worker to build the hosted QA bot\n{hub.logs()}",
    )
    project = next(
        p for p in api.get("/api/projects").json() if p["name"].startswith("Invoices")
    )
    tasks = api.get(f"/api/projects/{project['id']}/tasks?stage=Label").json()
    bad, good = sorted(tasks, key=lambda t: t["external_id"])[:2]  # DE IBAN; FR+USD
    for task in (bad, good):
        submitted = api.post(f"/api/tasks/{task['id']}/submit", json={})
        assert submitted.status_code == 200, submitted.text

    def verdict(task_id: int) -> dict[str, Any]:
        return api.get(f"/api/tasks/{task_id}").json()

    wait_for(
        lambda: (
            "accuracy" in verdict(bad["id"])["metadata"]
            and "accuracy" in verdict(good["id"])["metadata"]
        ),
        timeout=60,
        what=f"both verdicts\n{hub.logs()}",
    )
    bad_now, good_now = verdict(bad["id"]), verdict(good["id"])
    assert bad_now["stage"] == "Label" and bad_now["open_issues"], bad_now
    assert good_now["stage"] == "Review" and not good_now["open_issues"], good_now
    runs = hub.sql(
        "SELECT status, count(*) FROM runs_run WHERE trigger = 'label.submitted'"
        " GROUP BY status"
    )
    assert runs == "succeeded|2", runs
    assert hub.worker is not None and "run_hosted_item" in hub.worker.log()
