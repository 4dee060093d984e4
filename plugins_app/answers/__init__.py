"""Answer validation, pure (no Django: an import-linter contract keeps it so),
where both workspace (people's answers, imports) and runs (plugins' answers)
reach it without climbing up a layer.

validate.py checks and normalises an answer; geometry.py the objects' shapes;
labels.py classifications and relations; context.py and wording.py what they
share. The hub's callers pass the limits from settings
(plugins_app.inputs.answer_limits)."""

from __future__ import annotations

from plugins_app.answers.context import GEOMETRY_KEYS
from plugins_app.answers.validate import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_OBJECTS,
    ValidationResult,
    json_too_deep,
    unwrap_import_record,
    validate_answer,
)

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_OBJECTS",
    "GEOMETRY_KEYS",
    "ValidationResult",
    "json_too_deep",
    "unwrap_import_record",
    "validate_answer",
]
