"""Tests of examples/plugin_common.py (runs in the hub venv; no SDK needed)."""

from __future__ import annotations

import base64
import io
import pathlib
import sys

import numpy as np
import pytest
from PIL import Image

EXAMPLES_DIR = pathlib.Path(__file__).resolve().parents[1]
if str(EXAMPLES_DIR) not in sys.path:
    sys.path.insert(0, str(EXAMPLES_DIR))

from detector import Detection  # noqa: E402
from plugin_common import (  # noqa: E402
    class_mapping,
    fetch_image,
    parse_config,
    split_supported,
    to_objects,
)


@pytest.mark.parametrize("raw", [None, "", "  ", "null", "{}"])
def test_empty_configs_mean_no_options(raw: str | None) -> None:
    assert parse_config(raw) == {}


def test_config_is_decoded_from_a_json_string() -> None:
    assert parse_config('{"max_detections": 3, "fail": true}') == {
        "max_detections": 3,
        "fail": True,
    }


@pytest.mark.parametrize("raw", ["{", "[1, 2]", "3", 5])
def test_bad_configs_raise_value_error(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_config(raw)


def test_class_mapping() -> None:
    assert class_mapping(None) == {}
    assert class_mapping([]) == {}
    mapping = class_mapping(
        [
            {"schemaId": "s1", "modelClass": "face"},
            {"schemaId": "s2", "modelClass": "coin"},
            {"schemaId": "s3", "modelClass": "coin"},
            {"schemaId": "s4", "modelClass": "car"},
            {"schemaId": None, "modelClass": "blob"},
        ]
    )
    assert mapping == {"face": ["s1"], "coin": ["s2", "s3"], "car": ["s4"]}
    assert split_supported(mapping) == (["coin", "face"], ["car"])


def test_objects_use_mapped_schema_ids_and_skip_unmapped_classes() -> None:
    detections = [
        Detection("face", 10.04, 20.0, 30.06, 40.0, 1.0),
        Detection("blob", 1.0, 2.0, 3.0, 4.0, 0.5),
    ]
    objects = to_objects(detections, {"face": ["s1"]})
    assert objects == [
        {
            "schemaId": "s1",
            "bounding-box": {"x": 10.0, "y": 20.0, "width": 30.1, "height": 40.0},
        }
    ]


def test_fetch_image_returns_rgb_pixels() -> None:
    buffer = io.BytesIO()
    Image.new("L", (7, 5), color=200).save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    pixels = fetch_image(url)
    assert pixels.shape == (5, 7, 3) and pixels.dtype == np.uint8
    assert (pixels == 200).all()


def test_fetch_image_needs_a_url() -> None:
    with pytest.raises(ValueError):
        fetch_image("")
