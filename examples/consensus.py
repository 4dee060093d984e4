"""Consensus of N labelers' boxes (no SDK, no hub import: unit-tested alone).

Each labeler's label is an Ango answer (``tools`` — or ``objects`` — with
``bounding-box`` objects). Boxes of the same ``schemaId`` from different labelers
that overlap by at least ``iou_threshold`` (intersection over union) are one
object; an object kept by at least ``min_votes`` labelers (default: a strict
majority) becomes one box, the mean of its members. Classifications given
identically by ``min_votes`` labelers are kept. The result is one pre-label.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Box = dict[str, float]  # {"x", "y", "width", "height"}
BOX_KEYS = ("x", "y", "width", "height")


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    left, top = max(a["x"], b["x"]), max(a["y"], b["y"])
    right = min(a["x"] + a["width"], b["x"] + b["width"])
    bottom = min(a["y"] + a["height"], b["y"] + b["height"])
    inter = max(0.0, right - left) * max(0.0, bottom - top)
    union = a["width"] * a["height"] + b["width"] * b["height"] - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Cluster:
    schema_id: str
    members: dict[int, Box] = field(default_factory=dict)  # labeler index -> box

    def mean(self) -> Box:
        boxes = list(self.members.values())
        return {k: round(sum(b[k] for b in boxes) / len(boxes), 2) for k in BOX_KEYS}


def _boxes(answer: dict[str, Any]) -> list[tuple[str, Box]]:
    objects = answer.get("tools") or answer.get("objects") or []
    return [
        (str(o.get("schemaId")), {k: float(o["bounding-box"][k]) for k in BOX_KEYS})
        for o in objects
        if isinstance(o, dict) and isinstance(o.get("bounding-box"), dict)
    ]


def merge_boxes(
    answers: Sequence[dict[str, Any]],
    *,
    iou_threshold: float = 0.5,
    min_votes: int | None = None,
) -> list[dict[str, Any]]:
    """One box per object enough labelers agree on, as Ango objects."""
    needed = min_votes if min_votes is not None else len(answers) // 2 + 1
    clusters: list[_Cluster] = []
    for labeler, answer in enumerate(answers):
        for schema_id, box in _boxes(answer):
            best, best_iou = None, iou_threshold
            for cluster in clusters:
                if cluster.schema_id != schema_id or labeler in cluster.members:
                    continue
                overlap = iou(cluster.mean(), box)
                if overlap >= best_iou:
                    best, best_iou = cluster, overlap
            if best is None:
                best = _Cluster(schema_id)
                clusters.append(best)
            best.members[labeler] = box
    kept = [c for c in clusters if len(c.members) >= needed]
    return [
        {
            "schemaId": c.schema_id,
            "objectId": f"consensus-{index}",
            "bounding-box": c.mean(),
        }
        for index, c in enumerate(kept, start=1)
    ]


def merge_classifications(
    answers: Sequence[dict[str, Any]], *, min_votes: int | None = None
) -> list[dict[str, Any]]:
    """Classifications given identically by enough labelers."""
    needed = min_votes if min_votes is not None else len(answers) // 2 + 1
    votes: Counter[str] = Counter()
    for answer in answers:
        seen = {
            json.dumps(c, sort_keys=True) for c in answer.get("classifications") or []
        }
        votes.update(seen)
    return [json.loads(text) for text, n in votes.items() if n >= needed]


def consensus(
    answers: Sequence[dict[str, Any]],
    *,
    iou_threshold: float = 0.5,
    min_votes: int | None = None,
) -> dict[str, Any]:
    """The merged pre-label (``objects`` and ``classifications``)."""
    return {
        "objects": merge_boxes(
            answers, iou_threshold=iou_threshold, min_votes=min_votes
        ),
        "classifications": merge_classifications(answers, min_votes=min_votes),
        "relations": [],
    }
