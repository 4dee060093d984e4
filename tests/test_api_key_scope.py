"""A job's apiKey reaches its run's project and nothing else, and nothing at all
once its run ended: every `/v2` endpoint that takes an apikey (found from the
URLconf, so endpoints added later are covered too) is tried with another
project's ids and bodies, then with its own after the run finished."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern

from plugins_app.ango_api import urls as ango_urls
from plugins_app.plugins.models import PluginInstance
from plugins_app.plugins.services import plugin_create
from plugins_app.runs.creation import RunRequest, run_create
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.models import Run, RunLogLine, WorkItem
from plugins_app.runs.responses import item_respond
from plugins_app.wire.models import OutboxMessage
from plugins_app.workspace.models import Asset, Batch, Issue, Project, Task
from tests.builders import connect_instance, new_run

CHANNEL = "test!scope"
THEIR_CHANNEL = "test!theirs"
BOX = {"x": 1, "y": 1, "width": 2, "height": 2}


def apikey_patterns() -> list[URLPattern]:
    found = [
        p
        for p in ango_urls.urlpatterns
        if getattr(p.callback, "requires_api_key", False)
    ]
    assert len(found) >= 8, "the apikey endpoints were not found"
    return found


PATTERNS = apikey_patterns()


def url_for(pattern: URLPattern, *, project: Project, task: Task) -> str:
    """The endpoint's path with `project_id`/`task_id` (any other parameter:
    the project id) filled in, and the project in the query as well, where
    export-style endpoints read it."""

    def fill(match: re.Match[str]) -> str:
        return str(task.pk if match.group(1) == "task_id" else project.pk)

    path = re.sub(r"<(?:\w+:)?(\w+)>", fill, str(pattern.pattern))
    return f"/v2/{path}?project={project.pk}&nextStage=true&isPlugin=true"


def body_for(project: Project, task: Task, session: str) -> dict[str, Any]:
    """One body with what any endpoint might read, all pointing at `project`."""
    record = {"externalId": task.asset.external_id, "objects": []}
    return {
        "project": str(project.pk),
        "jsonContent": [record],
        "labels": [record],
        "labelTask": str(task.pk),
        "content": "an issue",
        "name": "new batch",
        "assets": [{"data": "# hi", "externalId": "planted"}],
        "toStageId": "Label",
        "filters": {"taskIds": [str(task.pk)]},
        "metadata": {"planted": True},
        "answer": {"objects": [{"schemaId": "face-box", "bounding-box": BOX}]},
        "session": session,
        "response": {"objects": []},
        "level": "INFO",
        "msg": "planted log line",
    }


def call(key: str, url: str, method: str, body: dict[str, Any]) -> Any:
    client = Client()
    if method == "get":
        return client.get(url, HTTP_APIKEY=key)
    return client.post(
        url, json.dumps(body), content_type="application/json", HTTP_APIKEY=key
    )


def job_key(channel: str, run: Run) -> str:
    session = run.items.get().session
    for row in OutboxMessage.objects.filter(method="send", target=channel):
        if row.message["job"]["session"] == session:
            return row.message["job"]["apiKey"]
    raise AssertionError("no job sent for this run")


@pytest.fixture
def scope(workspace: Any, make_plugin: Any) -> dict[str, Any]:
    """Acme's run holds a live key; the rival organization has a run of its own
    in flight on its project (its session is planted in the bodies)."""
    ours = make_plugin().plugin
    connect_instance(ours, CHANNEL)
    run = new_run(workspace, ours, "astronaut", user=workspace.admin)
    assert dispatch_pending(ours.pk) == 1
    theirs = plugin_create(
        organization=workspace.other_project.organization,
        name="Rival model",
        type="model",
        class_names=["face"],
        default_config="{}",
        timeout_seconds=60,
        projects=[workspace.other_project],
    ).plugin
    PluginInstance.objects.create(plugin=theirs, channel_name=THEIR_CHANNEL)
    their_run = run_create(
        RunRequest(
            plugin=theirs,
            project=workspace.other_project,
            user=workspace.outsider,
            class_mapping={"face": "face-box"},
            config_json="{}",
            external_ids=["astronaut"],
            batch_ids=[],
        ),
        dispatch=False,
    )
    assert dispatch_pending(theirs.pk) == 1
    return {
        "run": run,
        "key": job_key(CHANNEL, run),
        "their_run": their_run,
        "their_session": their_run.items.get().session,
    }


def snapshot(project: Project, run: Run) -> dict[str, Any]:
    """Everything an endpoint could change in a project, and in its run."""
    return {
        "tasks": list(
            Task.objects.filter(project=project)
            .order_by("id")
            .values_list("stage", "status", "answer", "metadata")
        ),
        "assets": Asset.objects.filter(project=project).count(),
        "batches": list(Batch.objects.filter(project=project).values_list("name")),
        "issues": Issue.objects.filter(task__project=project).count(),
        "run": Run.objects.filter(pk=run.pk).values_list("status").get(),
        "items": list(WorkItem.objects.filter(run=run).values_list("state")),
        "log": RunLogLine.objects.filter(run=run).count(),
    }


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: str(p.pattern))
def test_a_run_key_reads_and_writes_nothing_of_another_project(
    workspace: Any, scope: dict[str, Any], pattern: URLPattern, method: str
) -> None:
    theirs = workspace.other_project
    their_task = theirs.tasks.order_by("id").first()
    before = snapshot(theirs, scope["their_run"])
    url = url_for(pattern, project=theirs, task=their_task)

    response = call(
        scope["key"], url, method, body_for(theirs, their_task, scope["their_session"])
    )

    named = re.search(r"<", str(pattern.pattern)) is not None
    if named:
        # Their project or task in the path: refused outright.
        assert response.status_code in (403, 404, 405), (url, response.content)
    else:
        assert response.status_code < 500, (url, response.content)
    assert theirs.name.encode() not in response.content
    assert snapshot(theirs, scope["their_run"]) == before


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: str(p.pattern))
def test_a_run_key_is_refused_everywhere_once_its_run_ended(
    workspace: Any, scope: dict[str, Any], pattern: URLPattern, method: str
) -> None:
    run = scope["run"]
    item = run.items.get()
    item_respond(session=item.session, payload={"error": True}, channel_name=CHANNEL)
    run.refresh_from_db()
    assert run.is_finished
    ours = workspace.project
    task = workspace.asset("astronaut").task
    before = snapshot(ours, run)
    url = url_for(pattern, project=ours, task=task)

    response = call(scope["key"], url, method, body_for(ours, task, item.session))

    assert response.status_code in (401, 405), (url, response.content)
    if response.status_code == 401:
        assert response.json()["message"] == "Missing, unknown or expired apikey."
    assert snapshot(ours, run) == before


def test_the_same_key_works_on_its_own_project_while_the_run_lasts(
    workspace: Any, scope: dict[str, Any]
) -> None:
    """The control for the refusals above."""
    key, project = scope["key"], workspace.project
    task = workspace.asset("astronaut").task
    client = Client()

    detail = client.get(f"/v2/project/{project.pk}", HTTP_APIKEY=key)
    read = client.get(f"/v2/task/{task.pk}?includeAnswer=False", HTTP_APIKEY=key)

    assert detail.status_code == 200
    data = detail.json()["data"]["project"]
    assert data["name"] == project.name
    assert data["categorySchema"] == project.ontology
    assert {b["name"] for b in data["batches"]} == {"Batch A", "Batch B"}
    assert read.status_code == 200
    assert set(read.json()["data"]["task"]["answer"]) == {
        "tools",
        "classifications",
        "relations",
    }


def test_a_host_with_a_query_string_still_reaches_the_endpoints(
    workspace: Any, scope: dict[str, Any]
) -> None:
    """HOST=http://hub/?concurrency=4 (how a script declares its slots) makes the
    SDK request `/?concurrency=4/v2/task/7?includeAnswer=False`."""
    task = workspace.asset("astronaut").task
    client = Client()

    read = client.get(
        f"/?concurrency=4/v2/task/{task.pk}?includeAnswer=False",
        HTTP_APIKEY=scope["key"],
    )
    theirs = client.get(
        f"/?concurrency=4/v2/project/{workspace.other_project.pk}",
        HTTP_APIKEY=scope["key"],
    )

    assert read.status_code == 200
    assert read.json()["data"]["task"]["_id"] == str(task.pk)
    assert theirs.status_code == 403
    # A plain visit to / is left alone.
    assert client.get("/?concurrency=4").status_code in (200, 302)
