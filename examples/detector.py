"""Classical object detection for the example plugins (no SDK, no network).

``detect(image, classes=..., config=...)`` finds:

* ``"face"``: frontal faces, with scikit-image's LBP cascade
  (``skimage.feature.Cascade`` and the bundled
  ``lbp_frontal_face_cascade_filename()``);
* ``"coin"``: coins (bright discs with a sharp rim on a plain background), with
  the circular Hough transform (``skimage.transform.hough_circle`` over Canny
  edges). A circle is kept only when it looks like a coin: its rim is a
  near-complete edge circle (``min_votes``), its inside is evenly brighter than
  the ring around it, and that ring is plain (texture, flags, suits, stars and
  galaxies fail one of these). On scikit-image's pictures this finds the 24
  coins of ``coins.png`` and nothing on the others;
* ``"blob"``: bright round blobs of any texture on a darker background, with
  the Laplacian of Gaussian (``skimage.feature.blob_log``) — stars, cells.

Class names are matched case-insensitively; unknown names are ignored. Every
box is snapped outwards to whole pixels and clipped to the image, so
``0 <= x``, ``0 <= y``, ``x + width <= W``, ``y + height <= H`` and both sizes
are at least one pixel.

Config keys (all optional):

==================  ==========  ==============================================
key                 default     meaning
==================  ==========  ==============================================
``max_detections``  100         keep at most this many boxes (best first)
``min_radius``      14          coin: smallest coin radius, in pixels
``max_radius``      40          coin: largest coin radius, in pixels
``min_votes``       0.35        coin: share of the circle's rim that must be
                                an edge (0-1); lower finds fainter rims
``min_sigma``       10.0        blob: smallest Gaussian sigma, in pixels
``max_sigma``       30.0        blob: largest Gaussian sigma, in pixels
``num_sigma``       10          blob: number of sigmas tried in between
``threshold``       0.1         blob: minimum LoG response (0-1 image scale);
                                lower finds fainter blobs
``box_scale``       1.1         blob: box half-size = sigma * sqrt(2) * this
``scale_factor``    1.2         face: growth of the search window per scale
``step_ratio``      1.2         face: search step (1 = exhaustive, slower)
``min_size``        auto        face: smallest face side in pixels; auto is
                                10 % of the image's shorter side, at least 24
``max_size``        auto        face: largest face side; auto is the shorter
                                image side
``min_neighbors``   4           face: overlapping hits needed to keep a face
==================  ==========  ==============================================

For speed, blobs are searched on a copy of the image shrunk by ``min_sigma // 5``
(sigmas scaled to match); boxes are mapped back to full-size pixels.

Scores: a coin's score is the share of its rim found as edge; a blob's is its
scale-normalised LoG response, clipped to 0-1; the cascade gives no
confidence, so every face scores 1.0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from skimage import data as skdata
from skimage.color import rgb2gray
from skimage.feature import Cascade, blob_log, canny
from skimage.transform import downscale_local_mean, hough_circle, hough_circle_peaks
from skimage.util import img_as_float

__all__ = [
    "BLOB_CLASSES",
    "COIN_CLASSES",
    "DEFAULTS",
    "FACE_CLASSES",
    "SUPPORTED_CLASSES",
    "Detection",
    "detect",
]

FACE_CLASSES = frozenset({"face"})
COIN_CLASSES = frozenset({"coin"})
BLOB_CLASSES = frozenset({"blob"})
SUPPORTED_CLASSES = FACE_CLASSES | COIN_CLASSES | BLOB_CLASSES

#: Documented defaults of the config keys (``None`` = derived from the image).
DEFAULTS: dict[str, Any] = {
    "max_detections": 100,
    "min_radius": 14,
    "max_radius": 40,
    "min_votes": 0.35,
    "min_sigma": 10.0,
    "max_sigma": 30.0,
    "num_sigma": 10,
    "threshold": 0.1,
    "box_scale": 1.1,
    "scale_factor": 1.2,
    "step_ratio": 1.2,
    "min_size": None,
    "max_size": None,
    "min_neighbors": 4,
}


@dataclass(frozen=True)
class Detection:
    """One box, in pixels, origin at the top-left corner of the image."""

    model_class: str
    x: float
    y: float
    width: float
    height: float
    score: float


def detect(
    image: np.ndarray, *, classes: Iterable[str], config: Mapping[str, Any]
) -> list[Detection]:
    """Detect the requested ``classes`` in ``image``.

    ``image`` is a greyscale ``(H, W)`` or colour ``(H, W, 3|4)`` array, integer or
    float. ``classes`` are the plugin's class names (``face``, ``coin``, ``blob``);
    each detection carries the name as it was given. ``config`` holds the optional
    keys listed in the module docstring; a bad value raises ``ValueError``.
    Detections are returned best first (score, then top-to-bottom,
    left-to-right), at most ``max_detections`` of them.
    """
    config = dict(config or {})
    max_detections = _int(config, "max_detections", minimum=1)
    gray = _to_gray(image)
    height, width = gray.shape

    face_names, coin_names, blob_names = [], [], []
    for name in sorted(set(classes)):
        key = str(name).strip().lower()
        if key in FACE_CLASSES:
            face_names.append(name)
        elif key in COIN_CLASSES:
            coin_names.append(name)
        elif key in BLOB_CLASSES:
            blob_names.append(name)

    found: list[Detection] = []
    if face_names:
        for box in _faces(gray, config):
            found.extend(_boxed(name, box, width, height) for name in face_names)
    if coin_names:
        for box in _coins(gray, config):
            found.extend(_boxed(name, box, width, height) for name in coin_names)
    if blob_names:
        for box in _blobs(gray, config):
            found.extend(_boxed(name, box, width, height) for name in blob_names)

    kept = [d for d in found if d is not None]
    kept.sort(key=lambda d: (-d.score, d.y, d.x, d.model_class))
    return kept[:max_detections]


# --------------------------------------------------------------------------- faces


def _faces(
    gray: np.ndarray, config: Mapping[str, Any]
) -> list[tuple[float, float, float, float, float]]:
    height, width = gray.shape
    shorter = min(height, width)
    scale_factor = _float(config, "scale_factor", minimum=1.01)
    step_ratio = _float(config, "step_ratio", minimum=1.0)
    min_neighbors = _int(config, "min_neighbors", minimum=1)
    min_size = _size(config, "min_size", auto=max(24, round(0.1 * shorter)))
    max_size = _size(config, "max_size", auto=shorter)
    max_size = min(max_size, shorter)
    if min_size > max_size:
        return []

    # Loading the cascade takes a few milliseconds; a fresh one per call keeps
    # concurrent plugin jobs (one thread each) from sharing its state.
    cascade = Cascade(skdata.lbp_frontal_face_cascade_filename())
    hits = cascade.detect_multi_scale(
        img=gray.astype(np.float32),
        scale_factor=scale_factor,
        step_ratio=step_ratio,
        min_size=(min_size, min_size),
        max_size=(max_size, max_size),
        min_neighbor_number=min_neighbors,
    )
    return [
        (float(h["c"]), float(h["r"]), float(h["width"]), float(h["height"]), 1.0)
        for h in hits
    ]


# --------------------------------------------------------------------------- coins

# What separates a coin from any other circle of edges, measured on
# scikit-image's pictures (all 24 coins of coins.png pass; every circle found on
# astronaut, camera, chelsea, coffee, the Hubble field, ... fails one test):
# the disc is brighter than the ring around it by this much (0-1 grey scale),
_COIN_MIN_CONTRAST = 0.15
# evenly so (a galaxy or a lamp is bright in the middle and fades out),
_COIN_FLATNESS = (0.7, 1.4)
# and the ring around it is plain: its spread stays under this share of the
# contrast (coins: at most 0.39; a flag, fur, gravel, a lamp: 0.57 and up).
_COIN_MAX_RING_SPREAD = 0.5


def _coins(
    gray: np.ndarray, config: Mapping[str, Any]
) -> list[tuple[float, float, float, float, float]]:
    min_radius, max_radius = (
        int(v) for v in _span(config, "min_radius", "max_radius", _int, minimum=2)
    )
    min_votes = _float(config, "min_votes", minimum=0.0)
    edges = canny(gray, sigma=2.0)
    if not edges.any():
        return []
    radii = np.arange(min_radius, max_radius + 1, 2)
    votes, xs, ys, rs = hough_circle_peaks(
        hough_circle(edges, radii),
        radii,
        min_xdistance=min_radius,
        min_ydistance=min_radius,
        threshold=min_votes,
        total_num_peaks=200,
    )
    height, width = gray.shape
    boxes = []
    for vote, x, y, radius in zip(votes, xs, ys, rs, strict=True):
        # Only the window around the circle is looked at (whole-image masks
        # would cost a full pass per candidate).
        reach = int(math.ceil(1.5 * radius)) + 1
        top, left = max(0, y - reach), max(0, x - reach)
        window = gray[
            top : min(height, y + reach + 1), left : min(width, x + reach + 1)
        ]
        rows, cols = np.ogrid[: window.shape[0], : window.shape[1]]
        dist2 = (rows + top - y) ** 2 + (cols + left - x) ** 2
        core = window[dist2 <= (0.4 * radius) ** 2]
        rim = window[(dist2 >= (0.6 * radius) ** 2) & (dist2 <= (0.85 * radius) ** 2)]
        ring = window[(dist2 >= (1.15 * radius) ** 2) & (dist2 <= (1.5 * radius) ** 2)]
        if core.size == 0 or rim.size == 0 or ring.size < 10:
            continue
        background = float(np.median(ring))
        contrast = float(np.concatenate([core, rim]).mean()) - background
        core_lift = float(core.mean()) - background
        if contrast < _COIN_MIN_CONTRAST or core_lift <= 0:
            continue
        flatness = (float(rim.mean()) - background) / core_lift
        if not _COIN_FLATNESS[0] <= flatness <= _COIN_FLATNESS[1]:
            continue
        if float(ring.std()) >= _COIN_MAX_RING_SPREAD * contrast:
            continue
        boxes.append(
            (
                float(x) - radius,
                float(y) - radius,
                2.0 * radius + 1,
                2.0 * radius + 1,
                float(np.clip(vote, 0.0, 1.0)),
            )
        )
    return boxes


# --------------------------------------------------------------------------- blobs


def _blobs(
    gray: np.ndarray, config: Mapping[str, Any]
) -> list[tuple[float, float, float, float, float]]:
    min_sigma, max_sigma = _span(config, "min_sigma", "max_sigma", _float, minimum=0.5)
    num_sigma = _int(config, "num_sigma", minimum=1)
    threshold = _float(config, "threshold", minimum=0.0)
    box_scale = _float(config, "box_scale", minimum=0.1)

    # Blobs at least `min_sigma` wide survive shrinking the image, and the LoG
    # is much cheaper on the smaller copy: shrink by min_sigma // 5 (keeping at
    # least 16 px on the shorter side), then map the results back.
    factor = max(1, min(int(min_sigma // 5), min(gray.shape) // 16))
    small = downscale_local_mean(gray, (factor, factor)) if factor > 1 else gray
    blobs = blob_log(
        small,
        min_sigma=min_sigma / factor,
        max_sigma=max_sigma / factor,
        num_sigma=num_sigma,
        threshold=threshold,
        overlap=0.5,
    )
    responses: dict[float, np.ndarray] = {}
    boxes = []
    for row, col, sigma in blobs:
        sigma = float(sigma)
        if sigma not in responses:
            # Scale-normalised LoG; bright blobs give a positive response.
            responses[sigma] = -(sigma**2) * ndimage.gaussian_laplace(small, sigma)
        score = float(np.clip(responses[sigma][int(row), int(col)], 0.0, 1.0))
        # Centre of the `factor` x `factor` block, in full-size pixels.
        centre_x = (float(col) + 0.5) * factor - 0.5
        centre_y = (float(row) + 0.5) * factor - 0.5
        radius = sigma * factor * math.sqrt(2.0) * box_scale
        boxes.append(
            (centre_x - radius, centre_y - radius, 2 * radius, 2 * radius, score)
        )
    return boxes


# --------------------------------------------------------------------------- helpers


def _to_gray(image: np.ndarray) -> np.ndarray:
    """Return a float64 greyscale image in 0-1."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3 and array.shape[2] in (3, 4):
        array = rgb2gray(array[:, :, :3])
    elif array.ndim != 2:
        raise ValueError(f"expected an (H, W) or (H, W, 3|4) image, got {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError("the image is empty")
    if array.dtype == bool:
        array = array.astype(np.float64)
    return np.clip(img_as_float(array), 0.0, 1.0).astype(np.float64)


def _boxed(
    name: str, box: tuple[float, float, float, float, float], width: int, height: int
) -> Detection | None:
    """Snap ``box`` outwards to whole pixels and clip it to the image."""
    x, y, w, h, score = box
    if not all(math.isfinite(v) for v in box):
        return None
    left = max(0, math.floor(x))
    top = max(0, math.floor(y))
    right = min(width, math.ceil(x + w))
    bottom = min(height, math.ceil(y + h))
    if right - left < 1 or bottom - top < 1:
        return None
    return Detection(
        model_class=name,
        x=float(left),
        y=float(top),
        width=float(right - left),
        height=float(bottom - top),
        score=round(float(score), 4),
    )


def _number(config: Mapping[str, Any], key: str) -> float:
    value = config.get(key)
    if value is None:
        value = DEFAULTS[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"config {key!r} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"config {key!r} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"config {key!r} must be finite, got {value!r}")
    return number


def _float(config: Mapping[str, Any], key: str, *, minimum: float) -> float:
    number = _number(config, key)
    if number < minimum:
        raise ValueError(f"config {key!r} must be >= {minimum}, got {number}")
    return number


def _span(
    config: Mapping[str, Any],
    low_key: str,
    high_key: str,
    read: Callable[..., float],
    *,
    minimum: float,
) -> tuple[float, float]:
    """A (smallest, largest) pair of config values, both at least `minimum`."""
    low = read(config, low_key, minimum=minimum)
    high = read(config, high_key, minimum=minimum)
    if high < low:
        raise ValueError(
            f"config {high_key!r} ({high}) is smaller than {low_key!r} ({low})"
        )
    return low, high


def _size(config: Mapping[str, Any], key: str, *, auto: int) -> int:
    """A window size in pixels; a missing or null value means ``auto``."""
    if config.get(key) is None:
        return auto
    return _int(config, key, minimum=1)


def _int(config: Mapping[str, Any], key: str, *, minimum: int) -> int:
    number = _number(config, key)
    if number != int(number):
        raise ValueError(f"config {key!r} must be a whole number, got {number}")
    if number < minimum:
        raise ValueError(f"config {key!r} must be >= {minimum}, got {int(number)}")
    return int(number)
