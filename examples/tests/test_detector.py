"""Tests of examples/detector.py (runs in the hub venv; no SDK needed).

Run from the repository root:
``.venv/bin/python -m pytest examples/tests -q -p no:django -p no:cacheprovider``
"""

from __future__ import annotations

import math
import pathlib
import sys

import numpy as np
import pytest
from skimage import data

EXAMPLES_DIR = pathlib.Path(__file__).resolve().parents[1]
if str(EXAMPLES_DIR) not in sys.path:
    sys.path.insert(0, str(EXAMPLES_DIR))

from detector import DEFAULTS, Detection, detect  # noqa: E402

# The astronaut's face (forehead to chin, ear to ear) in skimage.data.astronaut(),
# measured on the 512 x 512 image: x 175-265, y 65-165.
ASTRONAUT_FACE = (175.0, 65.0, 90.0, 100.0)


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax, ay, aw, ah = a[:4]
    bx, by, bw, bh = b[:4]
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / (aw * ah + bw * bh - inter)


def box(d: Detection) -> tuple[float, float, float, float]:
    return (d.x, d.y, d.width, d.height)


def assert_inside(detections: list[Detection], image: np.ndarray) -> None:
    height, width = image.shape[:2]
    for d in detections:
        assert d.width > 0 and d.height > 0, d
        assert d.x >= 0 and d.y >= 0, d
        assert d.x + d.width <= width and d.y + d.height <= height, d
        assert np.isfinite([d.x, d.y, d.width, d.height, d.score]).all(), d
        assert 0.0 <= d.score <= 1.0, d


def test_finds_the_astronauts_face() -> None:
    image = data.astronaut()
    faces = detect(image, classes={"face"}, config={})
    assert faces, "no face found on the astronaut image"
    assert all(d.model_class == "face" for d in faces)
    best = max(faces, key=lambda d: iou(box(d), ASTRONAUT_FACE))
    assert iou(box(best), ASTRONAUT_FACE) >= 0.5, best
    centre_x, centre_y = best.x + best.width / 2, best.y + best.height / 2
    assert 190 <= centre_x <= 250 and 90 <= centre_y <= 140, best
    assert_inside(faces, image)


def test_face_detection_accepts_greyscale() -> None:
    faces = detect(data.astronaut()[:, :, 0], classes={"face"}, config={})
    assert any(iou(box(d), ASTRONAUT_FACE) >= 0.5 for d in faces)


def test_finds_most_coins() -> None:
    image = data.coins()  # 24 coins
    coins = detect(image, classes={"coin"}, config={})
    assert 15 <= len(coins) <= 30
    assert all(d.model_class == "coin" for d in coins)
    assert_inside(coins, image)
    # Coins are bright on a dark background: the boxes' centres must be too.
    background = float(np.median(image))
    for d in coins:
        cx, cy = int(d.x + d.width / 2), int(d.y + d.height / 2)
        assert image[cy, cx] > background, d


def test_coin_and_blob_run_the_same_detector() -> None:
    image = data.coins()
    both = detect(image, classes={"coin", "blob"}, config={})
    coins = [box(d) for d in both if d.model_class == "coin"]
    blobs = [box(d) for d in both if d.model_class == "blob"]
    assert coins and sorted(coins) == sorted(blobs)


def test_boxes_stay_inside_the_image() -> None:
    rng = np.random.default_rng(7)
    images = [
        data.astronaut(),
        data.coins(),
        data.coins()[5:120, 10:150],  # coins cut by the borders
        (rng.random((64, 80, 3)) * 255).astype(np.uint8),
        rng.random((20, 30)),
        np.zeros((1, 1)),
    ]
    for image in images:
        found = detect(
            image,
            classes={"face", "coin", "blob"},
            config={"max_detections": 1000, "min_sigma": 3, "threshold": 0.02},
        )
        assert_inside(found, image)
    crop = images[2]
    cut = detect(crop, classes={"coin"}, config={})
    assert any(
        d.x + d.width == crop.shape[1] or d.y + d.height == crop.shape[0] for d in cut
    ), "expected coins clipped by the right or bottom border"


def test_blob_in_a_corner_is_clipped() -> None:
    yy, xx = np.mgrid[:100, :120]
    image = ((xx - 5) ** 2 + (yy - 8) ** 2 < 18**2).astype(float)
    (found,) = detect(image, classes={"blob"}, config={})
    assert (found.x, found.y) == (0.0, 0.0)
    assert 15 <= found.width <= 40 and 15 <= found.height <= 40


@pytest.mark.parametrize("limit", [1, 5, 12])
def test_max_detections_is_honoured(limit: int) -> None:
    everything = detect(data.coins(), classes={"coin"}, config={})
    limited = detect(data.coins(), classes={"coin"}, config={"max_detections": limit})
    assert len(everything) > limit
    assert len(limited) == limit
    assert limited == everything[:limit]  # best first
    scores = [d.score for d in limited]
    assert scores == sorted(scores, reverse=True)


def test_max_detections_applies_across_classes() -> None:
    found = detect(
        data.astronaut(), classes={"face", "blob"}, config={"max_detections": 3}
    )
    assert len(found) == 3
    assert found[0].model_class == "face"  # faces score 1.0


def test_class_names_keep_their_spelling_and_unknown_ones_are_ignored() -> None:
    found = detect(data.coins(), classes={"Coin", "car"}, config={})
    assert found and {d.model_class for d in found} == {"Coin"}
    assert detect(data.coins(), classes={"car"}, config={}) == []
    assert detect(data.coins(), classes=set(), config={}) == []


def test_config_changes_blob_detection() -> None:
    default = detect(data.coins(), classes={"blob"}, config={})
    strict = detect(data.coins(), classes={"blob"}, config={"threshold": 0.3})
    assert 0 < len(strict) < len(default)
    small = detect(data.coins(), classes={"blob"}, config={"max_sigma": 14})
    limit = 2 * 14 * math.sqrt(2) * DEFAULTS["box_scale"] + 2  # + rounding out
    assert small and all(d.width <= limit for d in small)


def test_config_accepts_numeric_strings_and_nulls() -> None:
    found = detect(
        data.coins(),
        classes={"coin"},
        config={"max_detections": "4", "threshold": "0.1", "min_size": None},
    )
    assert len(found) == 4


@pytest.mark.parametrize(
    "config",
    [
        {"max_detections": 0},
        {"max_detections": 2.5},
        {"max_detections": True},
        {"threshold": "high"},
        {"min_sigma": -1},
        {"min_sigma": 20, "max_sigma": 10},
        {"scale_factor": 1.0},
        {"min_size": 0},
        {"max_sigma": float("nan")},
    ],
)
def test_bad_config_raises_value_error(config: dict) -> None:
    with pytest.raises(ValueError):
        detect(data.coins(), classes={"coin", "face"}, config=config)


def test_rejects_images_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError):
        detect(np.zeros((4, 4, 2)), classes={"coin"}, config={})
    with pytest.raises(ValueError):
        detect(np.zeros(16), classes={"coin"}, config={})
