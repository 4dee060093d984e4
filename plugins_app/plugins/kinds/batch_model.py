"""Batch Model plugins: one job over the chosen batches (or the whole
project); the plugin writes through POST /v2/import/labels, checked there
against the run's mapping, and answers only a message."""

from __future__ import annotations

from plugins_app.plugins.kinds.base import Kind
from plugins_app.plugins.models import PluginType


class BatchModelKind(Kind):
    type = PluginType.BATCH_MODEL
    label = "Batch Model"
    description = (
        "Labels many assets in one job: the plugin reads the chosen batches and "
        "imports its labels through the API, checked against the class mapping."
    )
    register_fields = ("class_names_text",)
    needs_classes = True
    writes_answers = True
    scope = "batches"
