"""Demo images for a fresh hub, made from the pictures bundled with scikit-image.

Only files that ship inside ``site-packages/skimage/data/`` are used, so nothing is
downloaded. Every picture becomes an RGB PNG (greyscale is expanded to three
channels, transparency is flattened onto white), pictures larger than
``MAX_SIDE`` are scaled down, and the larger pictures are also cut into quadrant
tiles so that a demo project has enough assets to page through.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import skimage.data
from PIL import Image
from skimage import io

__all__ = ["BATCHES", "MAX_SIDE", "DemoImage", "generate_demo_images", "write_png"]

#: Longest side, in pixels, of any written image.
MAX_SIDE = 1024

#: Batch names; images are assigned to them alternately, in order.
BATCHES = ("Batch A", "Batch B")

#: (external id, file in skimage's data directory), in output order.
_SOURCES: tuple[tuple[str, str], ...] = (
    ("astronaut", "astronaut.png"),
    ("coins", "coins.png"),
    ("coffee", "coffee.png"),
    ("chelsea", "chelsea.png"),
    ("camera", "camera.png"),
    ("rocket", "rocket.jpg"),
    ("hubble-deep-field", "hubble_deep_field.jpg"),
    ("immunohistochemistry", "ihc.png"),
    ("page", "page.png"),
    ("text", "text.png"),
    ("moon", "moon.png"),
    ("horse", "horse.png"),
    ("clock-motion", "clock_motion.png"),
    ("brick", "brick.png"),
    ("grass", "grass.png"),
    ("gravel", "gravel.png"),
    ("retina", "retina.jpg"),
    ("cell", "cell.png"),
    ("motorcycle-left", "motorcycle_left.png"),
    ("motorcycle-right", "motorcycle_right.png"),
    ("logo", "logo.png"),
    ("microaneurysms", "microaneurysms.png"),
    ("color", "color.png"),
    ("phantom", "phantom.png"),
)

#: External ids of the pictures that are also cut into four quadrant tiles
#: (numbered 1-4: top-left, top-right, bottom-left, bottom-right).
_TILED: tuple[str, ...] = ("coins", "hubble-deep-field")


@dataclass(frozen=True)
class DemoImage:
    """One written demo image."""

    external_id: str
    filename: str  # file name written into dest_dir, e.g. "astronaut.png"
    width: int
    height: int
    batch: str  # "Batch A" or "Batch B"


def _data_dir() -> pathlib.Path:
    return pathlib.Path(skimage.data.__file__).resolve().parent


def _to_rgb(pixels: np.ndarray) -> np.ndarray:
    """Return an ``(H, W, 3)`` uint8 array for a greyscale, RGB or RGBA image."""
    array = np.asarray(pixels)
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating):
            array = np.clip(array, 0.0, 1.0) * 255.0
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        return np.repeat(array[:, :, np.newaxis], 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 4:
        rgb = array[:, :, :3].astype(np.float64)
        alpha = array[:, :, 3:4].astype(np.float64) / 255.0
        flattened = rgb * alpha + 255.0 * (1.0 - alpha)  # onto a white background
        return np.clip(np.rint(flattened), 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 3:
        return np.ascontiguousarray(array)
    raise ValueError(f"unsupported image shape {array.shape}")


def _fit(image: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
    """Scale ``image`` down so that its longest side is at most ``max_side``."""
    width, height = image.size
    longest = max(width, height)
    if longest <= max_side:
        return image
    scale = max_side / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _quadrants(image: Image.Image) -> list[Image.Image]:
    width, height = image.size
    half_w, half_h = width // 2, height // 2
    boxes = [
        (0, 0, half_w, half_h),
        (half_w, 0, width, half_h),
        (0, half_h, half_w, height),
        (half_w, half_h, width, height),
    ]
    return [image.crop(box) for box in boxes]


def _pictures() -> Iterator[tuple[str, Image.Image]]:
    """Yield ``(external_id, RGB image)`` in a fixed order."""
    data_dir = _data_dir()
    tiles: list[tuple[str, Image.Image]] = []
    for external_id, source in _SOURCES:
        rgb = _to_rgb(io.imread(data_dir / source))
        picture = Image.fromarray(rgb)
        yield external_id, _fit(picture)
        if external_id in _TILED:
            for number, tile in enumerate(_quadrants(picture), start=1):
                tiles.append((f"{external_id}-tile-{number}", _fit(tile)))
    yield from tiles


def write_png(image: Image.Image, path: pathlib.Path) -> None:
    """Write ``image`` to ``path`` atomically, replacing any existing file."""
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        image.save(temporary, format="PNG")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def generate_demo_images(dest_dir: pathlib.Path) -> list[DemoImage]:
    """Write the demo PNGs into ``dest_dir`` and describe them.

    Idempotent: existing files of the same name are overwritten, and the result
    (files, order, sizes and batches) is the same on every call.
    """
    dest_dir = pathlib.Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    images: list[DemoImage] = []
    for index, (external_id, picture) in enumerate(_pictures()):
        filename = f"{external_id}.png"
        write_png(picture, dest_dir / filename)
        images.append(
            DemoImage(
                external_id=external_id,
                filename=filename,
                width=picture.width,
                height=picture.height,
                batch=BATCHES[index % len(BATCHES)],
            )
        )
    return images
