"""Bounds on untrusted input, shared by every entry point (the JSON API, the
Ango-compatible REST API, forms, the plugin socket): ids that fit the
database's integer columns, and JSON that is neither too deep nor too big.
Out of bounds is refused with a message (a 4xx), never a 500.

No Django models here: the settings are read at call time, so tests and
deployments can change them."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from plugins_app import answers

# Ids are BigAutoField (SQLite INTEGER and PostgreSQL bigint are both 64-bit):
# a larger number makes SQLite raise OverflowError and PostgreSQL an error.
DB_ID_MAX = 2**63 - 1
# IntegerField is 32-bit on PostgreSQL (64-bit on SQLite): numbers stored in one
# (timeouts, counts, page numbers that become OFFSETs) stay under this.
DB_INT_MAX = 2**31 - 1
# ASCII digits only: str.isdigit() also accepts "²" or "٣", which int()
# rejects (a 500) or misreads. 19 digits hold every 64-bit value.
_DECIMAL = re.compile(r"[0-9]{1,19}")


class JsonInputError(ValueError):
    """JSON refused: not valid, too deep or too big. A ValueError, so callers
    that already caught json.loads' errors keep working; the message says why."""


def parse_id(value: object) -> int | None:
    """A database id: a positive int, or a string of ASCII decimal digits,
    within the id columns' range. None for anything else (the caller answers
    "no such object" or skips it, as for any unknown id)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = int(value)
    else:
        return None
    return number if 0 < number <= DB_ID_MAX else None


def parse_ids(values: Iterable[object]) -> list[int]:
    """The values that are valid ids (see parse_id), in order; the rest dropped."""
    return [number for v in values if (number := parse_id(v)) is not None]


def parse_count(value: object, *, default: int, low: int, high: int) -> int | None:
    """A bounded count from a query string (page, limit): ASCII digits clamped
    into [low, high]; `default` when missing, None when not a number."""
    if value in (None, ""):
        return default
    text = str(value).strip()
    if not re.fullmatch(r"-?[0-9]+", text) or len(text) > 30:
        return None
    return max(low, min(high, int(text)))


def max_json_depth() -> int:
    return settings.HUB_MAX_JSON_DEPTH


def json_too_deep(value: Any, max_depth: int | None = None) -> bool:
    """Whether objects/arrays nest more than max_depth levels (default: the
    setting); the pure check lives with answer validation (answers/)."""
    return answers.json_too_deep(
        value, max_json_depth() if max_depth is None else max_depth
    )


def answer_limits() -> dict[str, int]:
    """The settings' bounds on an answer, for answers.validate_answer (which
    reads no settings: it is pure)."""
    return {
        "max_objects": settings.HUB_MAX_OBJECTS_PER_ANSWER,
        "max_depth": max_json_depth(),
    }


def check_json(value: Any, *, what: str, max_depth: int | None = None) -> None:
    """Refuse an already-parsed value (a request body's dict) nested too deeply:
    rendering, storing or validating it later would recurse past Python's limit."""
    limit = max_json_depth() if max_depth is None else max_depth
    if json_too_deep(value, limit):
        raise _too_deep(what, limit)


def _too_deep(what: str, limit: int) -> JsonInputError:
    return JsonInputError(
        f"{what} is nested more than {limit} levels deep "
        "(HUB_MAX_JSON_DEPTH); flatten it."
    )


def json_loads_bounded(
    text: str | bytes,
    *,
    what: str = "The JSON",
    max_bytes: int | None = None,
    max_depth: int | None = None,
    walk: bool = True,
) -> Any:
    """json.loads that refuses (JsonInputError) text over max_bytes (default
    HUB_MAX_CONFIG_BYTES) or nested over max_depth (HUB_MAX_JSON_DEPTH), and
    never lets a RecursionError out. walk=False skips the depth walk over the
    parsed value (bulk imports: their records are checked one by one) and
    only refuses what json.loads itself cannot nest."""
    limit = settings.HUB_MAX_CONFIG_BYTES if max_bytes is None else max_bytes
    if len(text) > limit:
        raise JsonInputError(
            f"{what} is {len(text):,} characters, over the hub's limit of "
            f"{limit:,} (HUB_MAX_CONFIG_BYTES)."
        )
    depth = max_json_depth() if max_depth is None else max_depth
    try:
        value = json.loads(text)
    except RecursionError:
        raise _too_deep(what, depth) from None
    except ValueError as exc:
        raise JsonInputError(str(exc)) from exc
    if walk:
        check_json(value, what=what, max_depth=depth)
    return value


# --- log extras: keep what fits, mark what was cut ---------------------------------
CUT = "…(cut)"
_SCALARS = frozenset({str, int, float, bool, type(None)})


def flat_json_text(value: Any, *, max_depth: int, max_chars: int) -> str | None:
    """The JSON text of a flat dict (str keys, scalar values) that json_trimmed
    would keep whole, or None when it needs the walk: most log extras are
    like that, and the walk costs a Python call per value where this is one
    pass in C. Whole means: no NaN/Infinity (allow_nan=False refuses them) and
    at most max_chars - 2 characters of JSON, since the walk's budget counts
    no more than the text's length plus the braces."""
    if max_depth < 1 or type(value) is not dict:
        return None
    if not value:  # what the SDK sends for a plain logger.info(msg)
        return "{}" if max_chars >= 2 else None
    if not all(
        type(key) is str and type(item) in _SCALARS for key, item in value.items()
    ):
        return None
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:
        return None
    return text if len(text) + 2 <= max_chars else None


def json_trimmed(value: Any, *, max_depth: int, max_chars: int) -> tuple[Any, bool]:
    """A copy of a plugin-supplied value that any JSON column and page accepts:
    containers deeper than max_depth and content past about max_chars of JSON
    are replaced by CUT markers, NaN/Infinity become strings (SQLite's
    JSON_VALID refuses them). Returns (copy, whether anything was cut)."""
    budget = [max_chars]
    cut = [False]

    def spend(cost: int) -> bool:
        budget[0] -= cost
        return budget[0] >= 0

    def walk(item: Any, depth: int) -> Any:
        if isinstance(item, dict | list | tuple):
            if depth >= max_depth or not spend(2):
                cut[0] = True
                return CUT
            if isinstance(item, dict):
                out: dict[str, Any] = {}
                for key, child in item.items():
                    if not spend(len(str(key)) + 4):
                        out[CUT] = f"{len(item) - len(out)} more key(s)"
                        cut[0] = True
                        break
                    out[str(key)] = walk(child, depth + 1)
                return out
            items: list[Any] = []
            for child in item:
                if budget[0] <= 0:
                    items.append(f"{CUT} {len(item) - len(items)} more item(s)")
                    cut[0] = True
                    break
                items.append(walk(child, depth + 1))
            return items
        if isinstance(item, float) and not math.isfinite(item):
            item = (
                "NaN" if math.isnan(item) else ("Infinity" if item > 0 else "-Infinity")
            )
        if isinstance(item, str | int | float | bool) or item is None:
            text = item if isinstance(item, str) else json.dumps(item)
            if not spend(len(text) + 2):
                cut[0] = True
                room = max(0, budget[0] + len(text))
                return (text[:room] + CUT) if isinstance(item, str) else CUT
            return item
        return walk(str(item), depth)

    return walk(value, 0), cut[0]
