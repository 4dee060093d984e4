"""How the answer checks word what they found: short, quoted, bounded."""

from __future__ import annotations

# How many valid schemaIds a problem lists.
SAMPLE_SIZE = 5

Point = tuple[float, float]


def type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def short(value: object) -> str:
    if isinstance(value, dict | list | tuple):
        return type_name(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**15:
        return "a very large number"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def title_of(definition: dict) -> str:
    title = definition.get("title")
    return repr(title) if isinstance(title, str) else "(untitled)"


def describe(definition: dict, schema_id: object) -> str:
    return f"{title_of(definition)} (schemaId {short(schema_id)})"


def sample(defs: dict[str, dict]) -> str:
    if not defs:
        return "the ontology defines none here"
    ids = list(defs)
    shown = ", ".join(repr(s) for s in ids[:SAMPLE_SIZE])
    more = ", …" if len(ids) > SAMPLE_SIZE else ""
    return f"valid: {shown}{more}"


def listed(values: list[str]) -> str:
    return ", ".join(short(v) for v in values)


def box_text(box: dict[str, float]) -> str:
    return ", ".join(f"{name}={box[name]:g}" for name in ("x", "y", "width", "height"))


def point_text(point: Point) -> str:
    return f"({point[0]:g}, {point[1]:g})"


def size_text(size: Point) -> str:
    return f"{size[0]:g}x{size[1]:g}"
