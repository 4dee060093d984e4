"""The greedy matching of metrics.match_asset over every asset of a run at
once: the same pairs, counts and IoUs, computed on flat arrays instead of
asset by asset. At 10,000 assets the per-asset version spent most of its time
in per-call overhead (numpy on 5×5 arrays, one library call per asset and
kind), not in the arithmetic (bench/compare.py).

- Candidate pairs are the predicted and reference shapes of one asset, class
  and kind (a box never matches a polygon), generated with numpy.
- Box IoU is computed in numpy with the formula of the library's `bbIou`
  (same operations in the same order: the same floats).
- Polygons are rasterised by the library (`mask.frPyObjects`) in one call on a
  grid that holds every point, and each candidate pair's IoU is the library's.
- The greedy pass (highest IoU first, each side used once, ties broken by
  the shapes' order in their answers) is plain Python over the candidates
  above the threshold only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from faster_coco_eval.core import mask as coco_mask

from plugins_app.evaluation.metrics import BOX, Counts, Shape


@dataclass
class Flat:
    """One kind's shapes of many assets: asset and class codes, and geometry
    (an n×4 array of boxes, or the polygons' flat point lists)."""

    asset: np.ndarray
    cls: np.ndarray
    coords: list[tuple[float, ...]]


def flatten(
    shapes: Sequence[Sequence[Shape]], classes: dict[str, int], kind: str
) -> Flat:
    """Shapes of one kind per asset (asset n = shapes[n]), of the given classes
    (others are left out: their figures are not reported)."""
    asset: list[int] = []
    cls: list[int] = []
    coords: list[tuple[float, ...]] = []
    for n, found in enumerate(shapes):
        for shape in found:
            code = classes.get(shape.schema_id)
            if shape.kind == kind and code is not None:
                asset.append(n)
                cls.append(code)
                coords.append(shape.coords)
    return Flat(np.array(asset, dtype=np.int64), np.array(cls, dtype=np.int64), coords)


def _pairs(pred: Flat, ref: Flat, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (predicted, reference) index pair of the same asset and class,
    in (predicted, reference) order."""
    pred_key = pred.asset * width + pred.cls
    ref_key = ref.asset * width + ref.cls
    order = np.argsort(ref_key, kind="stable")
    sorted_keys = ref_key[order]
    low = np.searchsorted(sorted_keys, pred_key, side="left")
    high = np.searchsorted(sorted_keys, pred_key, side="right")
    counts = high - low
    total = int(counts.sum())
    p = np.repeat(np.arange(len(pred_key)), counts)
    starts = np.repeat(low, counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    return p, order[starts + offsets]


def _box_ious(pred: Flat, ref: Flat, p: np.ndarray, r: np.ndarray) -> np.ndarray:
    d = np.asarray(pred.coords, dtype=np.float64).reshape(-1, 4)[p]
    g = np.asarray(ref.coords, dtype=np.float64).reshape(-1, 4)[r]
    w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
    h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    inter = np.where((w > 0) & (h > 0), w * h, 0.0)
    union = d[:, 2] * d[:, 3] + g[:, 2] * g[:, 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / union, 0.0)


def _polygon_ious(pred: Flat, ref: Flat, p: np.ndarray, r: np.ndarray) -> np.ndarray:
    if not len(p):
        return np.zeros(0)
    shapes = [*pred.coords, *ref.coords]
    # One grid holding every point (the hub refused points outside their
    # asset): the same pixels as each asset's own grid, one library call.
    width = math.floor(max(max(s[0::2]) for s in shapes)) + 2
    height = math.floor(max(max(s[1::2]) for s in shapes)) + 2
    rles = coco_mask.frPyObjects([list(s) for s in shapes], height, width)
    offset = len(pred.coords)
    return np.array(
        [
            float(np.asarray(coco_mask.iou([rles[a]], [rles[offset + b]], [0])).item())
            for a, b in zip(p.tolist(), r.tolist(), strict=True)
        ]
    )


@dataclass
class RunCounts:
    """A run's matching: per class code, and per asset (over every class)."""

    classes: list[Counts]
    assets: list[Counts]


def match_run(
    predicted: Sequence[Sequence[Shape]],
    reference: Sequence[Sequence[Shape]],
    classes: dict[str, int],
    threshold: float,
) -> RunCounts:
    """metrics.match_asset for every asset (predicted[n] against
    reference[n]), summed per class and per asset; classes not in `classes`
    are left out of both (as the comparison leaves them out)."""
    assets, width = len(predicted), max(len(classes), 1)
    tp = np.zeros((assets, width), dtype=np.int64)
    fp = np.zeros((assets, width), dtype=np.int64)
    fn = np.zeros((assets, width), dtype=np.int64)
    iou_sum = np.zeros((assets, width))
    for kind in (BOX, "polygon"):
        pred = flatten(predicted, classes, kind)
        ref = flatten(reference, classes, kind)
        np.add.at(fp, (pred.asset, pred.cls), 1)
        np.add.at(fn, (ref.asset, ref.cls), 1)
        if not len(pred.asset) or not len(ref.asset):
            continue
        p, r = _pairs(pred, ref, width)
        ious = (_box_ious if kind == BOX else _polygon_ious)(pred, ref, p, r)
        keep = ious >= threshold
        p, r, ious = p[keep], r[keep], ious[keep]
        # Highest IoU first; among equals the earlier predicted, then reference
        # shape (the per-asset version's order: indices follow the answers').
        order = np.lexsort((r, p, -ious))
        used_p: set[int] = set()
        used_r: set[int] = set()
        matched: list[int] = []
        for at, a, b in zip(
            order.tolist(), p[order].tolist(), r[order].tolist(), strict=True
        ):
            if a in used_p or b in used_r:
                continue
            used_p.add(a)
            used_r.add(b)
            matched.append(at)
        hits = np.array(matched, dtype=np.int64)
        where = (pred.asset[p[hits]], pred.cls[p[hits]])
        np.add.at(tp, where, 1)
        np.add.at(iou_sum, where, ious[hits])
    fp -= tp
    fn -= tp

    def counts(axis: int) -> list[Counts]:
        return [
            Counts(int(a), int(b), int(c), float(d))
            for a, b, c, d in zip(
                tp.sum(axis=axis).tolist(),
                fp.sum(axis=axis).tolist(),
                fn.sum(axis=axis).tolist(),
                iou_sum.sum(axis=axis).tolist(),
                strict=True,
            )
        ]

    return RunCounts(classes=counts(0), assets=counts(1))
