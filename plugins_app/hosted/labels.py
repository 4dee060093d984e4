"""The label a hosted handler receives, in Kili's shape.

Kili handlers read `label["jsonResponse"][job]["annotations"]`, each annotation
with `mid`, `categories: [{"name"}]` and `children: {job: {"text"|"categories"}}`.
The hub's answers are Ango-shaped, so they are translated: all objects form the
job `JOB_0` (Kili's first job); a category's name is the ontology title of the
object's class; nested classifications are children named by their schemaId
(text answers as {"text"}, choices as {"categories"}); each top-level
classification is a job named by its schemaId. The Ango answer itself is in
`label["answer"]`.
"""

from __future__ import annotations

from typing import Any

from plugins_app.workspace.models import Task, TaskEvent

OBJECTS_JOB = "JOB_0"
GEOMETRY_KEYS = ("bounding-box", "polygon", "polyline", "point", "rotated-bounding-box")


def handler_label(task: Task, *, event: TaskEvent | None) -> dict[str, Any]:
    answer = task.answer or {}
    titles = _titles(task.project.ontology or {})
    author = event.actor.get_username() if event and event.actor else ""
    return {
        "id": f"{task.pk}-{event.pk}" if event else str(task.pk),
        "taskId": str(task.pk),
        "externalId": task.asset.external_id,
        "labelType": "REVIEW"
        if event and event.name == "label.reviewed"
        else "DEFAULT",
        "author": {"email": author, "id": author},
        "event": event.name if event else "",
        "eventData": event.data if event else {},
        "jsonResponse": kili_json_response(answer, titles),
        "answer": answer,
    }


def kili_json_response(answer: dict[str, Any], titles: dict[str, str]) -> dict:
    objects = [_annotation(o, titles) for o in answer.get("tools") or []]
    response: dict[str, Any] = {OBJECTS_JOB: {"annotations": objects}}
    for c in answer.get("classifications") or []:
        if isinstance(c, dict) and c.get("schemaId"):
            response[str(c["schemaId"])] = _child(c)
    return response


def _annotation(obj: Any, titles: dict[str, str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        return {}
    schema_id = str(obj.get("schemaId", ""))
    annotation: dict[str, Any] = {
        "mid": str(obj.get("objectId", "")),
        "categories": [{"name": titles.get(schema_id, schema_id), "confidence": 100}],
        "schemaId": schema_id,
        "children": {
            str(c["schemaId"]): _child(c)
            for c in obj.get("classifications") or []
            if isinstance(c, dict) and c.get("schemaId")
        },
    }
    for key in GEOMETRY_KEYS:
        if key in obj:
            annotation["type"] = key
            annotation[key] = obj[key]
    return annotation


def _child(classification: dict[str, Any]) -> dict[str, Any]:
    answer = classification.get("answer")
    if isinstance(answer, str):
        return {"text": answer, "categories": [{"name": answer}]}
    if isinstance(answer, list):
        return {"categories": [{"name": str(a)} for a in answer]}
    return {"categories": [{"name": str(answer)}]}


def _titles(ontology: dict[str, Any]) -> dict[str, str]:
    titles: dict[str, str] = {}
    for entry in list(ontology.get("tools", [])) + list(
        ontology.get("classifications", [])
    ):
        if isinstance(entry, dict) and entry.get("schemaId"):
            titles[str(entry["schemaId"])] = str(
                entry.get("title") or entry["schemaId"]
            )
    return titles
