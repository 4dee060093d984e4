"""The comparison's figures on a case worked out by hand (3 assets, 2 classes:
a box class and a polygon class), and the same data through faster-coco-eval's
own COCOeval, which must agree with our greedy matching and with the hand."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from faster_coco_eval import COCO, COCOeval_faster

from plugins_app.evaluation import matching, metrics

SIZE = (100, 100)


def box(
    object_id: str, x: float, y: float, w: float, h: float, score: float = 1.0
) -> dict:
    return {
        "objectId": object_id,
        "schemaId": "face-box",
        "bounding-box": {"x": x, "y": y, "width": w, "height": h},
        "confidence": score,
    }


def poly(object_id: str, x0: int, y0: int, x1: int, y1: int) -> dict:
    return {
        "objectId": object_id,
        "schemaId": "region-poly",
        "polygon": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]],
    }


# Per asset: (what the run wrote, what the reviewer accepted).
CASE: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (  # 1: the face exact (IoU 1), the region half as tall (200 / 400 = 0.5)
        {"tools": [box("f1", 0, 0, 10, 10, 0.9), poly("r1", 20, 20, 40, 30)]},
        {"tools": [box("f1", 0, 0, 10, 10), poly("r1", 20, 20, 40, 40)]},
    ),
    (  # 2: the face shifted by half (50 / 150 = 1/3 < 0.5) and a face that is not there
        {"tools": [box("f2", 5, 0, 10, 10, 0.8), box("f3", 50, 50, 10, 10, 0.7)]},
        {"tools": [box("f2", 0, 0, 10, 10)]},
    ),
    (  # 3: the face a bit short (330 / 400 = 0.825), the region missed
        {"tools": [box("f4", 10, 10, 20, 16.5, 0.6)]},
        {"tools": [box("f4", 10, 10, 20, 20), poly("r4", 0, 0, 10, 10)]},
    ),
]


def totals(threshold: float = 0.5) -> dict[str, metrics.Counts]:
    summed: dict[str, metrics.Counts] = {}
    for ran, reviewed in CASE:
        counts = metrics.match_asset(
            metrics.shapes_of(ran), metrics.shapes_of(reviewed), threshold
        )
        for schema_id, value in counts.items():
            summed.setdefault(schema_id, metrics.Counts()).add(value)
    return summed


def test_precision_recall_f1_and_iou_match_the_hand_worked_case() -> None:
    figures = {k: v.figures() for k, v in totals().items()}
    face, region = figures["face-box"], figures["region-poly"]
    # Face: TP = asset 1 and 3; FP = the shifted and the extra box of asset 2;
    # FN = asset 2's face.
    assert (face["tp"], face["fp"], face["fn"]) == (2, 2, 1)
    assert face["precision"] == pytest.approx(2 / 4)
    assert face["recall"] == pytest.approx(2 / 3)
    assert face["f1"] == pytest.approx(4 / 7)  # 2·(1/2)(2/3) / (1/2 + 2/3)
    assert face["mean_iou"] == pytest.approx((1.0 + 0.825) / 2)
    # Region: TP = asset 1 (IoU exactly 0.5 counts at 0.5); FN = asset 3.
    assert (region["tp"], region["fp"], region["fn"]) == (1, 0, 1)
    assert region["precision"] == 1.0
    assert region["recall"] == pytest.approx(1 / 2)
    assert region["f1"] == pytest.approx(2 / 3)
    assert region["mean_iou"] == pytest.approx(0.5)


def test_a_stricter_threshold_drops_the_loose_matches() -> None:
    figures = {k: v.figures() for k, v in totals(0.9).items()}
    assert (figures["face-box"]["tp"], figures["face-box"]["fp"]) == (1, 3)
    assert figures["region-poly"]["tp"] == 0


def test_the_correction_cost_counts_by_object_id() -> None:
    cost = metrics.Correction()
    for ran, reviewed in CASE:
        cost.add(metrics.correction(ran, reviewed))
    # f1 kept; r1, f2, f4 moved; f3 deleted by the reviewer; r4 added.
    assert vars(cost) == {
        "added": 1,
        "deleted": 1,
        "moved": 3,
        "relabelled": 0,
        "kept": 1,
    }


def box_map_of_case() -> dict[str, Any]:
    data = metrics.MapInput()
    for image_id, (ran, reviewed) in enumerate(CASE, 1):
        data.add(
            image_id,
            SIZE,
            metrics.shapes_of(ran),
            metrics.shapes_of(reviewed),
            {"face-box": 1},
        )
    return metrics.box_map(data, {"face-box": 1})


def test_box_map_matches_the_hand_worked_case() -> None:
    # Ranked by confidence: TP (0.9), FP, FP, TP (0.6). 101-point interpolated
    # AP: at IoU .50-.80 (7 thresholds) recall points 0-.33 have precision 1,
    # .34-.66 have 0.5: 50.5/101; at .85-.95 (3) only the first face matches:
    # 34/101. Mean over the 10 thresholds: (7·50.5 + 3·34) / 1010.
    expected = (7 * 50.5 + 3 * 34) / 1010
    result = box_map_of_case()
    assert result["map"] == pytest.approx(expected)
    assert result["classes"]["face-box"] == pytest.approx(expected)


def test_our_matching_agrees_with_the_librarys_cocoeval() -> None:
    """The same boxes straight into faster-coco-eval (no hub code): its recall
    at IoU .5 and at .9 equals ours, its IoUs equal ours, its mAP equals box_map."""
    truth = COCO()
    images, annotations, detections = [], [], []
    for image_id, (ran, reviewed) in enumerate(CASE, 1):
        images.append({"id": image_id, "width": 100, "height": 100})
        for obj in reviewed["tools"]:
            if "bounding-box" in obj:
                b = obj["bounding-box"]
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": 1,
                        "bbox": [b["x"], b["y"], b["width"], b["height"]],
                        "area": b["width"] * b["height"],
                        "iscrowd": 0,
                    }
                )
        for obj in ran["tools"]:
            if "bounding-box" in obj:
                b = obj["bounding-box"]
                detections.append(
                    {
                        "image_id": image_id,
                        "category_id": 1,
                        "bbox": [b["x"], b["y"], b["width"], b["height"]],
                        "score": obj["confidence"],
                    }
                )
    truth.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "face"}],
    }
    truth.createIndex()
    evaluation = COCOeval_faster(
        truth, truth.loadRes(detections), "bbox", print_function=lambda *a: None
    )
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    recall = np.asarray(evaluation.eval["recall"])  # [T, K, A, M]
    thresholds = list(np.round(evaluation.params.iouThrs, 2))
    for threshold in (0.5, 0.9):
        ours = totals(threshold)["face-box"].figures()["recall"]
        assert recall[thresholds.index(threshold), 0, 0, -1] == pytest.approx(ours)
    assert evaluation.stats[0] == pytest.approx(box_map_of_case()["map"])
    # The IoUs it computed for asset 3 are the ones our matching used.
    library = np.asarray(evaluation.ious[(3, 1)])
    ran, reviewed = CASE[2]
    faces = [s for s in metrics.shapes_of(reviewed) if s.kind == metrics.BOX]
    ours_iou = metrics.iou_matrix(metrics.shapes_of(ran), faces)
    assert np.allclose(library, ours_iou) and library[0, 0] == pytest.approx(0.825)


def test_answers_without_usable_shapes_are_left_out() -> None:
    odd = {
        "tools": [
            {"schemaId": "face-box", "bounding-box": {"x": 1}},  # no size
            {
                "schemaId": "face-box",
                "bounding-box": {"x": 1, "y": 1, "width": 0, "height": 3},
            },
            {"schemaId": "region-poly", "polygon": [[1, 1], [2, 2]]},  # two points
            {"schemaId": "pt", "point": [1, 2]},
            "not an object",
        ]
    }
    assert metrics.shapes_of(odd) == []
    assert metrics.shapes_of(None) == [] and metrics.shapes_of({"tools": 3}) == []


def test_greedy_matching_takes_the_best_pairs_first() -> None:
    """Two faces side by side: taking pairs in any other order than highest
    IoU first would pair each prediction with the wrong face (IoU 1/3)."""
    reviewed = {"tools": [box("a", 0, 0, 10, 10), box("b", 6, 0, 10, 10)]}
    ran = {"tools": [box("p1", 5, 0, 10, 10), box("p2", 1, 0, 10, 10)]}
    counts = metrics.match_asset(
        metrics.shapes_of(ran), metrics.shapes_of(reviewed), 0.3
    )["face-box"]
    assert counts.tp == 2
    assert counts.iou_sum / counts.tp == pytest.approx(90 / 110)  # both 9 px of 11


def random_answer(rng: random.Random, n: int) -> dict[str, Any]:
    """Boxes and polygons of 3 classes on a 60 px grid, on integer points
    (so IoUs tie often), one class the comparison does not measure."""
    tools: list[dict[str, Any]] = []
    for k in range(rng.randint(0, 6)):
        schema_id = rng.choice(["face-box", "coin-box", "other-box"])
        x, y = rng.randint(0, 40), rng.randint(0, 40)
        if rng.random() < 0.7:
            tools.append(box(f"{n}-{k}", x, y, rng.randint(2, 20), rng.randint(2, 20)))
            tools[-1]["schemaId"] = schema_id
        else:
            tools.append(poly(f"{n}-{k}", x, y, x + rng.randint(2, 18), y + 9))
    return {"tools": tools}


def shifted(obj: dict[str, Any], by: int) -> dict[str, Any]:
    if "polygon" in obj:
        return {**obj, "polygon": [[x + by, y] for x, y in obj["polygon"]]}
    b = obj["bounding-box"]
    return {**obj, "bounding-box": {**b, "x": max(0, b["x"] + by)}}


@pytest.mark.parametrize("threshold", [0.05, 0.3, 0.5, 0.75])
def test_the_whole_run_matching_equals_the_per_asset_one(threshold: float) -> None:
    """matching.match_run (what the comparison runs, all assets at once) gives
    exactly metrics.match_asset's counts, per class and per asset."""
    rng = random.Random(threshold)
    assets = []
    for n in range(300):
        reviewed = random_answer(rng, n)
        # The run: most reviewed objects moved a few px (twice, at times: two
        # predictions tie for one object), some missed, a few extra.
        tools = [
            shifted(obj, rng.randint(-3, 3))
            for obj in reviewed["tools"]
            for _ in range(rng.choice([0, 1, 1, 1, 2]))
        ]
        tools += random_answer(rng, n)["tools"][:2]
        assets.append(({"tools": tools}, reviewed))
    classes = {"face-box": 0, "coin-box": 1, "region-poly": 2}
    predicted = [metrics.shapes_of(ran) for ran, _ in assets]
    reference = [metrics.shapes_of(reviewed) for _, reviewed in assets]

    found = matching.match_run(predicted, reference, classes, threshold)

    per_class = {s: metrics.Counts() for s in classes}
    for n, (ran, reviewed) in enumerate(zip(predicted, reference, strict=True)):
        asset = metrics.Counts()
        for schema_id, counts in metrics.match_asset(ran, reviewed, threshold).items():
            if schema_id in classes:
                per_class[schema_id].add(counts)
                asset.add(counts)
        got = found.assets[n]
        assert (got.tp, got.fp, got.fn) == (asset.tp, asset.fp, asset.fn), n
        assert got.iou_sum == pytest.approx(asset.iou_sum, abs=1e-9)
    for schema_id, code in classes.items():
        got, want = found.classes[code], per_class[schema_id]
        assert (got.tp, got.fp, got.fn) == (want.tp, want.fp, want.fn), schema_id
        assert got.iou_sum == pytest.approx(want.iou_sum)
    assert sum(c.tp for c in found.classes) > 50  # the case matches a lot


def test_the_whole_run_matching_takes_the_best_pairs_first() -> None:
    reviewed = {"tools": [box("a", 0, 0, 10, 10), box("b", 6, 0, 10, 10)]}
    ran = {"tools": [box("p1", 5, 0, 10, 10), box("p2", 1, 0, 10, 10)]}
    found = matching.match_run(
        [metrics.shapes_of(ran)], [metrics.shapes_of(reviewed)], {"face-box": 0}, 0.3
    )
    assert found.classes[0].tp == 2
    assert found.classes[0].iou_sum / 2 == pytest.approx(90 / 110)
