"""A plugin's version: what a script declares, what hosted code hashes to, what
an admin sets; and which of them a run and each of its jobs record.

Precedence, most specific first: the version the answering instance declared,
then the hosted code's content hash (the code that runs), then the admin's
value (better than nothing). The run keeps the version at its creation, each
item the version that answered it, each pre-label (a task history event) the
item's version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from plugins_app.plugins.models import VERSION_LENGTH, Plugin, PluginInstance

# Printable text only: a version is shown on pages and written to exports.
_ALLOWED = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_+:/@ "
)


def clean_version(value: Any) -> str:
    """A declared version as the hub keeps it: a string or number, trimmed to
    VERSION_LENGTH, other characters replaced by '?'; anything else is ''."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return ""
    text = str(value).strip()[:VERSION_LENGTH]
    return "".join(c if c in _ALLOWED else "?" for c in text)


def declared_in_query(query: dict[str, list[str]]) -> str:
    """`?version=` in the script's HOST (python-socketio keeps HOST's query on
    the WebSocket URL, as for `?concurrency=`)."""
    return clean_version((query.get("version") or [""])[0])


def code_hash(data: bytes) -> str:
    """The version of hosted code: its upload's content hash."""
    return "sha256:" + hashlib.sha256(data).hexdigest()[:12]


def fallback_version(plugin: Plugin) -> str:
    """The version when no instance declares one: the hosted code's hash, else
    the admin's value."""
    return plugin.code_version or plugin.version


def served_version(plugin: Plugin, instance: PluginInstance | None) -> str:
    """The version that answered a job held by `instance` (None: a hosted worker)."""
    if instance is not None and instance.version:
        return instance.version
    return fallback_version(plugin)


def current_version(plugin: Plugin) -> str:
    """The plugin's version now, recorded by a run at its creation: the
    versions its live instances declare (several, comma-separated, while a new
    version rolls out), else fallback_version."""
    return version_of(
        plugin,
        PluginInstance.objects.live()
        .filter(plugin=plugin)
        .exclude(version="")
        .values_list("version", flat=True),
    )


def version_of(plugin: Plugin, live_versions: Iterable[str]) -> str:
    """current_version from the versions its live instances declare (a caller
    that read them already, as run creation does, reads them once)."""
    declared = sorted({v for v in live_versions if v})
    if declared:
        return ", ".join(declared)[:VERSION_LENGTH]
    return fallback_version(plugin)
