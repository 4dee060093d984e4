"""One compared asset as the comparison canvas draws it
(static/evaluation/comparison-canvas.js on the vendored Annotorious): the
reviewed answer and what each compared run wrote there, one layer and colour
each, every box and polygon with how the comparison matched it (TP with its
IoU and partner, FP, FN), and the previous and next asset in the per-asset
list's order (most disagreement first)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from plugins_app.evaluation import charts, metrics
from plugins_app.evaluation.models import Comparison
from plugins_app.evaluation.services import reviewed_answers
from plugins_app.runs.models import Run
from plugins_app.runs.run_answers import run_answers
from plugins_app.workspace.models import Task

# The reviewed answer under the runs' colours (charts.COLOURS).
REVIEWED_COLOUR = "#212529"


def _drawable(answer: Any) -> list[tuple[dict[str, Any], metrics.Shape]]:
    """The answer's boxes and polygons with their shape (others are not
    compared, so not drawn here)."""
    tools = answer.get("tools") if isinstance(answer, dict) else None
    found = []
    for obj in tools if isinstance(tools, list) else ():
        shapes = metrics.shapes_of({"tools": [obj]})
        if shapes:
            found.append((obj, shapes[0]))
    return found


def _geometry(shape: metrics.Shape) -> dict[str, Any]:
    c = shape.coords
    if shape.kind == metrics.BOX:
        return {"x": c[0], "y": c[1], "w": c[2], "h": c[3]}
    return {"points": [[c[i], c[i + 1]] for i in range(0, len(c), 2)]}


def _object(
    key: str, n: int, obj: dict[str, Any], shape: metrics.Shape, titles: dict
) -> dict[str, Any]:
    return {
        "id": f"{key}-{n}",
        "objectId": obj.get("objectId", ""),
        "schemaId": shape.schema_id,
        "title": titles.get(shape.schema_id, shape.schema_id),
        "kind": shape.kind,
        "geometry": _geometry(shape),
        "matches": [],
    }


def asset_state(comparison: Comparison, task: Task) -> dict[str, Any]:
    """Everything the comparison canvas needs, as JSON."""
    project = comparison.project
    titles = {
        t["schemaId"]: t.get("title") or t["schemaId"]
        for t in (project.ontology or {}).get("tools", [])
        if isinstance(t, dict) and isinstance(t.get("schemaId"), str)
    }
    reviewed = _drawable(reviewed_answers(project, [task.pk]).get(task.pk))
    reference = [
        _object("reviewed", n, obj, shape, titles)
        for n, (obj, shape) in enumerate(reviewed)
    ]
    layers = [
        {
            "key": "reviewed",
            "label": "Reviewed answer",
            "colour": REVIEWED_COLOUR,
            "objects": reference,
        }
    ]
    runs = Run.objects.select_related("plugin").in_bulk(comparison.run_ids)
    for n, run_id in enumerate(comparison.run_ids):
        run = runs.get(run_id)
        written = run_answers(run, [task.pk]).get(task.pk) if run else None
        if run is None or written is None:
            continue
        key = f"run{n}"
        label = f"#{run.pk} {run.plugin.name}" + (
            f" {run.plugin_version}" if run.plugin_version else ""
        )
        drawn = _drawable(written[0])
        objects = [
            _object(key, k, obj, shape, titles) for k, (obj, shape) in enumerate(drawn)
        ]
        pairs = metrics.asset_pairs(
            [s for _, s in drawn], [s for _, s in reviewed], comparison.iou_threshold
        )
        partner = {p: (r, iou) for p, r, iou in pairs}
        matched = {r: (p, iou) for p, r, iou in pairs}
        for k, item in enumerate(objects):
            r, iou = partner.get(k, (None, None))
            item["matches"].append(
                {"layer": "reviewed", "status": "TP" if r is not None else "FP"}
                | ({"iou": iou, "with": reference[r]["id"]} if r is not None else {})
            )
        for r, item in enumerate(reference):
            p, iou = matched.get(r, (None, None))
            item["matches"].append(
                {"layer": key, "status": "TP" if p is not None else "FN"}
                | ({"iou": iou, "with": objects[p]["id"]} if p is not None else {})
            )
        layers.append(
            {
                "key": key,
                "label": label,
                "colour": charts.COLOURS[n % len(charts.COLOURS)],
                "objects": objects,
            }
        )
    asset = task.asset
    return {
        "task": task.pk,
        "asset": asset.external_id,
        "image": reverse("web:asset-image", args=[project.pk, asset.pk]),
        "width": asset.width,
        "height": asset.height,
        "threshold": comparison.iou_threshold,
        "layers": layers,
        **_neighbours(comparison, task.pk),
    }


def _neighbours(comparison: Comparison, task_id: int) -> dict[str, Any]:
    """The previous and next asset of the per-asset list (most disagreement
    first); none when this one is not listed."""
    order = [row["task"] for row in (comparison.result or {}).get("assets", [])]
    at = order.index(task_id) if task_id in order else -1

    def url(n: int) -> str | None:
        if at < 0 or not 0 <= n < len(order):
            return None
        return reverse("evaluation:comparison-asset", args=[comparison.pk, order[n]])

    return {"previous": url(at - 1), "next": url(at + 1), "position": at + 1}
