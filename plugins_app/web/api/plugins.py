"""Plugins in the JSON API: register, list, change, rotate the secret."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from django.core.exceptions import ValidationError
from ninja import Router, Schema, Status
from ninja.errors import HttpError
from pydantic import Field

from plugins_app.plugins.models import (
    MAX_ATTEMPTS,
    MAX_CONCURRENCY,
    MAX_TIMEOUT_SECONDS,
    Delivery,
    PluginInstance,
    PluginType,
)
from plugins_app.plugins.services import default_config_errors, plugin_create
from plugins_app.plugins.triggers import plugin_set_triggers, plugin_trigger_events
from plugins_app.web import access
from plugins_app.web.api.fields import DbId, ErrorOut
from plugins_app.web.request_types import AuthenticatedHttpRequest

router = Router()

TimeoutSeconds = Annotated[int, Field(ge=1, le=MAX_TIMEOUT_SECONDS)]
Concurrency = Annotated[int, Field(ge=1, le=MAX_CONCURRENCY)]
Attempts = Annotated[int, Field(ge=1, le=MAX_ATTEMPTS)]


class PluginIn(Schema):
    name: str
    type: PluginType = PluginType.MODEL
    description: str = ""
    class_names: list[str] = []
    default_config: str = "{}"
    timeout_seconds: TimeoutSeconds = 300
    project_ids: list[DbId] = []
    trigger_events: list[str] = []
    delivery: Delivery = Delivery.SOCKET
    # REST delivery: checked like the dialog's (Plugin.clean, ops/egress.py).
    connector_url: str = ""
    # Used when no script declares one and the plugin is not hosted.
    version: str = ""


class InstanceOut(Schema):
    address: str
    # What the script declared (plugins/versions.py); "" when nothing.
    version: str
    connected_at: datetime
    last_heartbeat: datetime


class PluginOut(Schema):
    id: int
    public_id: str
    name: str
    description: str
    type: str
    class_names: list[str]
    default_config: str
    timeout_seconds: int
    concurrency: int
    max_attempts: int
    live_instances: int
    instances: list[InstanceOut]
    project_ids: list[int]
    trigger_events: list[str]
    delivery: str
    connector_url: str
    # The admin's version, and a hosted plugin's code hash.
    version: str
    code_version: str


class PluginPatch(Schema):
    name: str | None = None
    description: str | None = None
    class_names: list[str] | None = None
    default_config: str | None = None
    timeout_seconds: TimeoutSeconds | None = None
    concurrency: Concurrency | None = None
    max_attempts: Attempts | None = None
    project_ids: list[DbId] | None = None
    trigger_events: list[str] | None = None
    connector_url: str | None = None
    version: str | None = None


class PluginCreated(PluginOut):
    secret: str


def _plugin_out(plugin: Any) -> dict[str, Any]:
    instances = list(PluginInstance.objects.live().filter(plugin=plugin))
    return {
        "id": plugin.pk,
        "public_id": plugin.public_id,
        "name": plugin.name,
        "description": plugin.description,
        "type": plugin.type,
        "class_names": plugin.class_names,
        "default_config": plugin.default_config,
        "timeout_seconds": plugin.timeout_seconds,
        "concurrency": plugin.concurrency,
        "max_attempts": plugin.max_attempts,
        "live_instances": len(instances),
        "instances": instances,
        "project_ids": list(plugin.projects.values_list("pk", flat=True)),
        "trigger_events": plugin_trigger_events(plugin),
        "delivery": plugin.delivery,
        "connector_url": plugin.connector_url,
        "version": plugin.version,
        "code_version": plugin.code_version,
    }


@router.get("/plugins", response=list[PluginOut])
def list_plugins(request: AuthenticatedHttpRequest) -> list[dict[str, Any]]:
    return [_plugin_out(p) for p in access.visible_plugins(request.user)]


@router.get("/plugins/{plugin_id}", response=PluginOut)
def get_plugin(request: AuthenticatedHttpRequest, plugin_id: int) -> dict[str, Any]:
    return _plugin_out(access.get_plugin_for_user(request.user, plugin_id))


@router.post("/plugins", response={201: PluginCreated, 400: ErrorOut})
def create_plugin(
    request: AuthenticatedHttpRequest, body: PluginIn
) -> Status[dict[str, Any]]:
    organization = access.admin_orgs(request.user).first()
    if organization is None:
        raise HttpError(403, "Only admins register plugins")
    try:
        credentials = plugin_create(
            organization=organization,
            name=body.name,
            type=body.type,
            description=body.description,
            class_names=body.class_names,
            default_config=body.default_config,
            timeout_seconds=body.timeout_seconds,
            projects=list(organization.projects.filter(pk__in=body.project_ids)),
            delivery=body.delivery,
            connector_url=body.connector_url,
            version=body.version,
        )
    except ValidationError as exc:
        return Status(400, {"errors": exc.message_dict})
    if errors := _set_triggers(credentials.plugin, body.trigger_events):
        credentials.plugin.delete()
        return Status(400, errors)
    return Status(
        201, {**_plugin_out(credentials.plugin), "secret": credentials.secret}
    )


def _set_triggers(plugin: Any, event_names: list[str]) -> dict[str, Any] | None:
    try:
        plugin_set_triggers(
            plugin, projects=list(plugin.projects.all()), event_names=event_names
        )
    except ValueError as exc:
        return {"errors": {"trigger_events": [str(exc)]}}
    return None


@router.patch("/plugins/{plugin_id}", response={200: PluginOut, 400: ErrorOut})
def update_plugin(
    request: AuthenticatedHttpRequest, plugin_id: int, body: PluginPatch
) -> Status[dict[str, Any]]:
    plugin = access.get_admin_plugin_for_user(request.user, plugin_id)
    changes = body.dict(exclude_unset=True)
    # Every field may be left out; none may be null (the columns are not).
    if nulls := sorted(field for field, value in changes.items() if value is None):
        message = "May not be null: leave the field out to keep its value."
        return Status(400, {"errors": {field: [message] for field in nulls}})
    if "default_config" in changes and (
        errors := default_config_errors(changes["default_config"])
    ):
        return Status(400, {"errors": {"default_config": errors}})
    project_ids = changes.pop("project_ids", None)
    trigger_events = changes.pop("trigger_events", None)
    for field, value in changes.items():
        setattr(plugin, field, value)
    try:
        plugin.full_clean()
    except ValidationError as exc:
        return Status(400, {"errors": exc.message_dict})
    plugin.save()
    if project_ids is not None:
        plugin.projects.set(plugin.organization.projects.filter(pk__in=project_ids))
    if project_ids is not None or trigger_events is not None:
        names = (
            plugin_trigger_events(plugin) if trigger_events is None else trigger_events
        )
        if trigger_errors := _set_triggers(plugin, names):
            return Status(400, trigger_errors)
    return Status(200, _plugin_out(plugin))


@router.post("/plugins/{plugin_id}/rotate-secret", response=PluginCreated)
def rotate_secret(request: AuthenticatedHttpRequest, plugin_id: int) -> dict[str, Any]:
    from plugins_app.plugins.services import plugin_rotate_secret

    plugin = access.get_admin_plugin_for_user(request.user, plugin_id)
    credentials = plugin_rotate_secret(plugin=plugin)
    return {**_plugin_out(plugin), "secret": credentials.secret}
