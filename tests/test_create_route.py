"""The create route's hot path (POST /api/runs): the middleware chain runs in
the async view's mode with no thread hop, and the 201 body built from what the
create holds equals the run read back."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from asgiref.sync import SyncToAsync, async_to_sync
from django.core.handlers.asgi import ASGIHandler
from django.test import AsyncClient, Client, override_settings

from plugins_app.plugins.models import PluginInstance, PluginType
from plugins_app.runs.creation import RunRequest, run_create_items
from plugins_app.runs.models import Run
from plugins_app.web.api.runs import RunOut, created_run_out, run_out
from tests.builders import connect_instance
from tests.test_api import api_token


def test_no_middleware_is_adapted_to_sync_in_the_asgi_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Django logs (DEBUG) every middleware it wraps in sync_to_async, i.e. a
    thread per request; the chain has none, so the async create view runs on
    the loop up to its own pool hop."""
    with (
        override_settings(DEBUG=True),
        caplog.at_level(logging.DEBUG, "django.request"),
    ):
        handler = ASGIHandler()
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "adapted for middleware" in m] == []
    assert handler._middleware_chain is not None


@pytest.mark.django_db
@pytest.mark.asyncio
async def test_async_chain_still_unhides_an_sdk_path_and_serves_static_files() -> None:
    client = AsyncClient()
    # HOST=http://hub/?concurrency=4: the SDK asks for /?concurrency=4/v2/...;
    # put back, it reaches the Ango API (no key: refused), not the home page.
    hidden = await client.get("/?concurrency=4/v2/project/1")
    plain = await client.get("/?concurrency=4")
    static = await client.get("/static/img/favicon.svg")

    assert hidden.status_code in (401, 403), hidden.status_code
    assert plain.status_code in (200, 302)
    assert static.status_code == 200
    assert b"<svg" in b"".join(static.streaming_content)  # type: ignore[arg-type]


def _created(
    workspace: Any, plugin: Any, external_ids: list[str], **kw: Any
) -> tuple[Any, Any]:
    return run_create_items(
        RunRequest(
            plugin=plugin,
            project=workspace.project,
            user=workspace.admin,
            class_mapping=kw.pop("class_mapping", {}),
            config_json="{}",
            external_ids=external_ids,
            batch_ids=kw.pop("batch_ids", []),
            **kw,
        )
    )


@pytest.mark.parametrize(
    "kind, external_ids, versions",
    [
        (PluginType.MODEL, ["astronaut"], [""]),  # one asset: leased at once
        (PluginType.MODEL, ["astronaut", "coins", "camera"], ["2.0", "1.0", ""]),
        (PluginType.EXPORT, [], ["7"]),  # one item without an asset
    ],
)
def test_the_201_body_built_from_the_create_equals_the_run_read_back(
    workspace: Any,
    make_plugin: Any,
    django_capture_on_commit_callbacks: Any,
    kind: str,
    external_ids: list[str],
    versions: list[str],
) -> None:
    """created_run_out (no reads) against run_out (items and writes read
    back), field by field, through the route's schema."""
    extra = {} if kind == PluginType.MODEL else {"class_names": []}
    plugin = make_plugin(type=kind, **extra).plugin
    for n, version in enumerate(versions):
        instance = connect_instance(plugin, f"test!v{n}")
        PluginInstance.objects.filter(pk=instance.pk).update(version=version)
    with django_capture_on_commit_callbacks(execute=True):
        mapping = {"face": "face-box"} if kind == PluginType.MODEL else {}
        run, items = _created(workspace, plugin, external_ids, class_mapping=mapping)

    built = RunOut.model_validate(created_run_out(run, items)).model_dump()
    read = RunOut.model_validate(run_out(run)).model_dump()

    assert built == read
    assert built["items_total"] == max(len(external_ids), 1)
    # The version the run recorded: what the live instances declare.
    declared = sorted(v for v in versions if v)
    assert run.plugin_version == ", ".join(declared)
    assert Run.objects.get(pk=run.pk).plugin_version == run.plugin_version


def test_the_route_answers_201_with_the_created_runs_fields(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect_instance(plugin, "test!route")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {api_token('alice')}")
    body = {
        "plugin_id": plugin.pk,
        "project_id": workspace.project.pk,
        "class_mapping": {"face": "face-box"},
        "external_ids": ["astronaut", "coins"],
    }
    response = client.post("/api/runs", json.dumps(body), "application/json")

    assert response.status_code == 201, response.content
    got = response.json()
    run = Run.objects.get(pk=got["id"])
    assert got["items_total"] == 2 and got["items_done"] == 0
    assert got["progress_label"] == "0 of 2 assets processed"
    assert got["write_counts"] == {} and got["writes"] == [] and got["previews"] == []
    assert got["created_by"] == "alice" and got["plugin_version"] == ""
    assert run.items.count() == 2


def test_a_token_api_call_hops_to_a_thread_for_no_middleware(
    workspace: Any, make_plugin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every sync_to_async made while POST /api/runs runs through the async
    handler: none of them is a middleware's method (Django's MiddlewareMixin
    makes two per middleware)."""
    plugin = make_plugin().plugin
    connect_instance(plugin, "test!hops")
    token = api_token("alice")
    hops: list[Any] = []
    original = SyncToAsync.__init__

    def recording(self: Any, func: Any, *args: Any, **kwargs: Any) -> None:
        hops.append(func)
        original(self, func, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__init__", recording)
    body = {
        "plugin_id": plugin.pk,
        "project_id": workspace.project.pk,
        "class_mapping": {"face": "face-box"},
        "external_ids": ["astronaut"],
    }

    async def post() -> Any:
        return await AsyncClient().post(
            "/api/runs",
            body,
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )

    response = async_to_sync(post)()

    assert response.status_code == 201, response.content
    owners = [type(getattr(f, "__self__", None)).__module__ for f in hops]
    assert [m for m in owners if "middleware" in m] == [], owners
    assert hops  # the recorder saw the view's own hop
