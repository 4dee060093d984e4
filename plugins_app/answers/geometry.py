"""The geometry of an answer's objects: each tool's shape, its numbers, and
that it lies inside the image."""

from __future__ import annotations

import math
from collections.abc import Callable

from plugins_app.answers.context import GEOMETRY_KEYS, TOLERANCE, Context
from plugins_app.answers.wording import (
    Point,
    box_text,
    describe,
    point_text,
    short,
    size_text,
    type_name,
)


def check_geometry(ctx: Context, path: str, obj: dict, tool: dict | None) -> None:
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
        described = describe(tool, tool.get("schemaId"))
        ctx.add(
            path, f"has geometry {key!r} but tool {described} is a {_tool_type(tool)}"
        )
    _SHAPE_CHECKS[key](ctx, f"{path}.{key}", obj[key])


def _expected_geometry(tool: dict | None) -> str:
    if tool is None:
        return "expected one of " + ", ".join(repr(k) for k in GEOMETRY_KEYS)
    described = describe(tool, tool.get("schemaId"))
    kind = _tool_type(tool)
    if kind in GEOMETRY_KEYS:
        return f"tool {described} expects {kind!r}"
    return f"tool {described} is a {kind}, which cannot be sent as an object"


def _tool_type(tool: dict) -> str:
    kind = tool.get("tool")
    return kind if isinstance(kind, str) else short(kind)


def _check_box(ctx: Context, path: str, value: object) -> None:
    box = _numbers(ctx, path, value, ("x", "y", "width", "height"))
    if box is None or not _positive_size(ctx, path, box):
        return
    if ctx.size is None:
        return
    width, height = ctx.size
    right, bottom = box["x"] + box["width"], box["y"] + box["height"]
    inside = _within(box["x"], 0, width) and _within(box["y"], 0, height)
    if not (inside and _within(right, 0, width) and _within(bottom, 0, height)):
        ctx.add(path, f"box {box_text(box)} is outside the {size_text(ctx.size)} image")


def _check_rotated_box(ctx: Context, path: str, value: object) -> None:
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
        ctx.add(path, f"{where} is outside the {size_text(ctx.size)} image")


def _positive_size(ctx: Context, path: str, box: dict[str, float]) -> bool:
    if box["width"] > 0 and box["height"] > 0:
        return True
    sizes = f"width={box['width']:g}, height={box['height']:g}"
    ctx.add(path, f"width and height must be > 0; got {sizes}")
    return False


def _check_polygon(ctx: Context, path: str, value: object) -> None:
    _check_vertices(ctx, path, value, 3)


def _check_polyline(ctx: Context, path: str, value: object) -> None:
    _check_vertices(ctx, path, value, 2)


def _check_point(ctx: Context, path: str, value: object) -> None:
    point = _pair(ctx, path, value)
    if (
        point is not None
        and ctx.size is not None
        and not _point_inside(point, ctx.size)
    ):
        ctx.add(path, f"{point_text(point)} is outside the {size_text(ctx.size)} image")


def _check_segmentation(ctx: Context, path: str, value: object) -> None:
    if not isinstance(value, dict):
        ctx.add(path, f"must be an object with 'zones'; got {type_name(value)}")
        return
    zones = value.get("zones")
    if not isinstance(zones, list) or not zones:
        ctx.add(f"{path}.zones", f"must be a non-empty list; got {short(zones)}")
        return
    for i, zone in enumerate(zones):
        _check_zone(ctx, f"{path}.zones[{i}]", zone)


def _check_zone(ctx: Context, path: str, zone: object) -> None:
    if not isinstance(zone, dict):
        ctx.add(path, f"must be an object with 'region'; got {type_name(zone)}")
        return
    _check_vertices(ctx, f"{path}.region", zone.get("region"), 3)
    holes = zone.get("holes")
    if holes is None:
        return
    if not isinstance(holes, list):
        ctx.add(f"{path}.holes", f"must be a list; got {type_name(holes)}")
        return
    for i, hole in enumerate(holes):
        _check_vertices(ctx, f"{path}.holes[{i}]", hole, 3)


def _check_ner(ctx: Context, path: str, value: object) -> None:
    span = _numbers(ctx, path, value, ("start", "end"))
    if span is not None and not 0 <= span["start"] <= span["end"]:
        got = f"start={span['start']:g}, end={span['end']:g}"
        ctx.add(path, f"needs 0 <= start <= end; got {got}")


def _check_pdf(ctx: Context, path: str, value: object) -> None:
    names = ("x1", "y1", "x2", "y2", "width", "height", "pageNumber")
    if _numbers(ctx, path, value, names) is None:
        return
    text = value.get("text") if isinstance(value, dict) else None
    if not isinstance(text, str):
        ctx.add(f"{path}.text", f"must be a string; got {type_name(text)}")


_SHAPE_CHECKS: dict[str, Callable[[Context, str, object], None]] = {
    "bounding-box": _check_box,
    "rotated-bounding-box": _check_rotated_box,
    "polygon": _check_polygon,
    "polyline": _check_polyline,
    "point": _check_point,
    "segmentation": _check_segmentation,
    "ner": _check_ner,
    "pdf": _check_pdf,
}


def _check_vertices(ctx: Context, path: str, value: object, minimum: int) -> None:
    points = _vertices(ctx, path, value, minimum)
    if points is None or ctx.size is None:
        return
    for i, point in enumerate(points):
        if not _point_inside(point, ctx.size):
            where = f"vertex {point_text(point)}"
            ctx.add(
                f"{path}[{i}]", f"{where} is outside the {size_text(ctx.size)} image"
            )
            return


def _vertices(
    ctx: Context, path: str, value: object, minimum: int
) -> list[Point] | None:
    if not isinstance(value, list):
        ctx.add(path, f"must be a list of [x, y] pairs; got {type_name(value)}")
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


def _pair(ctx: Context, path: str, value: object) -> Point | None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        ctx.add(path, f"must be an [x, y] pair; got {short(value)}")
        return None
    x = _number(ctx, f"{path}[0]", value[0])
    y = _number(ctx, f"{path}[1]", value[1])
    if x is None or y is None:
        return None
    return x, y


# ---------------------------------------------------------------- numbers


def _numbers(
    ctx: Context, path: str, value: object, names: tuple[str, ...]
) -> dict[str, float] | None:
    if not isinstance(value, dict):
        expected = ", ".join(names)
        ctx.add(path, f"must be an object with {expected}; got {type_name(value)}")
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


def _number(ctx: Context, path: str, value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        ctx.add(path, f"must be a number; got {short(value)}")
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
