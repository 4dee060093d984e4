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
    # Only that face: nothing on the flag, the suit or the shuttle.
    assert len(faces) == 1, faces


def test_face_detection_accepts_greyscale() -> None:
    faces = detect(data.astronaut()[:, :, 0], classes={"face"}, config={})
    assert any(iou(box(d), ASTRONAUT_FACE) >= 0.5 for d in faces)


def test_finds_the_coins() -> None:
    image = data.coins()  # 24 coins
    coins = detect(image, classes={"coin"}, config={})
    assert 22 <= len(coins) <= 24
    assert all(d.model_class == "coin" for d in coins)
    assert_inside(coins, image)
    # Coins are bright on a dark background: so is the middle of every box.
    background = float(np.median(image))
    for d in coins:
        cx, cy = int(d.x + d.width / 2), int(d.y + d.height / 2)
        middle = image[cy - 4 : cy + 5, cx - 4 : cx + 5]
        assert float(middle.mean()) > background, d
    # One box per coin: no two boxes share most of their area.
    for i, a in enumerate(coins):
        assert all(iou(box(a), box(b)) < 0.3 for b in coins[i + 1 :])


@pytest.mark.parametrize(
    "picture",
    # The demo's pictures with round things that are not coins: a flag and a
    # suit, a cup, a camera lens, a logo, a cat's eyes, stars and galaxies,
    # textures, a motorcycle's lamp.
    [
        "astronaut",
        "coffee",
        "camera",
        "logo",
        "chelsea",
        "hubble_deep_field",
        "gravel",
        "grass",
        "rocket",
        "retina",
        "stereo_motorcycle",
    ],
)
def test_no_coins_where_there_are_none(picture: str) -> None:
    image = getattr(data, picture)()
    if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
        image = image[0]
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    assert detect(image, classes={"coin"}, config={}) == []
    if picture != "astronaut":  # and no face where there is none
        assert detect(image, classes={"face"}, config={}) == []


def test_blob_is_a_different_detector() -> None:
    # LoG blobs fire on any bright spot (a star, a cell), which is why the
    # coin class does not use it.
    blobs = detect(data.astronaut(), classes={"blob"}, config={})
    assert blobs and all(d.model_class == "blob" for d in blobs)


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
    # A coin whose rim runs past the bottom-right corner: its box is clipped.
    yy, xx = np.mgrid[:120, :150]
    plate = np.full((120, 150), 0.2)
    plate[(xx - 132) ** 2 + (yy - 102) ** 2 < 20**2] = 0.8
    (cut,) = detect(plate, classes={"coin"}, config={})
    assert (cut.x + cut.width, cut.y + cut.height) == (150, 120)


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
        {"min_radius": 1},
        {"min_radius": 30, "max_radius": 20},
        {"min_votes": -0.1},
    ],
)
def test_bad_config_raises_value_error(config: dict) -> None:
    with pytest.raises(ValueError):
        detect(data.coins(), classes={"coin", "face", "blob"}, config=config)


def test_rejects_images_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError):
        detect(np.zeros((4, 4, 2)), classes={"coin"}, config={})
    with pytest.raises(ValueError):
        detect(np.zeros(16), classes={"coin"}, config={})
