"""What every answer check shares: the limits, the context problems are
collected in, and the small readers of the ontology and the answer."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

from plugins_app.answers.wording import SAMPLE_SIZE, Point, describe, type_name

GEOMETRY_KEYS: tuple[str, ...] = (
    "bounding-box",
    "rotated-bounding-box",
    "polygon",
    "polyline",
    "point",
    "segmentation",
    "ner",
    "pdf",
)
MAX_PROBLEMS = 50
TOLERANCE = 1e-6
ANSWER_KEYS = ("tools", "classifications", "relations")


@dataclass
class Context:
    tools: dict[str, dict]
    classifications: dict[str, dict]
    relations: dict[str, dict]
    mapped: frozenset[str] | None
    size: Point | None
    problems: list[str] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")


def schema_id_of(ctx: Context, path: str, item: dict) -> str | None:
    schema_id = item.get("schemaId")
    if schema_id is None:
        ctx.add(path, "has no schemaId")
        return None
    if not isinstance(schema_id, str):
        ctx.add(path, f"schemaId must be a string; got {type_name(schema_id)}")
        return None
    return schema_id


def check_mapped(ctx: Context, path: str, schema_id: str, definition: dict) -> None:
    if ctx.mapped is None or schema_id in ctx.mapped:
        return
    mapped = ", ".join(repr(s) for s in sorted(ctx.mapped)[:SAMPLE_SIZE]) or "none"
    ctx.add(
        path,
        f"class {describe(definition, schema_id)} is not mapped for this run "
        f"(mapped schemaIds: {mapped})",
    )


def index_by_schema_id(container: object, key: str) -> dict[str, dict]:
    items = container.get(key) if isinstance(container, dict) else None
    if not isinstance(items, list):
        return {}
    return {
        item["schemaId"]: item
        for item in items
        if isinstance(item, dict) and isinstance(item.get("schemaId"), str)
    }


def mapped_ids(mapping: object) -> frozenset[str] | None:
    if not isinstance(mapping, list) or not mapping:
        return None
    return frozenset(
        entry["schemaId"]
        for entry in mapping
        if isinstance(entry, dict) and isinstance(entry.get("schemaId"), str)
    )


def parse_size(image_size: object) -> Point | None:
    if not isinstance(image_size, list | tuple) or len(image_size) != 2:
        return None
    numbers = []
    for value in image_size:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not 0 < value < math.inf:
            return None
        numbers.append(float(value))
    return numbers[0], numbers[1]


def external_id_of(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def empty_answer() -> dict[str, list]:
    return {key: [] for key in ANSWER_KEYS}


def copy_item(item: dict) -> dict:
    try:
        return copy.deepcopy(item)
    except RecursionError:
        return dict(item)
