"""Two demo tasks that a person labeled and a reviewer accepted, so that a fresh
hub's export has rows to write and the review canvas has human work to show.

They go through the same services as a person's clicks (submit, then accept),
so their history reads like real work and the answers pass the same checks.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from plugins_app.workspace.lifecycle import task_review, task_submit
from plugins_app.workspace.models import Project


def _box(object_id: str, schema_id: str, x: int, y: int, w: int, h: int) -> dict:
    return {
        "objectId": object_id,
        "schemaId": schema_id,
        "bounding-box": {"x": x, "y": y, "width": w, "height": h},
        "classifications": [],
    }


def _answer(*tools: dict[str, Any]) -> dict[str, Any]:
    return {
        "tools": list(tools),
        "classifications": [{"schemaId": "scene", "answer": "photo"}],
        "relations": [],
    }


# external id → the labeler's answer. Neither picture is one the README's walk-
# through runs the detector on: a plugin does not write over reviewed work.
REVIEWED_ANSWERS: dict[str, dict[str, Any]] = {
    # The six coins of the top-left quarter of coins.png.
    "coins-tile-1": _answer(
        *(
            _box(f"coin-{n}", "coin-box", *box)
            for n, box in enumerate(
                [
                    (23, 35, 45, 45),
                    (84, 39, 37, 37),
                    (135, 29, 45, 45),
                    (24, 104, 41, 41),
                    (85, 107, 37, 37),
                    (137, 109, 37, 37),
                ],
                start=1,
            )
        )
    ),
    # The cat's eyes as objects and its nose as a region.
    "chelsea": _answer(
        _box("eye-left", "object-box", 135, 84, 74, 64),
        _box("eye-right", "object-box", 292, 108, 54, 56),
        {
            "objectId": "nose",
            "schemaId": "region-poly",
            "polygon": [[232, 226], [292, 228], [268, 266], [252, 268]],
            "classifications": [],
        },
    ),
}


def seed_reviewed(project: Project) -> None:
    """Label (as the annotator) and accept (as the reviewer) each task of
    REVIEWED_ANSWERS that nobody has touched yet; idempotent."""
    users = get_user_model().objects.in_bulk(
        ["annotator", "reviewer"], field_name="username"
    )
    for external_id, answer in REVIEWED_ANSWERS.items():
        task = project.tasks.select_related("asset").get(asset__external_id=external_id)
        if task.stage != "Label" or task.submissions.exists():
            continue
        task = task_submit(task, user=users["annotator"], answer=answer)
        task_review(task, user=users["reviewer"], accept=True)
