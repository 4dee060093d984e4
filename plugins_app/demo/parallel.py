"""The demo's parallel-labeling project (as in Kili): its ontology split into a
*Vehicles* job (motorcycle and rocket boxes) and a *Scene* job (weather and
time of day), one demo labeler in each, a few pictures with vehicles in them.
Each labeler submits their job's part; when both are in, the hub raises
`task.jobs_complete` and the demo's Job merger (examples/merge_jobs_plugin.py)
writes the merged answer for review. seed.py registers that plugin."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model

from plugins_app.workspace.jobs import job_set_members, project_set_jobs
from plugins_app.workspace.models import Organization, Project

PROJECT_NAME = "Parallel labeling (Kili)"
# The pictures of the demo set (demo/images.py) with a vehicle in them, and one
# without (the Vehicles job then submits no box).
IMAGES = ("motorcycle-left", "motorcycle-right", "rocket", "camera")


def _box(schema_id: str, title: str, color: str) -> dict[str, Any]:
    return {
        "schemaId": schema_id,
        "tool": "bounding-box",
        "title": title,
        "color": color,
        "required": False,
        "classifications": [],
    }


def _radio(schema_id: str, title: str, values: tuple[str, ...]) -> dict[str, Any]:
    return {
        "schemaId": schema_id,
        "tool": "radio",
        "title": title,
        "required": False,
        "options": [{"value": v, "schemaId": f"{schema_id}-{v}"} for v in values],
        "classifications": [],
    }


ONTOLOGY = {
    "tools": [
        _box("motorcycle-box", "Motorcycle", "#e8590c"),
        _box("rocket-box", "Rocket", "#1971c2"),
    ],
    "classifications": [
        _radio("weather", "Weather", ("sunny", "cloudy", "indoors")),
        _radio("time-of-day", "Time of day", ("day", "night")),
    ],
    "relations": [],
}
# Job → (its ontology part, the demo login that labels it).
JOBS: dict[str, tuple[dict[str, list[str]], str]] = {
    "Vehicles": ({"tools": ["motorcycle-box", "rocket-box"]}, "vehicles"),
    "Scene": ({"classifications": ["weather", "time-of-day"]}, "scene"),
}


def parallel_project(org: Organization) -> Project:
    project, _ = Project.objects.update_or_create(
        organization=org,
        name=PROJECT_NAME,
        defaults={
            "ontology": ONTOLOGY,
            "description": "Two labeling jobs: log in as vehicles to box the "
            "motorcycles and rockets, as scene to answer weather and time of "
            "day; the Job merger plugin merges both parts for review.",
        },
    )
    return project


def parallel_jobs(project: Project) -> None:
    """The jobs and their members (the demo logins exist by now); idempotent:
    jobs keep their identity, members and submissions by name."""
    specs = [{"name": name, **part} for name, (part, _) in JOBS.items()]
    users = get_user_model().objects.in_bulk(
        [login for _, login in JOBS.values()], field_name="username"
    )
    for job in project_set_jobs(project, specs):
        job_set_members(job, [users[JOBS[job.name][1]]])
