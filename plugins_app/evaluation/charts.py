"""The per-class bar chart, laid out here and drawn by the template as plain
SVG rects (no chart library, nothing to load in the browser)."""

from __future__ import annotations

from typing import Any

# One colour per run, in the order chosen (readable on white, told apart by
# people with the commonest colour-vision deficiencies: Okabe-Ito).
COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00")
FIGURES = (
    ("precision", "P"),
    ("recall", "R"),
    ("f1", "F1"),
    ("mean_iou", "IoU"),
    ("ap", "AP"),
)
BAR, GAP, HEIGHT, TOP = 10, 14, 80, 4


def class_charts(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per class: its title and the bars (x, y, height, colour, value) of each
    figure for each run; a figure a run has none of (no object) is left out."""
    runs = result.get("runs", [])
    group = BAR * max(len(runs), 1) + GAP
    charts = []
    for cls in result.get("classes", []):
        bars: list[dict[str, Any]] = []
        labels: list[dict[str, Any]] = []
        for key, short in FIGURES:
            if key == "ap" and cls["tool"] != "bounding-box":
                continue
            left = GAP + len(labels) * group
            labels.append({"x": left + (group - GAP) / 2, "text": short})
            for n, run in enumerate(runs):
                value = run["classes"].get(cls["schemaId"], {}).get(key)
                if value is None:
                    continue
                height = round(value * HEIGHT, 1)
                bars.append(
                    {
                        "x": left + n * BAR,
                        "y": TOP + HEIGHT - height,
                        "height": height,
                        "colour": COLOURS[n % len(COLOURS)],
                        "title": f"{run['label']} {short} {value:.3f}",
                    }
                )
        charts.append(
            {
                "schemaId": cls["schemaId"],
                "title": cls["title"],
                "bars": bars,
                "labels": labels,
                "width": GAP + len(labels) * group,
                "height": TOP + HEIGHT + 16,
                "base": TOP + HEIGHT,
                "label_y": TOP + HEIGHT + 12,
            }
        )
    return charts


def run_colours(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {**run, "colour": COLOURS[n % len(COLOURS)]}
        for n, run in enumerate(result.get("runs", []))
    ]
