"""The JSON API at /api/: schema, Bearer-token and session auth, organization
scoping, plugins and runs."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import timedelta
from typing import Any

from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from plugins_app.plugins.models import Plugin, PluginInstance, PluginType
from plugins_app.plugins.services import plugin_create
from plugins_app.runs.creation import RunRequest, run_create
from plugins_app.runs.models import Run, RunLogLine
from plugins_app.workspace.models import ApiToken


def api_token(username: str) -> str:
    out = io.StringIO()
    call_command("create_api_token", username, stdout=out)
    return json.loads(out.getvalue())["token"]


def bearer(user: Any, *, enforce_csrf_checks: bool = False) -> Client:
    token = api_token(user.username)
    return Client(
        enforce_csrf_checks=enforce_csrf_checks, HTTP_AUTHORIZATION=f"Bearer {token}"
    )


def post_json(client: Client, url: str, body: dict[str, Any]) -> Any:
    return client.post(url, json.dumps(body), content_type="application/json")


def connect(plugin: Plugin, channel: str = "test!abc") -> None:
    PluginInstance.objects.create(
        plugin=plugin, channel_name=channel, address="127.0.0.1:1"
    )


def rival_plugin(workspace: Any) -> Plugin:
    return plugin_create(
        organization=workspace.outsider.memberships.get().organization,
        name="Theirs",
        type=PluginType.MODEL,
        class_names=["face"],
        projects=[workspace.other_project],
    ).plugin


def a_run(workspace: Any, plugin: Plugin, *external_ids: str, **kwargs: Any) -> Run:
    return run_create(
        RunRequest(
            plugin=plugin,
            project=kwargs.get("project", workspace.project),
            user=kwargs.get("user", workspace.admin),
            class_mapping={"face": "face-box"},
            config_json="{}",
            external_ids=list(external_ids) or ["astronaut"],
            batch_ids=[],
        ),
        dispatch=False,
    )


def test_it_serves_the_openapi_schema(db: Any) -> None:
    response = Client().get("/api/openapi.json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "Plugin Hub API"
    paths = schema["paths"]
    for path in ("/api/runs", "/api/plugins", "/api/projects", "/api/runs/{run_id}"):
        assert path in paths, sorted(paths)
    assert "post" in paths["/api/runs"] and "get" in paths["/api/runs"]
    assert "post" in paths["/api/plugins"]


def test_it_stores_api_tokens_hashed(workspace: Any) -> None:
    token = api_token("alice")

    stored = ApiToken.objects.get(user=workspace.admin)
    assert stored.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(ApiToken.objects.values().get())


def test_it_refuses_requests_without_valid_credentials(workspace: Any) -> None:
    assert Client().get("/api/projects").status_code == 401
    wrong = Client(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert wrong.get("/api/projects").status_code == 401
    token = api_token("bob")
    workspace.annotator.is_active = False
    workspace.annotator.save()
    inactive = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert inactive.get("/api/projects").status_code == 401


def test_a_refused_token_is_a_401_on_writes_too_not_the_sessions_csrf_403(
    workspace: Any,
) -> None:
    """A script's POST with a wrong token used to fall through to the session
    and get 403 "CSRF check Failed" (it has no cookie): a clear 401 now."""
    wrong = Client(HTTP_AUTHORIZATION="Bearer not-a-token", enforce_csrf_checks=True)
    for url in ("/api/runs", "/api/plugins"):
        response = wrong.post(url, "{}", content_type="application/json")
        assert response.status_code == 401, (url, response.content)
        assert response.json() == {"detail": "Unauthorized"}
    # A signed-in browser that also sends a refused token is refused as
    # well: the cookie does not stand in for the token (and skip CSRF).
    browser = Client(HTTP_AUTHORIZATION="Bearer not-a-token")
    browser.force_login(workspace.admin)
    assert browser.get("/api/projects").status_code == 401
    browser.defaults.pop("HTTP_AUTHORIZATION")
    assert browser.get("/api/projects").status_code == 200


def test_it_lists_only_the_users_projects(workspace: Any) -> None:
    response = bearer(workspace.annotator).get("/api/projects")

    assert response.status_code == 200
    (project,) = response.json()
    assert project["id"] == workspace.project.pk
    assert project["organization"] == "Acme"
    assert project["ontology"] == workspace.project.ontology
    assert {b["name"] for b in project["batches"]} == {"Batch A", "Batch B"}

    theirs = bearer(workspace.outsider).get("/api/projects").json()
    assert [p["id"] for p in theirs] == [workspace.other_project.pk]


def test_it_lists_only_the_users_plugins(workspace: Any, make_plugin: Any) -> None:
    ours = make_plugin().plugin
    connect(ours)
    theirs = rival_plugin(workspace)
    client = bearer(workspace.annotator)

    response = client.get("/api/plugins")

    assert response.status_code == 200
    (listed,) = response.json()
    assert listed["id"] == ours.pk
    assert listed["public_id"] == ours.public_id
    assert listed["class_names"] == ["face", "coin"]
    assert listed["live_instances"] == 1
    assert listed["project_ids"] == [workspace.project.pk]
    assert "secret" not in listed and "secret_hash" not in listed
    assert client.get(f"/api/plugins/{ours.pk}").json()["name"] == ours.name
    assert client.get(f"/api/plugins/{theirs.pk}").status_code == 404


def test_it_creates_a_plugin_for_an_admin(workspace: Any) -> None:
    response = post_json(
        bearer(workspace.admin),
        "/api/plugins",
        {
            "name": "From a script",
            "type": "model",
            "class_names": ["face", " ", "coin"],
            "default_config": '{"k": 2}',
            "timeout_seconds": 90,
            "project_ids": [workspace.project.pk, workspace.other_project.pk],
        },
    )

    assert response.status_code == 201, response.content
    body = response.json()
    plugin = Plugin.objects.get(pk=body["id"])
    assert body["public_id"] == plugin.public_id
    assert plugin.organization == workspace.org
    assert plugin.secret_hash == hashlib.sha256(body["secret"].encode()).hexdigest()
    assert plugin.class_names == ["face", "coin"]
    assert plugin.default_config == '{"k": 2}'
    assert plugin.timeout_seconds == 90
    # Another organization's project is silently left out.
    assert body["project_ids"] == [workspace.project.pk]
    assert list(plugin.projects.all()) == [workspace.project]
    # The secret is in the creation response only.
    again = bearer(workspace.admin).get(f"/api/plugins/{plugin.pk}")
    assert body["secret"] not in again.content.decode()


def test_it_refuses_plugin_creation_to_annotators(workspace: Any) -> None:
    response = post_json(bearer(workspace.annotator), "/api/plugins", {"name": "Nope"})

    assert response.status_code == 403
    assert not Plugin.objects.exists()


def test_it_refuses_a_plugin_with_a_bad_default_config(workspace: Any) -> None:
    response = post_json(
        bearer(workspace.admin),
        "/api/plugins",
        {"name": "Broken", "class_names": ["face"], "default_config": "{oops"},
    )

    assert response.status_code == 400
    assert "not valid JSON" in response.json()["errors"]["default_config"][0]
    assert not Plugin.objects.exists()


def test_it_answers_400_for_a_plugin_with_a_blank_name(workspace: Any) -> None:
    client = bearer(workspace.admin)
    client.raise_request_exception = False

    response = post_json(client, "/api/plugins", {"name": "", "class_names": ["f"]})

    assert response.status_code == 400
    assert "name" in response.json()["errors"]
    assert not Plugin.objects.exists()


def test_it_requires_class_names_for_a_model_plugin(workspace: Any) -> None:
    response = post_json(
        bearer(workspace.admin), "/api/plugins", {"name": "No classes"}
    )

    assert response.status_code == 400
    assert not Plugin.objects.exists()


def test_it_rotates_a_secret_for_admins_only(workspace: Any, make_plugin: Any) -> None:
    plugin = make_plugin().plugin
    old = plugin.secret_hash

    refused = bearer(workspace.annotator).post(
        f"/api/plugins/{plugin.pk}/rotate-secret"
    )
    plugin.refresh_from_db()
    assert refused.status_code == 403 and plugin.secret_hash == old

    response = bearer(workspace.admin).post(f"/api/plugins/{plugin.pk}/rotate-secret")

    assert response.status_code == 200
    plugin.refresh_from_db()
    secret = response.json()["secret"]
    assert plugin.secret_hash == hashlib.sha256(secret.encode()).hexdigest() != old


def test_it_creates_a_run(workspace: Any, make_plugin: Any) -> None:
    plugin = make_plugin().plugin
    connect(plugin)

    response = post_json(
        bearer(workspace.annotator),
        "/api/runs",
        {
            "plugin_id": plugin.pk,
            "project_id": workspace.project.pk,
            "class_mapping": {"face": "face-box"},
            "external_ids": ["astronaut", "coins"],
        },
    )

    assert response.status_code == 201, response.content
    body = response.json()
    run = Run.objects.get(pk=body["id"])
    # An instance was free: the run was created and leased in one transaction.
    assert body["status"] == "running"
    assert run.items.filter(state="leased").count() == min(2, plugin.concurrency)
    assert body["created_by"] == "bob"
    assert body["items_total"] == 2 and body["items_done"] == 0
    assert run.created_by == workspace.annotator
    assert run.class_mapping == [{"schemaId": "face-box", "modelClass": "face"}]
    # No config given: the plugin's default.
    assert run.config_json == '{"max_detections": 25}'
    assert run.items.count() == 2


BAD_RUNS = [
    ({"external_ids": ["nope"]}, "external_ids", "Not assets of this project: nope"),
    ({"external_ids": []}, "external_ids", "Give at least one asset external ID."),
    ({"config_json": "{bad"}, "config_json", "Config JSON is not valid"),
    ({"class_mapping": {"face": "no-such-label"}}, "mapping", "no-such-label"),
    ({"class_mapping": {"dog": "face-box"}}, "mapping", "not a class"),
    ({"class_mapping": {"face": ""}}, "mapping", "Every class is unmapped"),
    ({"config_json": "[1, 2]"}, "config_json", "must be a JSON object"),
    ({"batch_ids": [999999]}, "batches", "Unknown batches: 999999"),
]


def test_it_answers_400_with_errors_for_a_bad_run(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect(plugin)
    client = bearer(workspace.admin)

    for body, field, message in BAD_RUNS:
        request = {
            "plugin_id": plugin.pk,
            "project_id": workspace.project.pk,
            "class_mapping": {"face": "face-box"},
            "external_ids": ["astronaut"],
            **body,
        }

        response = post_json(client, "/api/runs", request)

        assert response.status_code == 400, body
        errors = response.json()["errors"]
        assert any(message in m for m in errors[field]), errors
        assert not Run.objects.exists()


def test_it_answers_400_when_no_instance_is_live(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin

    response = post_json(
        bearer(workspace.admin),
        "/api/runs",
        {
            "plugin_id": plugin.pk,
            "project_id": workspace.project.pk,
            "class_mapping": {"face": "face-box"},
            "external_ids": ["astronaut"],
        },
    )

    assert response.status_code == 400
    assert "is connected" in response.json()["errors"]["__all__"][0]
    assert not Run.objects.exists()


def test_it_lists_runs_with_filters(workspace: Any, make_plugin: Any) -> None:
    first = make_plugin(name="First").plugin
    second = make_plugin(name="Second").plugin
    connect(first, "c1")
    connect(second, "c2")
    old = a_run(workspace, first, "astronaut")
    Run.objects.filter(pk=old.pk).update(
        status=Run.Status.SUCCEEDED, created_at=timezone.now() - timedelta(hours=1)
    )
    new = a_run(workspace, first, "coins")
    other = a_run(workspace, second, "camera")
    theirs_plugin = rival_plugin(workspace)
    connect(theirs_plugin, "c3")
    a_run(workspace, theirs_plugin, project=workspace.other_project, user=None)
    client = bearer(workspace.annotator)

    def ids(query: str) -> list[int]:
        response = client.get(f"/api/runs{query}")
        assert response.status_code == 200
        return [r["id"] for r in response.json()]

    assert ids("") == [other.pk, new.pk, old.pk]  # newest first, ours only
    assert ids(f"?plugin={first.pk}") == [new.pk, old.pk]
    assert ids("?status=succeeded") == [old.pk]
    assert ids(f"?project={workspace.project.pk}&status=queued") == [
        other.pk,
        new.pk,
    ]
    assert ids(f"?project={workspace.other_project.pk}") == []
    assert ids("?per_page=2") == [other.pk, new.pk]
    assert ids("?per_page=2&page=2") == [old.pk]


def test_it_gets_a_run_and_its_logs_after_an_id(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect(plugin)
    run = a_run(workspace, plugin, "astronaut", "coins")
    lines = [
        RunLogLine.objects.create(run=run, level="INFO", message=f"line {n}")
        for n in range(3)
    ]
    client = bearer(workspace.annotator)

    got = client.get(f"/api/runs/{run.pk}")
    assert got.status_code == 200
    assert got.json()["id"] == run.pk and got.json()["items_total"] == 2

    every = client.get(f"/api/runs/{run.pk}/logs").json()
    assert every[0]["message"] == "Run created by alice; waiting for a plugin instance."
    assert [e["message"] for e in every[1:]] == ["line 0", "line 1", "line 2"]

    after = client.get(f"/api/runs/{run.pk}/logs?after={lines[0].pk}")
    assert after.status_code == 200
    assert [e["message"] for e in after.json()] == ["line 1", "line 2"]
    assert [e["id"] for e in after.json()] == [lines[1].pk, lines[2].pk]
    limited = client.get(f"/api/runs/{run.pk}/logs?after={lines[0].pk}&limit=1")
    assert [e["message"] for e in limited.json()] == ["line 1"]


def test_it_refuses_a_session_post_without_csrf(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect(plugin)
    client = Client(enforce_csrf_checks=True)
    client.force_login(workspace.admin)
    body = {
        "plugin_id": plugin.pk,
        "project_id": workspace.project.pk,
        "class_mapping": {"face": "face-box"},
        "external_ids": ["astronaut"],
    }

    assert client.get("/api/runs").status_code == 200  # reads need no token
    response = post_json(client, "/api/runs", body)

    assert response.status_code == 403
    assert not Run.objects.exists()
    rotate = client.post(f"/api/plugins/{plugin.pk}/rotate-secret")
    assert rotate.status_code == 403


def test_it_accepts_a_session_post_with_the_csrf_token(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect(plugin)
    client = Client(enforce_csrf_checks=True)
    client.force_login(workspace.admin)
    client.get("/")  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value

    response = client.post(
        "/api/runs",
        json.dumps(
            {
                "plugin_id": plugin.pk,
                "project_id": workspace.project.pk,
                "class_mapping": {"face": "face-box"},
                "external_ids": ["astronaut"],
            }
        ),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )

    assert response.status_code == 201, response.content
    assert Run.objects.count() == 1


def test_it_accepts_a_bearer_post_without_csrf(
    workspace: Any, make_plugin: Any
) -> None:
    """Scripts (curl, requests) send no CSRF cookie or token; the Bearer token is
    the credential."""
    plugin = make_plugin().plugin
    connect(plugin)

    response = post_json(
        bearer(workspace.admin, enforce_csrf_checks=True),
        "/api/runs",
        {
            "plugin_id": plugin.pk,
            "project_id": workspace.project.pk,
            "class_mapping": {"face": "face-box"},
            "external_ids": ["astronaut"],
        },
    )

    assert response.status_code == 201, response.content
    assert Run.objects.count() == 1
