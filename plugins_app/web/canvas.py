"""What the review canvas of the task and asset pages shows: the answer's
objects with their label, colour, source (a person, or a plugin and its run)
and confidence; the ontology's tools and classifications; the Model plugins it
can run on the asset. The canvas itself is static/js/canvas.js.

Where each object came from is read from the task's history, not stored per
object: every event that replaced the answer keeps the answer it replaced
(`previousAnswer`), so the answer after an event is the next one's
`previousAnswer` (or the task's answer for the last). An object is credited to
the first event after which an identical object (same JSON) is in the answer:
a plugin's box a person submitted unchanged stays the plugin's; a box a person
moved is the person's."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.urls import reverse

from plugins_app.plugins.models import Plugin, PluginType, Preset
from plugins_app.plugins.presets import suggested_mapping
from plugins_app.runs.models import Run
from plugins_app.runs.selectors import MAX_DRAWN_SHAPES
from plugins_app.workspace import events
from plugins_app.workspace.models import AnswerWrite, LabelingJob, Task, TaskEvent

# The geometries the canvas edits; others are listed, kept as they are.
EDITABLE = ("bounding-box", "polygon")
# Classification kinds the canvas shows as form controls (answers.py checks).
FORM_KINDS = ("radio", "checkbox", "single-dropdown", "multi-dropdown", "text")


@dataclass(frozen=True)
class Source:
    kind: str  # "person", "plugin" or "unknown"
    label: str
    run: int | None = None

    def json(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "run": self.run}


UNKNOWN = Source("unknown", "stored before the history began")


def object_key(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def object_sources(task: Task, history: list[TaskEvent]) -> dict[str, Source]:
    """Object JSON (object_key) → who first put exactly that object in the
    task's answer, from the history (see the module docstring)."""
    changes = [e for e in history if isinstance(e.data.get("previousAnswer"), dict)]
    sources: dict[str, Source] = {}
    for index, event in enumerate(changes):
        following = changes[index + 1] if index + 1 < len(changes) else None
        after = following.data["previousAnswer"] if following else task.answer
        source = _event_source(event)
        if source is None:
            continue
        for obj in (after or {}).get("tools", []) or []:
            sources.setdefault(object_key(obj), source)
    return sources


def _event_source(event: TaskEvent) -> Source | None:
    """Who wrote the answer an event left; None for events that only put an
    earlier answer back (undo, send-back), which credit nobody new."""
    if event.name == events.ANSWER_WRITTEN:
        run = event.data.get("run")
        name = _versioned(event.data.get("plugin", ""), event.data.get("pluginVersion"))
        return Source(
            "plugin", f"{name} (run #{run})", run if isinstance(run, int) else None
        )
    if event.name == events.LABEL_SUBMITTED:
        who = event.actor.get_username() if event.actor else event.actor_label
        return Source("person", who or "a person")
    return None


def _versioned(plugin: str, version: object) -> str:
    """A plugin's name with the version that wrote an object, when known."""
    return f"{plugin} version {version}" if version else plugin


def _confidence(obj: dict[str, Any]) -> float | None:
    """A plugin's confidence when the object carries one (top level or in its
    metadata); Ango's answer format has no fixed key, these are the usual."""
    for holder in (
        obj,
        obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {},
    ):
        for key in ("confidence", "score"):
            value = holder.get(key) if isinstance(holder, dict) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
    return None


def canvas_objects(task: Task, history: list[TaskEvent]) -> list[dict[str, Any]]:
    """The answer's objects as the canvas draws them, each with its source."""
    sources = object_sources(task, history)
    fallback = UNKNOWN
    if task.prelabel_run_id is not None and task.prelabel_run is not None:
        run = task.prelabel_run
        name = _versioned(run.plugin.name, run.plugin_version)
        fallback = Source("plugin", f"{name} (run #{run.pk})", run.pk)
    objects = []
    for index, obj in enumerate((task.answer or {}).get("tools", []) or []):
        if not isinstance(obj, dict):
            continue
        objects.append(
            {
                "index": index,
                "object": obj,
                "source": sources.get(object_key(obj), fallback).json(),
                "confidence": _confidence(obj),
                # Past the cap the browser lists an object without drawing it;
                # it is still submitted back as it is.
                "drawn": index < MAX_DRAWN_SHAPES,
                # Another labeling job's object: shown greyed, not editable.
                "locked": False,
            }
        )
    return objects


def ontology_tools(ontology: dict[str, Any]) -> list[dict[str, Any]]:
    """The ontology's tools as the canvas needs them, each with the form
    fields of its nested classifications (answered per object)."""
    return [
        {
            "schemaId": t["schemaId"],
            "title": t.get("title") or t["schemaId"],
            "tool": t.get("tool", ""),
            "color": t.get("color") or "#ff0055",
            "editable": t.get("tool") in EDITABLE,
            # False for another labeling job's tool (canvas_for_job).
            "inJob": True,
            "classifications": classification_fields(t.get("classifications")),
            # Every nested schemaId, answered by a control or not: what a
            # relabelled object may keep.
            "classificationIds": [
                c.get("schemaId")
                for c in t.get("classifications") or []
                if isinstance(c, dict)
            ],
        }
        for t in ontology.get("tools", [])
        if isinstance(t, dict) and isinstance(t.get("schemaId"), str)
    ]


