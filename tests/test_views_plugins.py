"""The plugin pages: registering (secret shown once, stored hashed), validation,
roles, rotating the secret, liveness, failed heartbeats, editing, activation."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

from django.test import Client
from django.utils import timezone

from plugins_app.plugins.models import (
    FailedHeartbeat,
    Plugin,
    PluginInstance,
    PluginType,
)
from plugins_app.runs.instances import instance_heartbeat
from plugins_app.workspace.models import Project


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def register(client: Client, **overrides: Any) -> Any:
    data: dict[str, Any] = {
        "name": "Detector",
        "description": "finds faces",
        "type": PluginType.MODEL,
        "class_names_text": "face\ncoin",
        "default_config": '{"threshold": 0.5}',
        "timeout_seconds": "120",
        "concurrency": "3",
    }
    data.update(overrides)
    return client.post("/plugins/new/", data, HTTP_HX_REQUEST="true")


def shown_secret(html: str) -> str:
    match = re.search(r'<code id="new-plugin-secret">([^<]*)</code>', html)
    assert match, html
    return match.group(1)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def table_row(html: str, plugin: Plugin) -> str:
    match = re.search(rf'<tr id="plugin-{plugin.pk}">(.*?)</tr>', html, re.S)
    assert match, html
    return match.group(1)


def test_it_registers_a_plugin_and_shows_its_secret_once(workspace: Any) -> None:
    response = register(
        client_for(workspace.admin), projects=[str(workspace.project.pk)]
    )

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    plugin = Plugin.objects.get(name="Detector")
    html = response.content.decode()
    assert f'<code id="new-plugin-id">{plugin.public_id}</code>' in html
    assert "will not be shown again" in html
    secret = shown_secret(html)
    assert len(secret) >= 32
    assert plugin.organization == workspace.org
    assert plugin.class_names == ["face", "coin"]
    assert plugin.default_config == '{"threshold": 0.5}'
    assert plugin.timeout_seconds == 120
    assert plugin.concurrency == 3
    assert list(plugin.projects.all()) == [workspace.project]


def test_it_stores_only_the_sha256_of_the_secret(workspace: Any) -> None:
    response = register(client_for(workspace.admin))

    secret = shown_secret(response.content.decode())
    row = Plugin.objects.filter(name="Detector").values().get()
    assert row["secret_hash"] == sha256(secret)
    assert all(secret not in str(value) for value in row.values())
    # The plugin page never shows it again.
    page = client_for(workspace.admin).get(f"/plugins/{row['id']}/")
    assert page.status_code == 200
    assert secret not in page.content.decode()


def test_it_refuses_a_malformed_default_config_inline(workspace: Any) -> None:
    client = client_for(workspace.admin)
    cases = {
        '{"threshold": 0.5': "Default config is not valid JSON",
        "[1, 2]": "Default config must be a JSON object",
    }

    for config, message in cases.items():
        response = register(client, default_config=config)

        assert response.status_code == 200
        html = response.content.decode()
        assert message in html, config
        assert 'role="alert"' in html
        assert '<form class="dialog-form"' in html
        assert "new-plugin-secret" not in html
        assert not Plugin.objects.exists()


def test_it_requires_class_names_for_model_plugins(workspace: Any) -> None:
    client = client_for(workspace.admin)

    for type in (PluginType.MODEL, PluginType.BATCH_MODEL):
        response = register(client, type=type, class_names_text=" ,\n")

        assert response.status_code == 200
        html = response.content.decode()
        assert "Model plugins need at least one class name." in html, type
        assert not Plugin.objects.exists()


def test_it_registers_every_plugin_type(workspace: Any) -> None:
    client = client_for(workspace.admin)
    classes = {PluginType.MODEL: "face", PluginType.BATCH_MODEL: "face, coin"}

    for type in PluginType:
        response = register(
            client,
            name=f"A {type} plugin",
            type=type,
            class_names_text=classes.get(type, ""),
        )

        assert response.status_code == 200
        assert "new-plugin-secret" in response.content.decode(), type
        plugin = Plugin.objects.get(name=f"A {type} plugin")
        assert plugin.type == type
        assert plugin.class_names == parse(classes.get(type, ""))
    assert Plugin.objects.count() == len(PluginType) == 6
    listing = client.get("/plugins/").content.decode()
    for plugin in Plugin.objects.all():
        assert plugin.get_type_display() in table_row(listing, plugin)


def parse(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def test_it_forbids_annotators_to_register_or_manage_plugins(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    before = plugin.secret_hash
    client = client_for(workspace.annotator)

    assert client.get("/plugins/new/").status_code == 403
    assert register(client).status_code == 403
    assert client.post(f"/plugins/{plugin.pk}/rotate/").status_code == 403
    assert client.get(f"/plugins/{plugin.pk}/edit/").status_code == 403
    edited = client.post(
        f"/plugins/{plugin.pk}/edit/",
        {"name": "Hijacked", "type": "model", "class_names_text": "x"},
    )
    assert edited.status_code == 403
    assert Plugin.objects.count() == 1
    plugin.refresh_from_db()
    assert plugin.name != "Hijacked"
    assert plugin.secret_hash == before
    assert "Register a plugin" not in client.get("/plugins/").content.decode()


def test_it_shows_the_register_form_to_admins(workspace: Any) -> None:
    response = client_for(workspace.admin).get("/plugins/new/", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Register a plugin" in html
    assert 'name="class_names_text"' in html
    assert 'name="default_config"' in html


def test_it_rotates_the_secret_and_shows_the_new_one(
    workspace: Any, make_plugin: Any
) -> None:
    registered = make_plugin()
    plugin = registered.plugin
    old_hash = plugin.secret_hash

    response = client_for(workspace.admin).post(
        f"/plugins/{plugin.pk}/rotate/", HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    secret = shown_secret(response.content.decode())
    assert secret != registered.secret
    plugin.refresh_from_db()
    assert plugin.secret_hash != old_hash
    assert plugin.secret_hash == sha256(secret)
    # The old secret no longer authenticates; the new one does.
    old = instance_heartbeat(
        channel_name="c1",
        plugin_public_id=plugin.public_id,
        secret=registered.secret,
        address="10.0.0.1:1",
    )
    new = instance_heartbeat(
        channel_name="c2",
        plugin_public_id=plugin.public_id,
        secret=secret,
        address="10.0.0.1:2",
    )
    assert old is None and new is not None


def test_it_refuses_a_get_on_rotate(workspace: Any, make_plugin: Any) -> None:
    plugin = make_plugin().plugin
    old_hash = plugin.secret_hash

    response = client_for(workspace.admin).get(f"/plugins/{plugin.pk}/rotate/")

    assert response.status_code == 405
    plugin.refresh_from_db()
    assert plugin.secret_hash == old_hash


def test_it_lists_plugins_as_live_with_their_connected_count(
    workspace: Any, make_plugin: Any
) -> None:
    live = make_plugin(name="Live one").plugin
    offline = make_plugin(name="Quiet one").plugin
    for n in range(2):
        PluginInstance.objects.create(plugin=live, channel_name=f"l{n}", address="a")
    PluginInstance.objects.create(
        plugin=live, channel_name="gone", disconnected_at=timezone.now()
    )
    PluginInstance.objects.create(
        plugin=offline,
        channel_name="stale",
        last_heartbeat=timezone.now() - timedelta(hours=1),
    )

    response = client_for(workspace.annotator).get("/plugins/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "● live · 2" in table_row(html, live)
    assert "offline" not in table_row(html, live)
    assert "○ offline" in table_row(html, offline)
    assert "live ·" not in table_row(html, offline)


def test_it_returns_only_the_plugin_table_to_htmx(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin

    response = client_for(workspace.admin).get("/plugins/", HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<table class="table" id="plugin-table">')
    assert f'id="plugin-{plugin.pk}"' in html
    assert "<html" not in html


def test_it_lists_failed_heartbeats_for_admins_only(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    instance_heartbeat(
        channel_name="bad",
        plugin_public_id=plugin.public_id,
        secret="not-the-secret",
        address="203.0.113.7:4242",
    )
    assert FailedHeartbeat.objects.filter(plugin=plugin).count() == 1

    admin_page = client_for(workspace.admin).get(f"/plugins/{plugin.pk}/")
    annotator_page = client_for(workspace.annotator).get(f"/plugins/{plugin.pk}/")

    assert admin_page.status_code == annotator_page.status_code == 200
    admin_html = admin_page.content.decode()
    assert "Failed connection attempts" in admin_html
    assert "203.0.113.7:4242" in admin_html and "wrong secret" in admin_html
    annotator_html = annotator_page.content.decode()
    assert "Failed connection attempts" not in annotator_html
    assert "203.0.113.7:4242" not in annotator_html
    assert "wrong secret" not in annotator_html


def test_it_edits_a_plugin_and_saves_its_class_names(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    client = client_for(workspace.admin)

    form = client.get(f"/plugins/{plugin.pk}/edit/", HTTP_HX_REQUEST="true")
    assert form.status_code == 200
    assert "face\ncoin</textarea>" in form.content.decode()

    response = client.post(
        f"/plugins/{plugin.pk}/edit/",
        {
            "name": "Renamed",
            "type": PluginType.MODEL,
            "class_names_text": "cat, dog\nbird\ncat",
            "default_config": '{"k": 1}',
            "timeout_seconds": "30",
            "concurrency": "2",
            "projects": [str(workspace.project.pk)],
        },
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/plugins/{plugin.pk}/"
    plugin.refresh_from_db()
    assert plugin.name == "Renamed"
    assert plugin.class_names == ["cat", "dog", "bird"]
    assert plugin.default_config == '{"k": 1}'
    assert plugin.timeout_seconds == 30
    assert plugin.concurrency == 2


def test_it_refuses_an_edit_that_drops_all_model_classes(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin

    response = client_for(workspace.admin).post(
        f"/plugins/{plugin.pk}/edit/",
        {
            "name": "Renamed",
            "type": PluginType.MODEL,
            "class_names_text": " , ",
            "default_config": "{}",
            "timeout_seconds": "30",
            "concurrency": "2",
        },
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200
    assert "HX-Redirect" not in response
    assert "Model plugins need at least one class name." in response.content.decode()
    plugin.refresh_from_db()
    assert plugin.name != "Renamed"
    assert plugin.class_names == ["face", "coin"]


def test_it_lists_a_plugin_only_on_the_projects_it_is_activated_on(
    workspace: Any,
) -> None:
    second = Project.objects.create(organization=workspace.org, name="Second")
    client = client_for(workspace.admin)
    register(client, name="Scoped", projects=[str(second.pk)])
    plugin = Plugin.objects.get(name="Scoped")
    link = f'href="/plugins/{plugin.pk}/"'

    assert link in client.get(f"/projects/{second.pk}/").content.decode()
    assert link not in client.get(f"/projects/{workspace.project.pk}/").content.decode()

    response = client.post(
        f"/plugins/{plugin.pk}/edit/",
        {
            "name": "Scoped",
            "type": PluginType.MODEL,
            "class_names_text": "face",
            "default_config": "{}",
            "timeout_seconds": "60",
            "concurrency": "1",
            "projects": [str(workspace.project.pk)],
        },
    )

    # A plain form post (no htmx) is redirected to the plugin's page.
    assert response.status_code == 302 and response["Location"] == link[6:-1]
    assert list(plugin.projects.all()) == [workspace.project]
    assert link in client.get(f"/projects/{workspace.project.pk}/").content.decode()
    assert link not in client.get(f"/projects/{second.pk}/").content.decode()


def test_it_cannot_activate_a_plugin_on_another_organizations_project(
    workspace: Any,
) -> None:
    response = register(
        client_for(workspace.admin), projects=[str(workspace.other_project.pk)]
    )

    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Plugin.objects.exists()
