"""Registering plugins and rotating their secrets."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from plugins_app.plugins.kinds import KINDS, checks, kind_for
from plugins_app.plugins.models import Delivery, Plugin
from plugins_app.plugins.secrets import new_token, token_hash
from plugins_app.workspace.crypto import decrypt_json, encrypt_json
from plugins_app.workspace.models import Organization, Project

# The types registered with class names (the demo seeds them with some).
MODEL_TYPES = tuple(t for t, kind in KINDS.items() if kind.needs_classes)


@dataclass(frozen=True)
class PluginCredentials:
    """What a plugin script needs; the secret exists only in this object."""

    plugin: Plugin
    secret: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.plugin.public_id, "secret": self.secret}


def default_config_errors(text: str) -> list[str]:
    """A plugin's default config: the one config rule (a JSON object)."""
    return checks.config_problems(text, what="Default config")


def plugin_create(
    *,
    organization: Organization,
    name: str,
    type: str,
    description: str = "",
    class_names: list[str] | None = None,
    default_config: str = "{}",
    timeout_seconds: int = 300,
    projects: list[Project] | None = None,
    delivery: str = Delivery.SOCKET,
    connector_url: str = "",
    version: str = "",
) -> PluginCredentials:
    if errors := default_config_errors(default_config):
        raise ValidationError({"default_config": errors})
    class_names = [c.strip() for c in (class_names or []) if c.strip()]
    if kind_for(type).needs_classes and not class_names:
        raise ValidationError(
            {"class_names": ["Model plugins need at least one class name."]}
        )
    secret = new_token()
    plugin = Plugin(
        organization=organization,
        public_id=new_token(12),
        name=name,
        description=description,
        type=type,
        class_names=class_names,
        default_config=default_config or "{}",
        secret_hash=token_hash(secret),
        timeout_seconds=timeout_seconds,
        delivery=delivery,
        connector_url=connector_url,
        version=version,
    )
    _keep_connector_secret(plugin, secret)
    plugin.full_clean()
    with transaction.atomic():
        plugin.save()
        if projects:
            plugin.projects.set(
                [p for p in projects if p.organization_id == organization.pk]
            )
    return PluginCredentials(plugin=plugin, secret=secret)


def plugin_rotate_secret(*, plugin: Plugin) -> PluginCredentials:
    """A new secret; instances connected with the old one stop getting work at
    their next heartbeat (within a minute)."""
    secret = new_token()
    plugin.secret_hash = token_hash(secret)
    plugin.secret_rotated_at = timezone.now()
    _keep_connector_secret(plugin, secret)
    plugin.save(update_fields=["secret_hash", "secret_rotated_at", "secret_encrypted"])
    return PluginCredentials(plugin=plugin, secret=secret)


def _keep_connector_secret(plugin: Plugin, secret: str) -> None:
    plugin.secret_encrypted = (
        encrypt_json(secret) if plugin.delivery == Delivery.REST else ""
    )


def connector_secret(plugin: Plugin) -> str | None:
    """The secret to send a REST connector; None when the hub kept no copy (the
    plugin was registered for another delivery: rotating its secret fixes it)."""
    return decrypt_json(plugin.secret_encrypted) if plugin.secret_encrypted else None


def parse_class_names(text: str) -> list[str]:
    """One class per line or comma-separated; order kept, duplicates dropped."""
    parts = [p.strip() for line in text.splitlines() for p in line.split(",")]
    return list(dict.fromkeys(p for p in parts if p))
