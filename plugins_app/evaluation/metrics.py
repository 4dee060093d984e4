"""How close a run's objects are to the reviewed ones: pure functions over
answers (dicts in the Ango answer shape), no Django, so the figures can be
checked by hand and against the library on the same data.

- P/R/F1 and mean IoU per class: within each asset and class, predictions and
  reviewed objects are matched greedily by IoU (highest first, each used once,
  a pair counts when its IoU reaches the threshold). IoU is faster-coco-eval's
  (`mask.iou`: boxes as x/y/width/height, polygons rasterised to RLE, on
  the pixel grid of the asset), the same numbers its COCOeval uses.
- mAP@[.5:.95] for boxes: faster-coco-eval's COCOeval over every asset at once.
- Correction cost: what a person changed after the run, by objectId.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from faster_coco_eval import COCO, COCOeval_faster
from faster_coco_eval.core import mask as coco_mask

from plugins_app.answers.context import GEOMETRY_KEYS

BOX = "bounding-box"
POLYGON = "polygon"
MEASURED = (BOX, POLYGON)


class Shape(NamedTuple):
    """One box or polygon of an answer: class, kind, numbers, confidence (a
    named tuple: a comparison makes one per object of every asset, and a
    frozen dataclass costs several times more to build)."""

    schema_id: str
    kind: str  # BOX or POLYGON
    coords: tuple[float, ...]  # x, y, w, h for a box; x1, y1, x2, y2... for a polygon
    score: float = 1.0


def shapes_of(answer: Any) -> list[Shape]:
    """The boxes and polygons of an answer; other tools, and objects whose
    numbers are unusable, are left out (the hub's checks refused those anyway)."""
    tools = answer.get("tools") if isinstance(answer, dict) else None
    found: list[Shape] = []
    for obj in tools if isinstance(tools, list) else ():
        if not isinstance(obj, dict) or not isinstance(obj.get("schemaId"), str):
            continue
        coords = _coords(obj)
        if coords is not None:
            found.append(Shape(obj["schemaId"], coords[0], coords[1], _score(obj)))
    return found


def _coords(obj: dict[str, Any]) -> tuple[str, tuple[float, ...]] | None:
    try:
        if isinstance(box := obj.get(BOX), dict):
            values = (
                float(box["x"]),
                float(box["y"]),
                float(box["width"]),
                float(box["height"]),
            )
            return (BOX, values) if values[2] > 0 and values[3] > 0 else None
        if isinstance(points := obj.get(POLYGON), list) and len(points) >= 3:
            return POLYGON, tuple(float(v) for point in points for v in point[:2])
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    return None


def _score(obj: dict[str, Any]) -> float:
    # Ango answers carry no score; a plugin may add one. Without, every object
    # ranks alike in the mAP (COCOeval then keeps their order).
    for key in ("confidence", "score"):
        value = obj.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return 1.0


def iou_matrix(predicted: Sequence[Shape], reference: Sequence[Shape]) -> np.ndarray:
    """IoU of every predicted shape (rows) with every reference one (columns),
    all of one kind."""
    if not predicted or not reference:
        return np.zeros((len(predicted), len(reference)))
    crowd = [0] * len(reference)
    if predicted[0].kind == BOX:
        boxes = [
            np.array([s.coords for s in group]) for group in (predicted, reference)
        ]
        return np.asarray(coco_mask.iou(boxes[0], boxes[1], crowd)).reshape(
            len(predicted), len(reference)
        )
    # One conversion for both sides (the library's per-call cost dominates at
    # a few polygons an asset), on a grid holding every point: the hub refused
    # points outside the asset already, so nothing needs clipping to it.
    shapes = [*predicted, *reference]
    width = math.floor(max(max(s.coords[0::2]) for s in shapes)) + 2
    height = math.floor(max(max(s.coords[1::2]) for s in shapes)) + 2
    rles = coco_mask.frPyObjects([list(s.coords) for s in shapes], height, width)
    return np.asarray(
        coco_mask.iou(rles[: len(predicted)], rles[len(predicted) :], crowd)
    ).reshape(len(predicted), len(reference))


def greedy_match(ious: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """Pairs (predicted, reference, IoU), highest IoU first, each side used
    once, IoU ≥ threshold."""
    # Plain Python over the candidate pairs: an asset has a few objects, where
    # numpy's per-call cost is more than the work.
    candidates = sorted(
        (
            (-iou, p, r)
            for p, row in enumerate(ious.tolist())
            for r, iou in enumerate(row)
            if iou >= threshold
        ),
    )
    used_p: set[int] = set()
    used_r: set[int] = set()
    pairs: list[tuple[int, int, float]] = []
    for negative, p, r in candidates:
        if p in used_p or r in used_r:
            continue
        used_p.add(p)
        used_r.add(r)
        pairs.append((p, r, -negative))
    return pairs


@dataclass
class Counts:
    """Matching outcome of one class (or one asset) summed up."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    iou_sum: float = 0.0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.iou_sum += other.iou_sum

    def figures(self) -> dict[str, Any]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else None
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else None
        f1 = (
            2 * precision * recall / (precision + recall)
            if precision is not None and recall is not None and precision + recall
            else (0.0 if precision is not None and recall is not None else None)
        )
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            # Over matched pairs only: how tight the boxes that count are.
            "mean_iou": self.iou_sum / self.tp if self.tp else None,
        }


def asset_pairs(
    predicted: Sequence[Shape], reference: Sequence[Shape], threshold: float
) -> list[tuple[int, int, float]]:
    """The greedy matching of one asset: (predicted index, reference index,
    IoU) of every matched pair. A box never matches a polygon, nor a shape one
    of another class."""
    pairs: list[tuple[int, int, float]] = []
    for kind in MEASURED:
        pred_at = [n for n, s in enumerate(predicted) if s.kind == kind]
        ref_at = [n for n, s in enumerate(reference) if s.kind == kind]
        if not pred_at or not ref_at:
            continue
        preds = [predicted[n] for n in pred_at]
        refs = [reference[n] for n in ref_at]
        # One IoU call for every class of this kind (the library's per-call
        # cost dominates at a few objects an asset); pairs of different
        # classes are zeroed, so the greedy pass never matches across classes
        # and equals one pass per class (the threshold is above 0).
        ious = iou_matrix(preds, refs)
        if len({s.schema_id for s in (*preds, *refs)}) > 1:
            same = np.array([p.schema_id for p in preds])[:, None] == np.array(
                [r.schema_id for r in refs]
            )
            ious = np.where(same, ious, 0.0)
        pairs += [
            (pred_at[p], ref_at[r], iou) for p, r, iou in greedy_match(ious, threshold)
        ]
    return pairs


def match_asset(
    predicted: Sequence[Shape], reference: Sequence[Shape], threshold: float
) -> dict[str, Counts]:
    """Per class (schemaId) of this asset, the greedy matching's counts."""
    result: dict[str, Counts] = {}
    for shape in predicted:
        result.setdefault(shape.schema_id, Counts()).fp += 1
    for shape in reference:
        result.setdefault(shape.schema_id, Counts()).fn += 1
    for p, _r, iou in asset_pairs(predicted, reference, threshold):
        counts = result[predicted[p].schema_id]
        counts.tp += 1
        counts.fp -= 1
        counts.fn -= 1
        counts.iou_sum += iou
    return result


@dataclass
class Correction:
    """What a person changed between the run's answer and the reviewed one,
    by objectId: objects added, deleted, moved (same id, other geometry) and
    relabelled (same id, other class)."""

    added: int = 0
    deleted: int = 0
    moved: int = 0
    relabelled: int = 0
    kept: int = 0

    def add(self, other: Correction) -> None:
        for name in ("added", "deleted", "moved", "relabelled", "kept"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def correction(run_answer: Any, reviewed: Any) -> Correction:
    return indexed_correction(by_object_id(run_answer), by_object_id(reviewed))


def indexed_correction(
    ran: dict[str, dict[str, Any]], final: dict[str, dict[str, Any]]
) -> Correction:
    """correction() over answers indexed by by_object_id (the reviewed one is
    indexed once for every run)."""
    result = Correction(
        added=len(final.keys() - ran.keys()), deleted=len(ran.keys() - final.keys())
    )
    for object_id in ran.keys() & final.keys():
        before, after = ran[object_id], final[object_id]
        if _geometry(before) != _geometry(after):
            result.moved += 1
        elif before.get("schemaId") != after.get("schemaId"):
            result.relabelled += 1
        else:
            result.kept += 1
    return result


def by_object_id(answer: Any) -> dict[str, dict[str, Any]]:
    tools = answer.get("tools") if isinstance(answer, dict) else None
    return {
        str(obj["objectId"]): obj
        for obj in (tools if isinstance(tools, list) else ())
        if isinstance(obj, dict) and obj.get("objectId") not in (None, "")
    }


def _geometry(obj: dict[str, Any]) -> list[Any]:
    return list(map(obj.get, GEOMETRY_KEYS))  # called per object of every asset


@dataclass
class MapInput:
    """The boxes of every compared asset, gathered for one COCOeval."""

    images: list[dict[str, Any]] = field(default_factory=list)
    truth: list[dict[str, Any]] = field(default_factory=list)
    detections: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        image_id: int,
        size: tuple[int, int],
        predicted: Sequence[Shape],
        reference: Sequence[Shape],
        categories: dict[str, int],
    ) -> None:
        self.images.append({"id": image_id, "width": size[0], "height": size[1]})
        for shape in reference:
            if shape.kind == BOX and shape.schema_id in categories:
                self.truth.append(
                    {
                        "id": len(self.truth) + 1,
                        "image_id": image_id,
                        "category_id": categories[shape.schema_id],
                        "bbox": list(shape.coords),
                        "area": shape.coords[2] * shape.coords[3],
                        "iscrowd": 0,
                    }
                )
        for shape in predicted:
            if shape.kind == BOX and shape.schema_id in categories:
                self.detections.append(
                    {
                        "image_id": image_id,
                        "category_id": categories[shape.schema_id],
                        "bbox": list(shape.coords),
                        "score": shape.score,
                    }
                )


def box_map(data: MapInput, categories: dict[str, int]) -> dict[str, Any]:
    """COCO mAP@[.5:.95] of the boxes (all areas, 100 detections per asset),
    overall and per class; None where a class has no reviewed box."""
    empty: dict[str, Any] = {"map": None, "classes": dict.fromkeys(categories)}
    if not data.truth or not categories:
        return empty
    truth = COCO()
    truth.dataset = {
        "images": data.images,
        "annotations": data.truth,
        "categories": [{"id": i, "name": s} for s, i in categories.items()],
    }
    truth.createIndex()
    if not data.detections:
        return {"map": 0.0, "classes": dict.fromkeys(categories, 0.0)}
    found = truth.loadRes(data.detections)
    evaluation = COCOeval_faster(truth, found, "bbox", print_function=_quiet)
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    # precision[T, R, K, A, M]: thresholds, recall points, classes, areas
    # (0 = all), max detections (last = 100).
    precision = np.asarray(evaluation.eval["precision"])
    order = list(evaluation.params.catIds)
    per_class: dict[str, float | None] = {}
    for schema_id, category in categories.items():
        values = precision[:, :, order.index(category), 0, -1]
        values = values[values > -1]
        per_class[schema_id] = float(values.mean()) if values.size else None
    overall = float(evaluation.stats[0])
    return {"map": overall if overall >= 0 else None, "classes": per_class}


def _quiet(*_args: Any) -> None:
    """COCOeval prints its summary table; the hub keeps the numbers instead."""
