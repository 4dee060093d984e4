"""Validate and normalise the answers plugins send back, before storing pre-labels.

See docs section 5 of the Ango plugin protocol reference for the formats checked here.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

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
_SAMPLE_SIZE = 5
_ANSWER_KEYS = ("tools", "classifications", "relations")

Point = tuple[float, float]


@dataclass(frozen=True)
class ValidationResult:
    answer: dict[str, list]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Context:
    tools: dict[str, dict]
    classifications: dict[str, dict]
    relations: dict[str, dict]
    mapped: frozenset[str] | None
    size: Point | None
    problems: list[str] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")


# ---------------------------------------------------------------- public API


def validate_answer(
    raw: object,
    *,
    ontology: dict,
    mapping: list[dict] | None,
    image_size: tuple[int, int] | None,
    max_objects: int | None = None,
) -> ValidationResult:
    if not isinstance(raw, dict):
        problem = f"the response is not an object; got {_type_name(raw)}"
        return ValidationResult(_empty_answer(), [problem])
    if too_big := _over_bounds(raw, max_objects):
        return ValidationResult(_empty_answer(), [too_big])
    ctx = _Context(
        tools=_index(ontology, "tools"),
        classifications=_index(ontology, "classifications"),
        relations=_index(ontology, "relations"),
        mapped=_mapped_ids(mapping),
        size=_parse_size(image_size),
    )
    answer = _validate(ctx, raw)
    return ValidationResult(answer, _capped(ctx.problems))


def _over_bounds(raw: dict, max_objects: int | None) -> str | None:
    """Refuse, before checking anything in it, an answer too big to apply and
    draw in reasonable time (150,000 boxes took 15 s to apply and 20 s per
    page) or nested too deeply for the recursive checks below."""
    from plugins_app.inputs import json_too_deep, max_json_depth

    if max_objects is None:
        from django.conf import settings  # read late: the checks need no Django

        max_objects = settings.HUB_MAX_OBJECTS_PER_ANSWER
    count = sum(
        len(raw[key])
        for key in ("objects", "tools", "classifications", "relations")
        if isinstance(raw.get(key), list)
    )
    if count > max_objects:
        return (
            f"the answer has {count:,} objects, classifications and relations; "
            f"the hub takes at most {max_objects:,} per answer "
            "(HUB_MAX_OBJECTS_PER_ANSWER)"
        )
    if json_too_deep(raw):
        return (
            f"the answer is nested more than {max_json_depth()} levels deep "
            "(HUB_MAX_JSON_DEPTH)"
        )
    return None


def unwrap_import_record(record: object) -> tuple[str | None, object]:
    if not isinstance(record, dict):
        return None, record
    external_id = _external_id(record.get("externalId"))
    if "answer" in record:
        # A non-dict answer is passed through so validation reports it.
        answer = record["answer"]
        return external_id, dict(answer) if isinstance(answer, dict) else answer
    flat = {key: value for key, value in record.items() if key != "externalId"}
    return external_id, flat


# ---------------------------------------------------------------- top level


def _validate(ctx: _Context, raw: dict) -> dict[str, list]:
    objects_key = "tools" if "objects" not in raw and "tools" in raw else "objects"
    if objects_key == "objects" and "tools" in raw and raw["tools"] not in ([], None):
        ctx.add("tools", "sent together with 'objects'; send only one of them")
    objects = _list_at(ctx, raw, objects_key)
    tools, object_ids = _check_objects(ctx, objects_key, objects)
    classes = _list_at(ctx, raw, "classifications")
    classifications = _check_classifications(
        ctx, "classifications", classes, ctx.classifications, "the ontology", True
    )
    relations = _check_relations(ctx, _list_at(ctx, raw, "relations"), object_ids)
    return {"tools": tools, "classifications": classifications, "relations": relations}


def _list_at(ctx: _Context, raw: dict, key: str) -> list:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        ctx.add(key, f"must be a list; got {_type_name(value)}")
        return []
    return value


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    extra = len(problems) - MAX_PROBLEMS
    return [*problems[:MAX_PROBLEMS], f"… and {extra} more problems"]


# ---------------------------------------------------------------- objects


def _check_objects(
    ctx: _Context, key: str, items: list
) -> tuple[list[dict], frozenset[str]]:
    tools: list[dict] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(items):
        path = f"{key}[{i}]"
        if not isinstance(item, dict):
            ctx.add(path, f"must be an object; got {_type_name(item)}")
            continue
        tools.append(_check_object(ctx, path, _copy(item), seen))
    return tools, frozenset(seen)


def _check_object(ctx: _Context, path: str, obj: dict, seen: dict[str, str]) -> dict:
    tool = _object_tool(ctx, path, obj)
    _check_geometry(ctx, path, obj, tool)
    _check_object_id(ctx, path, obj, seen)
    if "classifications" in obj:
        _check_nested_classifications(ctx, path, obj, tool)
    if tool is not None and obj.get("title") is None and "title" in tool:
        obj["title"] = tool["title"]
    return obj


def _object_tool(ctx: _Context, path: str, obj: dict) -> dict | None:
    schema_id = _schema_id(ctx, path, obj)
    if schema_id is None:
        return None
    tool = ctx.tools.get(schema_id)
    if tool is None:
        valid = _sample(ctx.tools)
        ctx.add(path, f"schemaId {schema_id!r} is not a tool of the ontology ({valid})")
        return None
    _check_mapped(ctx, path, schema_id, tool)
    return tool


def _schema_id(ctx: _Context, path: str, item: dict) -> str | None:
    schema_id = item.get("schemaId")
    if schema_id is None:
        ctx.add(path, "has no schemaId")
        return None
    if not isinstance(schema_id, str):
        ctx.add(path, f"schemaId must be a string; got {_type_name(schema_id)}")
        return None
    return schema_id


def _check_mapped(ctx: _Context, path: str, schema_id: str, definition: dict) -> None:
    if ctx.mapped is None or schema_id in ctx.mapped:
        return
    mapped = ", ".join(repr(s) for s in sorted(ctx.mapped)[:_SAMPLE_SIZE]) or "none"
    ctx.add(
        path,
        f"class {_describe(definition, schema_id)} is not mapped for this run "
        f"(mapped schemaIds: {mapped})",
    )


def _check_object_id(ctx: _Context, path: str, obj: dict, seen: dict[str, str]) -> None:
    if "objectId" not in obj:
        return
    object_id = obj["objectId"]
    if not isinstance(object_id, str) or not object_id:
        ctx.add(path, f"objectId must be a non-empty string; got {_short(object_id)}")
    elif object_id in seen:
        ctx.add(path, f"objectId {object_id!r} is already used by {seen[object_id]}")
    else:
        seen[object_id] = path


def _check_nested_classifications(
    ctx: _Context, path: str, obj: dict, tool: dict | None
) -> None:
    items = obj["classifications"]
    nested_path = f"{path}.classifications"
    if not isinstance(items, list):
        ctx.add(nested_path, f"must be a list; got {_type_name(items)}")
        return
    if tool is None:
        # Without a known tool there are no definitions to check against.
        return
    defs = _index(tool, "classifications")
    where = f"tool {_describe(tool, tool.get('schemaId'))}"
    _check_classifications(ctx, nested_path, items, defs, where, False)


# ---------------------------------------------------------------- geometry


def _check_geometry(ctx: _Context, path: str, obj: dict, tool: dict | None) -> None:
    keys = [key for key in GEOMETRY_KEYS if key in obj]
    if len(keys) > 1:
        listed = ", ".join(repr(k) for k in keys)
        ctx.add(path, f"has several geometry keys ({listed}); send exactly one")
        return
    if not keys:
        ctx.add(path, f"has no geometry; {_expected_geometry(tool)}")
        return
    key = keys[0]
    if tool is not None and tool.get("tool") != key:
        described = _describe(tool, tool.get("schemaId"))
        ctx.add(
            path, f"has geometry {key!r} but tool {described} is a {_tool_type(tool)}"
        )
    _SHAPE_CHECKS[key](ctx, f"{path}.{key}", obj[key])


def _expected_geometry(tool: dict | None) -> str:
    if tool is None:
        return "expected one of " + ", ".join(repr(k) for k in GEOMETRY_KEYS)
    described = _describe(tool, tool.get("schemaId"))
    kind = _tool_type(tool)
    if kind in GEOMETRY_KEYS:
        return f"tool {described} expects {kind!r}"
    return f"tool {described} is a {kind}, which cannot be sent as an object"


def _tool_type(tool: dict) -> str:
    kind = tool.get("tool")
    return kind if isinstance(kind, str) else _short(kind)


def _check_box(ctx: _Context, path: str, value: object) -> None:
    box = _numbers(ctx, path, value, ("x", "y", "width", "height"))
    if box is None or not _positive_size(ctx, path, box):
        return
    if ctx.size is None:
        return
    width, height = ctx.size
    right, bottom = box["x"] + box["width"], box["y"] + box["height"]
    inside = _within(box["x"], 0, width) and _within(box["y"], 0, height)
    if not (inside and _within(right, 0, width) and _within(bottom, 0, height)):
        ctx.add(
            path, f"box {_box_text(box)} is outside the {_size_text(ctx.size)} image"
        )


def _check_rotated_box(ctx: _Context, path: str, value: object) -> None:
    names = ("x", "y", "width", "height", "rotation")
    box = _numbers(ctx, path, value, names)
    if box is None:
        return
    if not -180 <= box["rotation"] <= 180:
        ctx.add(path, f"rotation must be within [-180, 180]; got {box['rotation']:g}")
    if not _positive_size(ctx, path, box) or ctx.size is None:
        return
    # The rotated corners may legitimately poke out; only the centre must be inside.
    center = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    if not _point_inside(center, ctx.size):
        where = f"centre ({center[0]:g}, {center[1]:g})"
        ctx.add(path, f"{where} is outside the {_size_text(ctx.size)} image")


def _positive_size(ctx: _Context, path: str, box: dict[str, float]) -> bool:
    if box["width"] > 0 and box["height"] > 0:
        return True
    sizes = f"width={box['width']:g}, height={box['height']:g}"
    ctx.add(path, f"width and height must be > 0; got {sizes}")
    return False


def _check_polygon(ctx: _Context, path: str, value: object) -> None:
    _check_vertices(ctx, path, value, 3)


def _check_polyline(ctx: _Context, path: str, value: object) -> None:
    _check_vertices(ctx, path, value, 2)


def _check_point(ctx: _Context, path: str, value: object) -> None:
    point = _pair(ctx, path, value)
    if (
        point is not None
        and ctx.size is not None
        and not _point_inside(point, ctx.size)
    ):
        ctx.add(
            path, f"{_point_text(point)} is outside the {_size_text(ctx.size)} image"
        )


def _check_segmentation(ctx: _Context, path: str, value: object) -> None:
    if not isinstance(value, dict):
        ctx.add(path, f"must be an object with 'zones'; got {_type_name(value)}")
        return
    zones = value.get("zones")
    if not isinstance(zones, list) or not zones:
        ctx.add(f"{path}.zones", f"must be a non-empty list; got {_short(zones)}")
        return
    for i, zone in enumerate(zones):
        _check_zone(ctx, f"{path}.zones[{i}]", zone)


def _check_zone(ctx: _Context, path: str, zone: object) -> None:
    if not isinstance(zone, dict):
        ctx.add(path, f"must be an object with 'region'; got {_type_name(zone)}")
        return
    _check_vertices(ctx, f"{path}.region", zone.get("region"), 3)
    holes = zone.get("holes")
    if holes is None:
        return
    if not isinstance(holes, list):
        ctx.add(f"{path}.holes", f"must be a list; got {_type_name(holes)}")
        return
    for i, hole in enumerate(holes):
        _check_vertices(ctx, f"{path}.holes[{i}]", hole, 3)


def _check_ner(ctx: _Context, path: str, value: object) -> None:
    span = _numbers(ctx, path, value, ("start", "end"))
    if span is not None and not 0 <= span["start"] <= span["end"]:
        got = f"start={span['start']:g}, end={span['end']:g}"
        ctx.add(path, f"needs 0 <= start <= end; got {got}")


def _check_pdf(ctx: _Context, path: str, value: object) -> None:
    names = ("x1", "y1", "x2", "y2", "width", "height", "pageNumber")
    if _numbers(ctx, path, value, names) is None:
        return
    text = value.get("text") if isinstance(value, dict) else None
    if not isinstance(text, str):
        ctx.add(f"{path}.text", f"must be a string; got {_type_name(text)}")


_SHAPE_CHECKS: dict[str, Callable[[_Context, str, object], None]] = {
    "bounding-box": _check_box,
    "rotated-bounding-box": _check_rotated_box,
    "polygon": _check_polygon,
    "polyline": _check_polyline,
    "point": _check_point,
    "segmentation": _check_segmentation,
    "ner": _check_ner,
    "pdf": _check_pdf,
}


def _check_vertices(ctx: _Context, path: str, value: object, minimum: int) -> None:
    points = _vertices(ctx, path, value, minimum)
    if points is None or ctx.size is None:
        return
    for i, point in enumerate(points):
        if not _point_inside(point, ctx.size):
            where = f"vertex {_point_text(point)}"
            ctx.add(
                f"{path}[{i}]", f"{where} is outside the {_size_text(ctx.size)} image"
            )
            return


def _vertices(
    ctx: _Context, path: str, value: object, minimum: int
) -> list[Point] | None:
    if not isinstance(value, list):
        ctx.add(path, f"must be a list of [x, y] pairs; got {_type_name(value)}")
        return None
    if len(value) < minimum:
        ctx.add(path, f"needs at least {minimum} [x, y] pairs; got {len(value)}")
        return None
    points: list[Point] = []
    for i, item in enumerate(value):
        # Stop at the first bad vertex so one broken shape cannot flood the report.
        point = _pair(ctx, f"{path}[{i}]", item)
        if point is None:
            return None
        points.append(point)
    return points


def _pair(ctx: _Context, path: str, value: object) -> Point | None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        ctx.add(path, f"must be an [x, y] pair; got {_short(value)}")
        return None
    x = _number(ctx, f"{path}[0]", value[0])
    y = _number(ctx, f"{path}[1]", value[1])
    if x is None or y is None:
        return None
    return x, y


# ---------------------------------------------------------------- numbers


def _numbers(
    ctx: _Context, path: str, value: object, names: tuple[str, ...]
) -> dict[str, float] | None:
    if not isinstance(value, dict):
        expected = ", ".join(names)
        ctx.add(path, f"must be an object with {expected}; got {_type_name(value)}")
        return None
    result: dict[str, float] = {}
    for name in names:
        if name not in value:
            ctx.add(path, f"is missing {name!r}")
            continue
        number = _number(ctx, f"{path}.{name}", value[name])
        if number is not None:
            result[name] = number
    return result if len(result) == len(names) else None


def _number(ctx: _Context, path: str, value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        ctx.add(path, f"must be a number; got {_short(value)}")
        return None
    try:
        number = float(value)
    except OverflowError:
        ctx.add(path, "is too large to be a number")
        return None
    if not math.isfinite(number):
        ctx.add(path, f"must be a finite number; got {number!r}")
        return None
    return number


def _within(value: float, low: float, high: float) -> bool:
    return low - TOLERANCE <= value <= high + TOLERANCE


def _point_inside(point: Point, size: Point) -> bool:
    return _within(point[0], 0, size[0]) and _within(point[1], 0, size[1])


# ---------------------------------------------------------------- classifications


def _check_classifications(
    ctx: _Context,
    path: str,
    items: list,
    defs: dict[str, dict],
    where: str,
    top_level: bool,
) -> list[dict]:
    kept: list[dict] = []
    for i, item in enumerate(items):
        item_path = f"{path}[{i}]"
        if not isinstance(item, dict):
            ctx.add(item_path, f"must be an object; got {_type_name(item)}")
            continue
        _check_classification(ctx, item_path, item, defs, where, top_level)
        kept.append(_copy(item))
    return kept


def _check_classification(
    ctx: _Context,
    path: str,
    item: dict,
    defs: dict[str, dict],
    where: str,
    top_level: bool,
) -> None:
    schema_id = _schema_id(ctx, path, item)
    if schema_id is None:
        return
    definition = defs.get(schema_id)
    if definition is None:
        valid = _sample(defs)
        ctx.add(
            path, f"schemaId {schema_id!r} is not a classification of {where} ({valid})"
        )
        return
    if top_level:
        _check_mapped(ctx, path, schema_id, definition)
    _check_answer(ctx, path, item, definition)
    if "classifications" in item:
        _check_sub_classifications(ctx, path, item["classifications"], definition)


def _check_sub_classifications(
    ctx: _Context, path: str, items: object, definition: dict
) -> None:
    nested_path = f"{path}.classifications"
    if not isinstance(items, list):
        ctx.add(nested_path, f"must be a list; got {_type_name(items)}")
        return
    defs = _index(definition, "classifications")
    where = f"classification {_describe(definition, definition.get('schemaId'))}"
    _check_classifications(ctx, nested_path, items, defs, where, False)


def _check_answer(ctx: _Context, path: str, item: dict, definition: dict) -> None:
    kind = definition.get("tool")
    check = _ANSWER_CHECKS.get(kind) if isinstance(kind, str) else None
    if check is None:
        return
    if "answer" not in item:
        ctx.add(path, f"has no answer for {kind} {_title(definition)}")
        return
    problem = check(item["answer"], _option_values(definition))
    if problem is not None:
        ctx.add(f"{path}.answer", f"{problem} ({kind} {_title(definition)})")


def _answer_choice(answer: object, options: list[str]) -> str | None:
    if not isinstance(answer, str):
        return f"must be a string; got {_short(answer)}"
    if options and answer not in options:
        return f"{answer!r} is not an option; options are {_listed(options)}"
    return None


def _answer_choices(answer: object, options: list[str]) -> str | None:
    problem = _answer_strings(answer, options)
    if problem is not None:
        return problem
    assert isinstance(answer, list)  # _answer_strings found a list of strings
    unknown = [value for value in answer if options and value not in options]
    if unknown:
        return f"{_listed(unknown)} not among the options {_listed(options)}"
    return None


def _answer_strings(answer: object, options: list[str]) -> str | None:
    if not isinstance(answer, list) or not all(isinstance(a, str) for a in answer):
        return f"must be a list of strings; got {_short(answer)}"
    return None


def _answer_text(answer: object, options: list[str]) -> str | None:
    if isinstance(answer, str):
        return None
    return f"must be a string; got {_short(answer)}"


def _answer_boolean(answer: object, options: list[str]) -> str | None:
    if isinstance(answer, bool):
        return None
    return f"must be true or false; got {_short(answer)}"


_ANSWER_CHECKS: dict[str, Callable[[object, list[str]], str | None]] = {
    "radio": _answer_choice,
    "single-dropdown": _answer_choice,
    "checkbox": _answer_choices,
    "multi-dropdown": _answer_choices,
    "text": _answer_text,
    "tree-dropdown": _answer_strings,
    "boolean": _answer_boolean,
}


def _option_values(definition: dict) -> list[str]:
    options = definition.get("options")
    if not isinstance(options, list):
        return []
    return [
        option["value"]
        for option in options
        if isinstance(option, dict) and isinstance(option.get("value"), str)
    ]


# ---------------------------------------------------------------- relations


def _check_relations(
    ctx: _Context, items: list, object_ids: frozenset[str]
) -> list[dict]:
    kept: list[dict] = []
    for i, item in enumerate(items):
        path = f"relations[{i}]"
        if not isinstance(item, dict):
            ctx.add(path, f"must be an object; got {_type_name(item)}")
            continue
        _check_relation(ctx, path, item, object_ids)
        kept.append(_copy(item))
    return kept


def _check_relation(
    ctx: _Context, path: str, item: dict, object_ids: frozenset[str]
) -> None:
    kind = _relation_kind(ctx, path, item)
    if kind in ("one-to-one", "one-to-many"):
        _require(ctx, path, item, ("from", "to"))
    elif kind == "group":
        _require(ctx, path, item, ("group",))
    if "from" in item:
        _check_reference(ctx, f"{path}.from", item["from"], object_ids)
    if "to" in item:
        _check_targets(ctx, f"{path}.to", item["to"], object_ids, kind)
    if "group" in item:
        _check_group(ctx, f"{path}.group", item["group"], object_ids)


def _relation_kind(ctx: _Context, path: str, item: dict) -> str | None:
    schema_id = _schema_id(ctx, path, item)
    if schema_id is None:
        return None
    definition = ctx.relations.get(schema_id)
    if definition is None:
        valid = _sample(ctx.relations)
        ctx.add(
            path, f"schemaId {schema_id!r} is not a relation of the ontology ({valid})"
        )
        return None
    kind = definition.get("tool")
    return kind if isinstance(kind, str) else None


def _require(ctx: _Context, path: str, item: dict, keys: tuple[str, ...]) -> None:
    for key in keys:
        if key not in item:
            ctx.add(path, f"is missing {key!r}")


def _check_targets(
    ctx: _Context,
    path: str,
    value: object,
    object_ids: frozenset[str],
    kind: str | None,
) -> None:
    # One-to-many relations may list several targets.
    if isinstance(value, list) and kind != "one-to-one":
        _check_group(ctx, path, value, object_ids)
    else:
        _check_reference(ctx, path, value, object_ids)


def _check_group(
    ctx: _Context, path: str, value: object, object_ids: frozenset[str]
) -> None:
    if not isinstance(value, list) or not value:
        ctx.add(path, f"must be a non-empty list of objectIds; got {_short(value)}")
        return
    for i, reference in enumerate(value):
        _check_reference(ctx, f"{path}[{i}]", reference, object_ids)


def _check_reference(
    ctx: _Context, path: str, value: object, object_ids: frozenset[str]
) -> None:
    if not isinstance(value, str):
        ctx.add(path, f"must be an objectId string; got {_short(value)}")
    elif value not in object_ids:
        ctx.add(
            path, f"objectId {value!r} is not the objectId of any object in this answer"
        )


# ---------------------------------------------------------------- inputs


def _index(container: object, key: str) -> dict[str, dict]:
    items = container.get(key) if isinstance(container, dict) else None
    if not isinstance(items, list):
        return {}
    return {
        item["schemaId"]: item
        for item in items
        if isinstance(item, dict) and isinstance(item.get("schemaId"), str)
    }


def _mapped_ids(mapping: object) -> frozenset[str] | None:
    if not isinstance(mapping, list) or not mapping:
        return None
    return frozenset(
        entry["schemaId"]
        for entry in mapping
        if isinstance(entry, dict) and isinstance(entry.get("schemaId"), str)
    )


def _parse_size(image_size: object) -> Point | None:
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


def _external_id(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _empty_answer() -> dict[str, list]:
    return {key: [] for key in _ANSWER_KEYS}


def _copy(item: dict) -> dict:
    try:
        return copy.deepcopy(item)
    except RecursionError:
        return dict(item)


# ---------------------------------------------------------------- wording


def _type_name(value: object) -> str:
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


def _short(value: object) -> str:
    if isinstance(value, dict | list | tuple):
        return _type_name(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**15:
        return "a very large number"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _title(definition: dict) -> str:
    title = definition.get("title")
    return repr(title) if isinstance(title, str) else "(untitled)"


def _describe(definition: dict, schema_id: object) -> str:
    return f"{_title(definition)} (schemaId {_short(schema_id)})"


def _sample(defs: dict[str, dict]) -> str:
    if not defs:
        return "the ontology defines none here"
    ids = list(defs)
    shown = ", ".join(repr(s) for s in ids[:_SAMPLE_SIZE])
    more = ", …" if len(ids) > _SAMPLE_SIZE else ""
    return f"valid: {shown}{more}"


def _listed(values: list[str]) -> str:
    return ", ".join(_short(v) for v in values)


def _box_text(box: dict[str, float]) -> str:
    return ", ".join(f"{name}={box[name]:g}" for name in ("x", "y", "width", "height"))


def _point_text(point: Point) -> str:
    return f"({point[0]:g}, {point[1]:g})"


def _size_text(size: Point) -> str:
    return f"{size[0]:g}x{size[1]:g}"
