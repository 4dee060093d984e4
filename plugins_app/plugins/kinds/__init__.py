"""The plugin kinds registry: one module per PluginType (model.py,
batch_model.py, export.py, file_explorer.py, markdown.py, event.py), each a
Kind holding that type's Run-dialog inputs and their checks, how its job is
built and how its answer is applied. Everything that differs by plugin type
asks KINDS (as ops/health asks its TRANSPORTS) instead of branching on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugins_app.plugins.kinds.base import (
    FILE_LINK_SALT,
    WORKFLOW_TRIGGER,
    Kind,
    Outcome,
    asset_file_link,
)
from plugins_app.plugins.kinds.batch_model import BatchModelKind
from plugins_app.plugins.kinds.event import EventKind
from plugins_app.plugins.kinds.export import ExportKind
from plugins_app.plugins.kinds.file_explorer import FileExplorerKind
from plugins_app.plugins.kinds.markdown import MarkdownKind
from plugins_app.plugins.kinds.model import ModelKind

if TYPE_CHECKING:
    from plugins_app.runs.models import Run

__all__ = [
    "FILE_LINK_SALT",
    "KINDS",
    "WORKFLOW_TRIGGER",
    "Kind",
    "Outcome",
    "asset_file_link",
    "kind_for",
    "kind_of",
]

KINDS: dict[str, Kind] = {
    kind.type: kind
    for kind in (
        ModelKind(),
        BatchModelKind(),
        ExportKind(),
        FileExplorerKind(),
        MarkdownKind(),
        EventKind(),
    )
}


def kind_for(plugin_type: str) -> Kind:
    """The kind of a PluginType value; a type with no kind is a bug (every
    PluginType is registered above, which a test checks)."""
    return KINDS[plugin_type]


def kind_of(run: Run) -> Kind:
    """The kind of a run's plugin."""
    return KINDS[run.plugin.type]
