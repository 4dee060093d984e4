"""Classifications (with their answers and nested ones) and relations of an
answer, checked against the ontology's definitions."""

from __future__ import annotations

from collections.abc import Callable

from plugins_app.answers.context import (
    Context,
    check_mapped,
    copy_item,
    index_by_schema_id,
    schema_id_of,
)
from plugins_app.answers.wording import (
    describe,
    listed,
    sample,
    short,
    title_of,
    type_name,
)


def check_classifications(
    ctx: Context,
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
            ctx.add(item_path, f"must be an object; got {type_name(item)}")
            continue
        _check_classification(ctx, item_path, item, defs, where, top_level)
        kept.append(copy_item(item))
    return kept


def _check_classification(
    ctx: Context,
    path: str,
    item: dict,
    defs: dict[str, dict],
    where: str,
    top_level: bool,
) -> None:
    schema_id = schema_id_of(ctx, path, item)
    if schema_id is None:
        return
    definition = defs.get(schema_id)
    if definition is None:
        valid = sample(defs)
        ctx.add(
            path, f"schemaId {schema_id!r} is not a classification of {where} ({valid})"
        )
        return
    if top_level:
        check_mapped(ctx, path, schema_id, definition)
    _check_answer(ctx, path, item, definition)
    if "classifications" in item:
        _check_sub_classifications(ctx, path, item["classifications"], definition)


def _check_sub_classifications(
    ctx: Context, path: str, items: object, definition: dict
) -> None:
    nested_path = f"{path}.classifications"
    if not isinstance(items, list):
        ctx.add(nested_path, f"must be a list; got {type_name(items)}")
        return
    defs = index_by_schema_id(definition, "classifications")
    where = f"classification {describe(definition, definition.get('schemaId'))}"
    check_classifications(ctx, nested_path, items, defs, where, False)


def _check_answer(ctx: Context, path: str, item: dict, definition: dict) -> None:
    kind = definition.get("tool")
    check = _ANSWER_CHECKS.get(kind) if isinstance(kind, str) else None
    if check is None:
        return
    if "answer" not in item:
        ctx.add(path, f"has no answer for {kind} {title_of(definition)}")
        return
    problem = check(item["answer"], _option_values(definition))
    if problem is not None:
        ctx.add(f"{path}.answer", f"{problem} ({kind} {title_of(definition)})")


def _answer_choice(answer: object, options: list[str]) -> str | None:
    if not isinstance(answer, str):
        return f"must be a string; got {short(answer)}"
    if options and answer not in options:
        return f"{answer!r} is not an option; options are {listed(options)}"
    return None


def _answer_choices(answer: object, options: list[str]) -> str | None:
    problem = _answer_strings(answer, options)
    if problem is not None:
        return problem
    assert isinstance(answer, list)  # _answer_strings found a list of strings
    unknown = [value for value in answer if options and value not in options]
    if unknown:
        return f"{listed(unknown)} not among the options {listed(options)}"
    return None


def _answer_strings(answer: object, options: list[str]) -> str | None:
    if not isinstance(answer, list) or not all(isinstance(a, str) for a in answer):
        return f"must be a list of strings; got {short(answer)}"
    return None


def _answer_text(answer: object, options: list[str]) -> str | None:
    if isinstance(answer, str):
        return None
    return f"must be a string; got {short(answer)}"


def _answer_boolean(answer: object, options: list[str]) -> str | None:
    if isinstance(answer, bool):
        return None
    return f"must be true or false; got {short(answer)}"


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


def check_relations(
    ctx: Context, items: list, object_ids: frozenset[str]
) -> list[dict]:
    kept: list[dict] = []
    for i, item in enumerate(items):
        path = f"relations[{i}]"
        if not isinstance(item, dict):
            ctx.add(path, f"must be an object; got {type_name(item)}")
            continue
        _check_relation(ctx, path, item, object_ids)
        kept.append(copy_item(item))
    return kept


def _check_relation(
    ctx: Context, path: str, item: dict, object_ids: frozenset[str]
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


def _relation_kind(ctx: Context, path: str, item: dict) -> str | None:
    schema_id = schema_id_of(ctx, path, item)
    if schema_id is None:
        return None
    definition = ctx.relations.get(schema_id)
    if definition is None:
        valid = sample(ctx.relations)
        ctx.add(
            path, f"schemaId {schema_id!r} is not a relation of the ontology ({valid})"
        )
        return None
    kind = definition.get("tool")
    return kind if isinstance(kind, str) else None


def _require(ctx: Context, path: str, item: dict, keys: tuple[str, ...]) -> None:
    for key in keys:
        if key not in item:
            ctx.add(path, f"is missing {key!r}")


def _check_targets(
    ctx: Context,
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
    ctx: Context, path: str, value: object, object_ids: frozenset[str]
) -> None:
    if not isinstance(value, list) or not value:
        ctx.add(path, f"must be a non-empty list of objectIds; got {short(value)}")
        return
    for i, reference in enumerate(value):
        _check_reference(ctx, f"{path}[{i}]", reference, object_ids)


def _check_reference(
    ctx: Context, path: str, value: object, object_ids: frozenset[str]
) -> None:
    if not isinstance(value, str):
        ctx.add(path, f"must be an objectId string; got {short(value)}")
    elif value not in object_ids:
        ctx.add(
            path, f"objectId {value!r} is not the objectId of any object in this answer"
        )
