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

from plugins_app.workspace.events import LABEL_REVIEWED
from plugins_app.workspace.models import Task, TaskEvent

OBJECTS_JOB = "JOB_0"
GEOMETRY_KEYS = ("bounding-box", "polygon", "polyline", "point", "rotated-bounding-box")


def handler_label(task: Task, *, event: TaskEvent | None) -> dict[str, Any]:
    """The label the event is about: the answer recorded with the event (what
    the labeler submitted), else the task's current answer."""
    data = event.data if event else {}
    answer = data.get("answer") if isinstance(data.get("answer"), dict) else None
    author = event.actor.get_username() if event and event.actor else ""
    return _label(
        task,
        answer if answer is not None else task.answer or {},
        label_id=f"{task.pk}-{event.pk}" if event else str(task.pk),
        author=author,
        label_type="REVIEW" if event and event.name == LABEL_REVIEWED else "DEFAULT",
        extra={"event": event.name if event else "", "eventData": data},
    )


def asset_labels(task: Task) -> list[dict[str, Any]]:
    """Every active label of the task's asset: each labeler's submission under
    consensus; the current answer when nobody has submitted."""
    submissions = list(task.submissions.filter(active=True).select_related("user"))
    if not submissions:
        return [handler_label(task, event=None)]
    return [
        _label(
            task,
            s.answer or {},
            label_id=f"{task.pk}-s{s.pk}",
            author=s.user.get_username(),
            label_type="DEFAULT",
            extra={"submittedAt": s.submitted_at.isoformat()},
        )
        for s in submissions
    ]


def _label(
    task: Task,
    answer: dict[str, Any],
    *,
    label_id: str,
    author: str,
    label_type: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    titles = _titles(task.project.ontology or {})
    return {
        "id": label_id,
        "taskId": str(task.pk),
        "externalId": task.asset.external_id,
        "labelType": label_type,
        "author": {"email": author, "id": author},
        "jsonResponse": kili_json_response(answer, titles),
        "answer": answer,
        **extra,
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