def classification_fields(definitions: object) -> list[dict[str, Any]]:
    """Classification definitions (top level, or nested in a tool) as the form
    controls canvas.js builds: radio, checkbox, single and multi dropdown, text.
    Other kinds (boolean, tree dropdown, …) get no control and are kept as
    answered."""
    fields = []
    for definition in definitions if isinstance(definitions, list) else []:
        if not isinstance(definition, dict):
            continue
        kind = definition.get("tool")
        schema_id = definition.get("schemaId")
        if kind not in FORM_KINDS or not isinstance(schema_id, str):
            continue
        fields.append(
            {
                "schemaId": schema_id,
                "title": definition.get("title") or schema_id,
                "kind": kind,
                "options": [
                    o["value"]
                    for o in definition.get("options", []) or []
                    if isinstance(o, dict) and isinstance(o.get("value"), str)
                ],
            }
        )
    return fields


def model_plugins(task: Task) -> QuerySet[Plugin]:
    """The project's Model plugins the canvas menu offers."""
    return task.project.plugins.filter(
        organization_id=task.project.organization_id, type=PluginType.MODEL
    ).order_by("name")


@dataclass(frozen=True)
class PluginMenu:
    """One Model plugin in the canvas's Run menu: this project's presets (its
    saved mappings), and each class with the label the Run dialog suggests
    (the one-time mapping form's initial choice)."""

    plugin: Plugin
    presets: list[Preset]
    classes: list[tuple[str, str]]


def plugin_menus(task: Task) -> list[PluginMenu]:
    project = task.project
    plugins = model_plugins(task).prefetch_related(
        Prefetch("presets", queryset=Preset.objects.filter(project=project))
    )
    menus = []
    for plugin in plugins:
        suggested = suggested_mapping(plugin, project)
        classes = [(c, suggested.get(c, "")) for c in plugin.class_names]
        menus.append(PluginMenu(plugin, list(plugin.presets.all()), classes))
    return menus


def canvas_state(task: Task) -> dict[str, Any]:
    """Everything canvas.js needs, as JSON (embedded in the page and served
    again when a run from the editor has answered)."""
    history = list(task.events.select_related("actor").order_by("id"))
    project = task.project
    asset = task.asset
    objects = canvas_objects(task, history)
    return {
        "task": task.pk,
        "stage": task.stage,
        "image": reverse("web:asset-image", args=[project.pk, asset.pk]),
        "width": asset.width,
        "height": asset.height,
        "tools": ontology_tools(project.ontology or {}),
        "classifications": classification_fields(
            (project.ontology or {}).get("classifications")
        ),
        "objects": objects,
        "drawnCount": sum(1 for o in objects if o["drawn"]),
        "answer": task.answer or {},
        "stateUrl": reverse("web:canvas-state", args=[project.pk, task.pk]),
        "runUrl": reverse("web:canvas-run", args=[project.pk, task.pk]),
        "job": None,  # the labeling job the canvas labels (canvas_for_job)
    }


def canvas_for_job(state: dict[str, Any], job: LabelingJob | None) -> dict[str, Any]:
    """The canvas state as a labeler of `job` sees it (parallel labeling):
    the job's tools are the ones to draw with, other jobs' objects are locked
    (shown greyed, submitted back as they are; the server keeps only the job's
    part anyway), and only the job's classifications are form controls."""
    if job is None:
        return state
    tools = set(job.tools or [])
    classifications = set(job.classifications or [])
    return {
        **state,
        "job": {"id": job.pk, "name": job.name},
        # Read again (after a run, a submit) as the same job.
        "stateUrl": f"{state['stateUrl']}?job={job.pk}",
        "tools": [{**t, "inJob": t["schemaId"] in tools} for t in state["tools"]],
        "objects": [
            {**o, "locked": o["object"].get("schemaId") not in tools}
            for o in state["objects"]
        ],
        "classifications": [
            c for c in state["classifications"] if c["schemaId"] in classifications
        ],
    }


def run_outcome(run: Run, task: Task) -> dict[str, Any]:
    """A run from the editor, as the canvas reports it: done or not, and what
    it did to this task (wrote, or kept a person's answer and why)."""
    write = (
        AnswerWrite.objects.filter(run=run, task=task).order_by("-id").first()
        if run.is_finished
        else None
    )
    return {
        "id": run.pk,
        "url": reverse("web:run-detail", args=[run.pk]),
        "status": run.status,
        "statusLabel": run.get_status_display(),
        "finished": run.is_finished,
        "error": run.error or "",
        "outcome": write.outcome if write else "",
        "reason": write.reason if write else "",
    }


def canvas_context(task: Task) -> dict[str, Any]:
    """The template context of the canvas partial (projects/canvas.html)."""
    state = canvas_state(task)
    return {
        "canvas": state,
        "canvas_plugins": plugin_menus(task),
        "canvas_entries": [
            e for e in task.project.ontology_entries() if e.get("schemaId")
        ],
    }
