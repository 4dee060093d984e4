"""Tests of examples/consensus.py, the IoU merge (hub venv; no SDK needed)."""

from __future__ import annotations

import pathlib
import sys

import pytest

EXAMPLES_DIR = pathlib.Path(__file__).resolve().parents[1]
if str(EXAMPLES_DIR) not in sys.path:
    sys.path.insert(0, str(EXAMPLES_DIR))

from consensus import consensus, iou, merge_boxes  # noqa: E402


def box(x: float, y: float, w: float = 10, h: float = 10, schema: str = "face-box"):
    return {
        "schemaId": schema,
        "bounding-box": {"x": x, "y": y, "width": w, "height": h},
    }


def test_iou_of_identical_disjoint_and_half_overlapping_boxes() -> None:
    a = {"x": 0, "y": 0, "width": 10, "height": 10}
    assert iou(a, a) == 1.0
    assert iou(a, {"x": 20, "y": 0, "width": 10, "height": 10}) == 0.0
    # 5x10 overlap of two 10x10 boxes: 50 / 150.
    assert iou(a, {"x": 5, "y": 0, "width": 10, "height": 10}) == pytest.approx(1 / 3)
    assert iou(a, {"x": 0, "y": 0, "width": 0, "height": 0}) == 0.0


def test_overlapping_boxes_of_a_majority_become_one_mean_box() -> None:
    answers = [
        {"tools": [box(100, 100), box(300, 300)]},
        {"tools": [box(102, 100)]},
        {"tools": [box(99, 101), box(500, 500)]},
    ]

    merged = merge_boxes(answers)

    assert len(merged) == 1
    assert merged[0]["schemaId"] == "face-box"
    assert merged[0]["bounding-box"] == {
        "x": 100.33,
        "y": 100.33,
        "width": 10.0,
        "height": 10.0,
    }


def test_boxes_below_the_threshold_or_of_another_class_stay_apart() -> None:
    answers = [
        {"tools": [box(0, 0)]},
        {"tools": [box(6, 0), box(0, 0, schema="coin-box")]},
    ]

    assert merge_boxes(answers, min_votes=2) == []
    assert len(merge_boxes(answers, min_votes=1)) == 3
    assert len(merge_boxes(answers, iou_threshold=0.2, min_votes=2)) == 1


def test_one_labeler_counts_once_per_object() -> None:
    """Two boxes of one labeler over the same object are not two votes."""
    answers = [{"tools": [box(0, 0), box(1, 0)]}, {"tools": []}, {"tools": []}]

    assert merge_boxes(answers) == []


def test_consensus_keeps_majority_classifications_and_reads_objects_too() -> None:
    scene = {"schemaId": "scene", "answer": "scene-photo"}
    other = {"schemaId": "scene", "answer": "scene-document"}
    answers = [
        {"objects": [box(0, 0)], "classifications": [scene]},
        {"tools": [box(0, 0)], "classifications": [scene]},
        {"tools": [], "classifications": [other]},
    ]

    merged = consensus(answers)

    assert [o["objectId"] for o in merged["objects"]] == ["consensus-1"]
    assert merged["classifications"] == [scene]
