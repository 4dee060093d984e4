"""Parallel labeling end to end with real parts: two members submit their
labeling jobs through the JSON API (Django test client on the shared
database), the on-commit listener queues `task.jobs_complete` on the broker,
a real Celery worker creates the one run and dispatches it to
examples/merge_jobs_plugin.py under the real imerit-ango SDK, whose
`import_labels` lands the merged answer for review; an admin undoes it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from plugins_app.plugins.models import PluginType
from plugins_app.plugins.triggers import plugin_set_triggers
from plugins_app.runs.models import Run
from plugins_app.workspace import events
from plugins_app.workspace.jobs import job_set_members, project_set_jobs
from plugins_app.workspace.models import Membership, Submission, Task
from tests.hub import ROOT, PluginProcess, wait_for

MERGE = ROOT / "examples" / "merge_jobs_plugin.py"
FACE = {
    "schemaId": "face-box",
    "objectId": "face-1",
    "bounding-box": {"x": 170, "y": 60, "width": 100, "height": 110},
}
# The Scene labeler's canvas also shows a box they drew by mistake: not their
# job's, so neither their submission nor the merge keeps it.
STRAY = {
    "schemaId": "coin-box",
    "objectId": "stray",
    "bounding-box": {"x": 5, "y": 5, "width": 20, "height": 20},
}
SCENE = {"schemaId": "scene", "answer": "photo"}
# The Scene job outlines regions too; its labeler's canvas picked the same
# objectId as the Boxes labeler's: the merge renames it, the raw union cannot.
REGION = {
    "schemaId": "region-poly",
    "objectId": "face-1",
    "polygon": [[10, 10], [90, 10], [50, 80]],
}


def submit(user: User, task: Task, job_id: int, answer: dict[str, Any]) -> Any:
    client = Client()
    client.force_login(user)
    return client.post(
        f"/api/tasks/{task.pk}/jobs/{job_id}/submit",
        json.dumps({"answer": answer}),
        content_type="application/json",
    )


@pytest.mark.parametrize("sdk", ["1.3.22", "1.4"])
def test_the_merge_plugin_runs_once_and_its_answer_lands_for_review(
    sdk: str,
    workspace: Any,
    make_plugin: Any,
    plugin_runner: Any,
    celery_worker: PluginProcess,
) -> None:
    boxes, scene = project_set_jobs(
        workspace.project,
        [
            {"name": "Boxes", "tools": ["face-box", "coin-box"]},
            {"name": "Scene", "tools": ["region-poly"], "classifications": ["scene"]},
        ],
    )
    dana = User.objects.create_user("dana", "dana@x.test", "pw")
    erin = User.objects.create_user("erin", "erin@x.test", "pw")
    for user in (dana, erin):
        Membership.objects.create(user=user, organization=workspace.org)
    job_set_members(boxes, [workspace.annotator])
    job_set_members(scene, [dana])
    registered = make_plugin(
        type=PluginType.EVENT, class_names=[], name="Merger", default_config="{}"
    )
    plugin_set_triggers(
        registered.plugin,
        projects=[workspace.project],
        event_names=[events.TASK_JOBS_COMPLETE],
    )
    plugin = plugin_runner(MERGE, registered, sdk=sdk)
    task = workspace.asset("astronaut").task

    outside = submit(erin, task, boxes.pk, {"tools": [FACE]})
    assert outside.status_code == 403, outside.content
    first = submit(workspace.annotator, task, boxes.pk, {"tools": [FACE]})
    assert first.status_code == 200, first.content
    assert submit(workspace.annotator, task, boxes.pk, {}).status_code == 409
    last = submit(
        dana, task, scene.pk, {"tools": [STRAY, REGION], "classifications": [SCENE]}
    )
    assert last.status_code == 200, last.content

    def finished() -> Run | None:
        run = Run.objects.filter(task=task).first()
        return run if run is not None and run.is_finished else None

    try:
        run = wait_for(finished, timeout=40, what="the merge run to finish")
    except AssertionError:
        raise AssertionError(f"worker:\n{celery_worker.log()}\nplugin:\n{plugin.log()}")

    assert run.status == Run.Status.SUCCEEDED, (run.error, plugin.log())
    assert run.trigger == events.TASK_JOBS_COMPLETE
    assert Run.objects.filter(task=task).count() == 1  # the parts triggered nothing
    task.refresh_from_db()
    assert (task.stage, task.status) == ("Review", Task.Status.SUBMITTED)
    assert task.prelabel_run_id == run.pk
    assert [t["objectId"] for t in task.answer["tools"]] == ["face-1", "Scene-face-1"]
    assert [c["answer"] for c in task.answer["classifications"]] == ["photo"]
    assert task.metadata == {"merged_jobs": 2, "merged_objects": 2}
    written = task.events.get(name=events.ANSWER_WRITTEN)
    assert written.data["run"] == run.pk
    assert "merge of its labeling jobs" in written.data["reason"]
    lines = "\n".join(run.log_lines.values_list("message", flat=True))
    assert "Merging 2 jobs of astronaut (Boxes by bob, Scene by dana)" in lines

    admin = Client()
    admin.force_login(workspace.admin)
    undone = admin.post(
        f"/api/runs/{run.pk}/undo", "{}", content_type="application/json"
    )

    assert undone.status_code == 200, undone.content
    task.refresh_from_db()
    # Back to the union of the jobs' parts; each part is still in its submission.
    assert [t["objectId"] for t in task.answer["tools"]] == ["face-1", "face-1"]
    assert written.data["previousAnswer"] == task.answer
    assert task.events.filter(name=events.ANSWER_RESTORED).count() == 1
    assert Submission.objects.filter(task=task, active=True).count() == 2
