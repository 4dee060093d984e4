"""Validate and normalise the answers plugins send back, before storing
pre-labels (the Ango plugin protocol reference, section 5, for the formats).

Pure: no Django. The limits come from the caller (plugins_app.inputs
answer_limits() reads the settings); without them the defaults apply."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from plugins_app.answers.context import (
    MAX_PROBLEMS,
    Context,
    check_mapped,
    copy_item,
    empty_answer,
    external_id_of,
    index_by_schema_id,
    mapped_ids,
    parse_size,
    schema_id_of,
)
from plugins_app.answers.geometry import check_geometry
from plugins_app.answers.labels import check_classifications, check_relations
from plugins_app.answers.wording import describe, sample, short, type_name

# The settings' defaults (HUB_MAX_OBJECTS_PER_ANSWER, HUB_MAX_JSON_DEPTH).
DEFAULT_MAX_OBJECTS = 10_000
DEFAULT_MAX_DEPTH = 64


@dataclass(frozen=True)
class ValidationResult:
    answer: dict[str, list]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_answer(
    raw: object,
    *,
    ontology: dict,
    mapping: list[dict] | None,
    image_size: tuple[int, int] | None,
    max_objects: int = DEFAULT_MAX_OBJECTS,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> ValidationResult:
    if not isinstance(raw, dict):
        problem = f"the response is not an object; got {type_name(raw)}"
        return ValidationResult(empty_answer(), [problem])
    if too_big := _over_bounds(raw, max_objects, max_depth):
        return ValidationResult(empty_answer(), [too_big])
    ctx = Context(
        tools=index_by_schema_id(ontology, "tools"),
        classifications=index_by_schema_id(ontology, "classifications"),
        relations=index_by_schema_id(ontology, "relations"),
        mapped=mapped_ids(mapping),
        size=parse_size(image_size),
    )
    answer = _validate(ctx, raw)
    return ValidationResult(answer, _capped(ctx.problems))


def _over_bounds(raw: dict, max_objects: int, max_depth: int) -> str | None:
    """Refuse, before checking anything in it, an answer too big to apply and
    draw in reasonable time (150,000 boxes took 15 s to apply and 20 s per
    page) or nested too deeply for the recursive checks below."""
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
    if json_too_deep(raw, max_depth):
        return (
            f"the answer is nested more than {max_depth} levels deep "
            "(HUB_MAX_JSON_DEPTH)"
        )
    return None


def json_too_deep(value: Any, max_depth: int) -> bool:
    """Whether objects/arrays nest more than max_depth levels (iteratively: the
    value may be nested too deeply for recursion, which is the point)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def unwrap_import_record(record: object) -> tuple[str | None, object]:
    if not isinstance(record, dict):
        return None, record
    external_id = external_id_of(record.get("externalId"))
    if "answer" in record:
        # A non-dict answer is passed through so validation reports it.
        answer = record["answer"]
        return external_id, dict(answer) if isinstance(answer, dict) else answer
    flat = {key: value for key, value in record.items() if key != "externalId"}
    return external_id, flat


# ---------------------------------------------------------------- top level


def _validate(ctx: Context, raw: dict) -> dict[str, list]:
    objects_key = "tools" if "objects" not in raw and "tools" in raw else "objects"
    if objects_key == "objects" and "tools" in raw and raw["tools"] not in ([], None):
        ctx.add("tools", "sent together with 'objects'; send only one of them")
    objects = _list_at(ctx, raw, objects_key)
    tools, object_ids = _check_objects(ctx, objects_key, objects)
    classes = _list_at(ctx, raw, "classifications")
    classifications = check_classifications(
        ctx, "classifications", classes, ctx.classifications, "the ontology", True
    )
    relations = check_relations(ctx, _list_at(ctx, raw, "relations"), object_ids)
    return {"tools": tools, "classifications": classifications, "relations": relations}


def _list_at(ctx: Context, raw: dict, key: str) -> list:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        ctx.add(key, f"must be a list; got {type_name(value)}")
        return []
    return value


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    extra = len(problems) - MAX_PROBLEMS
    return [*problems[:MAX_PROBLEMS], f"… and {extra} more problems"]


# ---------------------------------------------------------------- objects


def _check_objects(
    ctx: Context, key: str, items: list
) -> tuple[list[dict], frozenset[str]]:
    tools: list[dict] = []
    seen: dict[str, str] = {}
    for i, item in enumerate(items):
        path = f"{key}[{i}]"
        if not isinstance(item, dict):
            ctx.add(path, f"must be an object; got {type_name(item)}")
            continue
        tools.append(_check_object(ctx, path, copy_item(item), seen))
    return tools, frozenset(seen)


def _check_object(ctx: Context, path: str, obj: dict, seen: dict[str, str]) -> dict:
    tool = _object_tool(ctx, path, obj)
    check_geometry(ctx, path, obj, tool)
    _check_object_id(ctx, path, obj, seen)
    if "classifications" in obj:
        _check_nested_classifications(ctx, path, obj, tool)
    if tool is not None and obj.get("title") is None and "title" in tool:
        obj["title"] = tool["title"]
    return obj


def _object_tool(ctx: Context, path: str, obj: dict) -> dict | None:
    schema_id = schema_id_of(ctx, path, obj)
    if schema_id is None:
        return None
    tool = ctx.tools.get(schema_id)
    if tool is None:
        valid = sample(ctx.tools)
        ctx.add(path, f"schemaId {schema_id!r} is not a tool of the ontology ({valid})")
        return None
    check_mapped(ctx, path, schema_id, tool)
    return tool


def _check_object_id(ctx: Context, path: str, obj: dict, seen: dict[str, str]) -> None:
    if "objectId" not in obj:
        return
    object_id = obj["objectId"]
    if not isinstance(object_id, str) or not object_id:
        ctx.add(path, f"objectId must be a non-empty string; got {short(object_id)}")
    elif object_id in seen:
        ctx.add(path, f"objectId {object_id!r} is already used by {seen[object_id]}")
    else:
        seen[object_id] = path


def _check_nested_classifications(
    ctx: Context, path: str, obj: dict, tool: dict | None
) -> None:
    items = obj["classifications"]
    nested_path = f"{path}.classifications"
    if not isinstance(items, list):
        ctx.add(nested_path, f"must be a list; got {type_name(items)}")
        return
    if tool is None:
        # Without a known tool there are no definitions to check against.
        return
    defs = index_by_schema_id(tool, "classifications")
    where = f"tool {describe(tool, tool.get('schemaId'))}"
    check_classifications(ctx, nested_path, items, defs, where, False)
