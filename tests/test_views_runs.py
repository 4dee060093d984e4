"""The Run dialog, the runs list and the run page."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.test import Client
from django.utils import timezone

from plugins_app.plugins.models import PluginInstance, PluginType
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.logs import PluginLogRecord, logs_ingest
from plugins_app.runs.models import Run, RunLogLine, WorkItem
from plugins_app.runs.responses import item_respond
from plugins_app.web.fragments import render_run_updates
from plugins_app.wire.models import OutboxMessage
from plugins_app.workspace.models import Project
from tests.builders import connect_instance, new_run

CHANNEL = "test!abc"
XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def connect(plugin: Any, channel: str = CHANNEL) -> PluginInstance:
    return connect_instance(plugin, channel, address="127.0.0.1:1")


def dialog_url(workspace: Any, plugin: Any) -> str:
    return f"/projects/{workspace.project.pk}/plugins/{plugin.pk}/run/"


def select_html(html: str, name: str) -> str:
    match = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', html, re.S)
    assert match, html
    return match.group(1)


def selected_value(html: str, name: str) -> str:
    options = re.findall(
        r'<option value="([^"]*)"( selected)?>', select_html(html, name)
    )
    chosen = [value for value, selected in options if selected]
    assert len(chosen) <= 1
    return chosen[0] if chosen else ""


def run_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<a href="/runs/(\d+)/">#', html)]


def post_run(client: Client, url: str, **data: Any) -> Any:
    payload = {"map_0": "face-box", "map_1": "coin-box", "config_json": "{}"}
    payload.update(data)
    return client.post(url, payload, HTTP_HX_REQUEST="true")


# --- the dialog -----------------------------------------------------------------
def test_it_offers_one_dropdown_per_class_with_the_ontology(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(class_names=["face", "Coins", "zebra"]).plugin

    response = client_for(workspace.annotator).get(dialog_url(workspace, plugin))

    assert response.status_code == 200
    html = response.content.decode()
    assert set(re.findall(r'<select name="(map_\d+)"', html)) == {
        "map_0",
        "map_1",
        "map_2",
    }
    for name in ("map_0", "map_1", "map_2"):
        options = select_html(html, name)
        for entry in workspace.project.ontology_entries():
            assert f'value="{entry["schemaId"]}"' in options
        assert "Face (bounding-box)" in options
        assert "— not mapped —" in options
    assert "<code>face</code>" in html and "<code>zebra</code>" in html
    assert selected_value(html, "map_0") == "face-box"  # "face" ~ "Face"
    assert selected_value(html, "map_1") == "coin-box"  # "Coins" ~ "Coin"
    assert selected_value(html, "map_2") == ""  # nothing close to "zebra"


def test_it_prefills_the_config_with_the_plugins_default(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(default_config='{"max_detections": 7}').plugin

    html = client_for(workspace.annotator).get(dialog_url(workspace, plugin))
    html = html.content.decode()

    match = re.search(r'<textarea name="config_json"[^>]*>(.*?)</textarea>', html, re.S)
    assert match, html
    assert match.group(1).strip() == "{&quot;max_detections&quot;: 7}"
    assert 'name="external_ids"' in html
    assert 'name="batches"' not in html


def test_it_creates_a_run_and_redirects_to_its_page(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect(plugin)

    response = post_run(
        client_for(workspace.annotator),
        dialog_url(workspace, plugin),
        external_ids="astronaut, coins\ncamera",
        config_json='{"max_detections": 3}',
        map_1="",
    )

    assert response.status_code == 200
    run = Run.objects.get()
    assert response["HX-Redirect"] == f"/runs/{run.pk}/"
    # A connected instance is free, so the create transaction leased the run's
    # first jobs already (docs/architecture.md, "create + lease").
    assert run.status == Run.Status.RUNNING
    assert run.plugin == plugin and run.project == workspace.project
    assert run.created_by == workspace.annotator
    assert run.organization == workspace.org
    assert run.class_mapping == [{"schemaId": "face-box", "modelClass": "face"}]
    assert run.config_json == '{"max_detections": 3}'
    items = run.items.select_related("asset")
    assert [i.asset.external_id for i in items] == ["astronaut", "coins", "camera"]
    states = [i.state for i in items]
    assert WorkItem.State.LEASED in states
    assert set(states) <= {WorkItem.State.LEASED, WorkItem.State.PENDING}
    assert len({i.session for i in items}) == 3


def test_it_maps_every_class_that_was_chosen(workspace: Any, make_plugin: Any) -> None:
    plugin = make_plugin().plugin
    connect(plugin)

    response = post_run(
        client_for(workspace.admin), dialog_url(workspace, plugin), external_ids="coins"
    )

    assert response.status_code == 200 and "HX-Redirect" in response
    assert Run.objects.get().class_mapping == [
        {"schemaId": "face-box", "modelClass": "face"},
        {"schemaId": "coin-box", "modelClass": "coin"},
    ]


BAD_INPUT = [
    (
        {"external_ids": "astronaut\nno-such-asset"},
        "Not assets of this project: no-such-asset",
    ),
    ({"external_ids": ""}, "Give at least one asset external ID."),
    (
        {"external_ids": "astronaut", "config_json": '{"max": '},
        "Config JSON is not valid",
    ),
]


def test_it_shows_bad_input_inline_and_creates_nothing(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect(plugin)
    client = client_for(workspace.annotator)

    for data, message in BAD_INPUT:
        response = post_run(client, dialog_url(workspace, plugin), **data)

        assert response.status_code == 200
        assert "HX-Redirect" not in response
        html = response.content.decode()
        assert message in html, data
        assert 'role="alert"' in html
        assert '<form class="dialog-form" id="run-form"' in html
        assert not Run.objects.exists()
        assert not WorkItem.objects.exists()


def test_it_shows_why_a_class_mapping_choice_was_refused(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect(plugin)

    response = post_run(
        client_for(workspace.annotator),
        dialog_url(workspace, plugin),
        external_ids="astronaut",
        map_0="removed-label",
    )

    assert response.status_code == 200
    assert not Run.objects.exists()
    html = response.content.decode()
    assert 'id="id_map_0_error"' in html
    assert "Select a valid choice" in html


def test_it_says_no_instance_is_connected(workspace: Any, make_plugin: Any) -> None:
    plugin = make_plugin(name="Face finder").plugin
    PluginInstance.objects.create(
        plugin=plugin, channel_name="gone", disconnected_at=timezone.now()
    )

    response = post_run(
        client_for(workspace.annotator),
        dialog_url(workspace, plugin),
        external_ids="astronaut",
    )

    assert response.status_code == 200
    assert "HX-Redirect" not in response
    html = response.content.decode()
    assert 'class="error-box" role="alert"' in html
    assert "No instance of “Face finder” is connected" in html
    assert not Run.objects.exists()


def test_it_refuses_a_plugin_not_activated_on_the_project(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    plugin.projects.clear()
    connect(plugin)

    response = post_run(
        client_for(workspace.annotator),
        dialog_url(workspace, plugin),
        external_ids="astronaut",
    )

    assert response.status_code == 200
    assert "is not activated on this project" in response.content.decode()
    assert not Run.objects.exists()


def test_it_lists_batches_in_the_batch_model_dialog(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.BATCH_MODEL).plugin
    client = client_for(workspace.annotator)

    html = client.get(dialog_url(workspace, plugin)).content.decode()

    assert 'name="external_ids"' not in html
    for batch in (workspace.batch_a, workspace.batch_b):
        assert re.search(rf'name="batches" value="{batch.pk}"', html), html
        assert batch.name in html

    connect(plugin)
    response = post_run(
        client, dialog_url(workspace, plugin), batches=[str(workspace.batch_a.pk)]
    )

    assert response.status_code == 200
    run = Run.objects.get()
    assert response["HX-Redirect"] == f"/runs/{run.pk}/"
    assert run.batch_ids == [workspace.batch_a.pk]
    assert run.assets_total == workspace.batch_a.assets.count() > 0
    item = run.items.get()
    assert item.asset is None and item.state == WorkItem.State.LEASED


# --- the runs list --------------------------------------------------------------
def make_runs(workspace: Any, plugin: Any, count: int, **fields: Any) -> list[Run]:
    base = timezone.now() - timedelta(days=1)
    runs = []
    for n in range(count):
        runs.append(
            Run.objects.create(
                organization=workspace.org,
                project=fields.get("project", workspace.project),
                plugin=plugin,
                created_by=workspace.admin,
                status=fields.get("status", Run.Status.SUCCEEDED),
                created_at=base + timedelta(minutes=n + fields.get("offset", 0)),
            )
        )
    return runs


def test_it_filters_runs_by_project_plugin_and_status(
    workspace: Any, make_plugin: Any
) -> None:
    first = make_plugin(name="First").plugin
    second = make_plugin(name="Second").plugin
    other_project = Project.objects.create(organization=workspace.org, name="Q")
    a = make_runs(workspace, first, 2)
    b = make_runs(workspace, second, 2, offset=10, status=Run.Status.FAILED)
    c = make_runs(workspace, first, 1, offset=20, project=other_project)
    client = client_for(workspace.annotator)

    def listed(query: str) -> set[int]:
        response = client.get(f"/runs/?{query}")
        assert response.status_code == 200
        return set(run_ids(response.content.decode()))

    every = {r.pk for r in a + b + c}
    assert listed("") == every
    assert listed(f"project={workspace.project.pk}") == {r.pk for r in a + b}
    assert listed(f"project={other_project.pk}") == {c[0].pk}
    assert listed(f"plugin={second.pk}") == {r.pk for r in b}
    assert listed("status=failed") == {r.pk for r in b}
    assert listed(f"plugin={first.pk}&status=succeeded") == {r.pk for r in a + c}
    assert listed(f"plugin={first.pk}&status=failed") == set()
    # An unknown status is a 400 naming the valid ones (tests/test_run_list_ui.py).
    assert client.get("/runs/?status=bogus").status_code == 400


def test_it_lists_runs_newest_first_25_per_page(
    workspace: Any, make_plugin: Any
) -> None:
    runs = make_runs(workspace, make_plugin().plugin, 30)
    newest_first = [r.pk for r in reversed(runs)]
    client = client_for(workspace.admin)

    page_1 = client.get("/runs/").content.decode()
    page_2 = client.get("/runs/?page=2").content.decode()

    assert run_ids(page_1) == newest_first[:25]
    assert "Page 1 of 2 · 30 run(s)" in page_1
    assert "page=2" in page_1
    assert run_ids(page_2) == newest_first[25:]
    assert "Page 2 of 2 · 30 run(s)" in page_2


def test_it_returns_only_the_run_table_to_htmx(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    runs = make_runs(workspace, plugin, 3)

    full = client_for(workspace.admin).get("/runs/")
    partial = client_for(workspace.admin).get(
        f"/runs/?plugin={plugin.pk}", HTTP_HX_REQUEST="true"
    )

    assert '<form class="filters"' in full.content.decode()
    html = partial.content.decode()
    assert partial.status_code == 200
    assert html.lstrip().startswith('<div id="run-table"')
    assert "<html" not in html and '<form class="filters"' not in html
    assert sorted(run_ids(html)) == sorted(r.pk for r in runs)
    # The table polls itself with the same filters.
    assert f'hx-get="/runs/?plugin={plugin.pk}"' in html


# --- the run page -----------------------------------------------------------------
def started_run(workspace: Any, plugin: Any, *external_ids: str) -> Run:
    connect(plugin)
    run = new_run(workspace, plugin, *external_ids)
    assert dispatch_pending(plugin.pk) == len(external_ids or ["astronaut"])
    return run


def test_it_shows_the_persisted_log_and_escapes_plugin_text(
    workspace: Any, make_plugin: Any
) -> None:
    run = started_run(workspace, make_plugin().plugin)
    session = run.items.get().session
    logs_ingest(
        [
            PluginLogRecord(session, "INFO", "loading the model", {}),
            PluginLogRecord(session, "WARNING", XSS, {"note": XSS}),
        ],
        channel_name=CHANNEL,
    )

    response = client_for(workspace.annotator).get(f"/runs/{run.pk}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Run created by bob" in html
    assert "Job sent to instance at 127.0.0.1:1 for astronaut." in html
    assert '<span class="msg">loading the model</span>' in html
    assert f'<span class="msg">{XSS_ESCAPED}</span>' in html
    assert XSS not in html
    assert html.count(XSS_ESCAPED) == 2  # the message and the extra
    assert "face-box" in html  # the class mapping


def test_it_escapes_plugin_text_in_the_live_fragments(
    workspace: Any, make_plugin: Any, django_capture_on_commit_callbacks: Any
) -> None:
    run = started_run(workspace, make_plugin().plugin)
    session = run.items.get().session
    OutboxMessage.objects.all().delete()

    with django_capture_on_commit_callbacks(execute=True):
        logs_ingest([PluginLogRecord(session, "ERROR", XSS, {})], channel_name=CHANNEL)

    pushed = OutboxMessage.objects.get(target=f"run-{run.pk}")
    assert pushed.method == "group_send"
    assert pushed.message == {"type": "run.changed", "run_id": run.pk}
    # What a watcher then sends its browser, from its cursor.
    html, cursor, more = render_run_updates(run.pk, after=0)
    assert XSS_ESCAPED in html
    assert XSS not in html
    assert cursor == run.log_lines.last().pk and not more


def test_it_escapes_a_plugin_error_in_the_run_status(
    workspace: Any, make_plugin: Any
) -> None:
    run = started_run(workspace, make_plugin().plugin)
    session = run.items.get().session
    logs_ingest([PluginLogRecord(session, "ERROR", XSS, {})], channel_name=CHANNEL)
    assert item_respond(session=session, payload={"error": "x"}, channel_name=CHANNEL)

    run.refresh_from_db()
    assert run.status == Run.Status.FAILED and XSS in run.error
    html = client_for(workspace.admin).get(f"/runs/{run.pk}/").content.decode()

    assert '<pre class="error-box" id="run-error">' in html
    assert XSS not in html
    assert XSS_ESCAPED in html


def test_it_keeps_log_lines_in_the_order_they_arrived(
    workspace: Any, make_plugin: Any
) -> None:
    run = started_run(workspace, make_plugin().plugin)
    session = run.items.get().session
    messages = [f"step {n}" for n in range(5)]
    logs_ingest(
        [PluginLogRecord(session, "INFO", m, {}) for m in messages],
        channel_name=CHANNEL,
    )

    html = client_for(workspace.admin).get(f"/runs/{run.pk}/").content.decode()

    positions = [html.index(f'<span class="msg">{m}</span>') for m in messages]
    assert positions == sorted(positions)
    assert RunLogLine.objects.filter(run=run, level="INFO").count() == 5


# --- the asset page -------------------------------------------------------------
def test_it_offers_model_plugins_on_the_asset_page_with_the_asset_prefilled(
    workspace: Any, make_plugin: Any
) -> None:
    model = make_plugin(name="Face model").plugin
    batch = make_plugin(type=PluginType.BATCH_MODEL, name="Batch thing").plugin
    asset = workspace.asset("coffee")
    client = client_for(workspace.annotator)

    response = client.get(f"/projects/{workspace.project.pk}/assets/{asset.pk}/")

    assert response.status_code == 200
    html = response.content.decode()
    run_link = f"/projects/{workspace.project.pk}/plugins/{model.pk}/run/?asset=coffee"
    assert f'hx-get="{run_link}"' in html
    assert "Run Face model" in html
    assert f"/plugins/{batch.pk}/run/" not in html
    assert "Run Batch thing" not in html

    dialog = client.get(run_link, HTTP_HX_REQUEST="true").content.decode()
    match = re.search(
        r'<textarea name="external_ids"[^>]*>(.*?)</textarea>', dialog, re.S
    )
    assert match and match.group(1).strip() == "coffee"
