"""Parallel labeling (issue 12 §4; workspace/jobs.py): a project split into
labeling jobs, each task labeled once per job by that job's members, the
`task.jobs_complete` event that triggers a merging plugin once, the merge's
write landing for review with history and undo, and the JSON API
(web/jobs_api.py). The real merge plugin under the real SDK:
test_sdk_parallel_labeling.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from plugins_app.plugins.models import PluginType
from plugins_app.plugins.triggers import plugin_set_triggers
from plugins_app.runs.creation import run_create_for_event
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.models import Run
from plugins_app.runs.undo import run_undo
from plugins_app.wire.models import OutboxMessage
from plugins_app.workspace import events
from plugins_app.workspace.jobs import (
    JobSpecError,
    job_answer_part,
    job_set_members,
    jobs_of,
    project_set_jobs,
    task_jobs_state,
)
from plugins_app.workspace.lifecycle import (
    TaskActionError,
    TaskPermissionError,
    task_review,
    task_submit,
)
from plugins_app.workspace.models import (
    AnswerWrite,
    LabelingJob,
    Membership,
    Submission,
    Task,
    TaskEvent,
)
from plugins_app.workspace.services import prelabels_import
from tests.builders import connect_instance

FACE = {
    "schemaId": "face-box",
    "objectId": "f1",
    "bounding-box": {"x": 170, "y": 60, "width": 100, "height": 110},
}
COIN = {
    "schemaId": "coin-box",
    "objectId": "c1",
    "bounding-box": {"x": 10, "y": 10, "width": 40, "height": 40},
}
SCENE = {"schemaId": "scene", "answer": "photo"}
REGION = {
    "schemaId": "region-poly",
    "objectId": "r1",
    "polygon": [[1, 1], [50, 1], [50, 50]],
}
# A labeler may send the whole canvas: only their job's part is kept.
EVERYTHING = {"tools": [FACE, COIN], "classifications": [SCENE], "relations": []}
SPECS = [
    {"name": "Boxes", "tools": ["face-box", "coin-box"]},
    {"name": "Scene", "classifications": ["scene"]},
]


def member(workspace: Any, username: str) -> User:
    user = User.objects.create_user(username, f"{username}@x.test", "pw")
    Membership.objects.create(user=user, organization=workspace.org)
    return user


@pytest.fixture
def jobs(workspace: Any) -> dict[str, Any]:
    """Boxes (bob) and Scene (dana) on the workspace's project; erin is a
    member of the organization in neither job."""
    boxes, scene = project_set_jobs(workspace.project, SPECS)
    dana, erin = member(workspace, "dana"), member(workspace, "erin")
    job_set_members(boxes, [workspace.annotator])
    job_set_members(scene, [dana])
    return {"boxes": boxes, "scene": scene, "dana": dana, "erin": erin}


def names(task: Task) -> list[str]:
    return list(task.events.values_list("name", flat=True))


def tools_of(answer: dict[str, Any]) -> list[str]:
    return [t["objectId"] for t in answer.get("tools", [])]


def classes_of(answer: dict[str, Any]) -> list[str]:
    return [c["schemaId"] for c in answer.get("classifications", [])]


# --- the service ----------------------------------------------------------------
def test_two_members_label_two_jobs_and_the_task_moves_on_once_both_are_in(
    workspace: Any, jobs: dict[str, Any]
) -> None:
    task = workspace.asset("astronaut").task

    task = task_submit(task, user=workspace.annotator, answer=EVERYTHING)

    mine = Submission.objects.get(task=task, user=workspace.annotator)
    assert mine.job == jobs["boxes"]
    assert (
        tools_of(mine.answer) == ["f1", "c1"] and mine.answer["classifications"] == []
    )
    task.refresh_from_db()
    assert (task.stage, task.status) == ("Label", Task.Status.TODO)
    assert tools_of(task.answer) == ["f1", "c1"] and classes_of(task.answer) == []
    part = task.events.get(name=events.LABEL_SUBMITTED)
    assert part.data["job"] == "Boxes" and part.data["complete"] is False
    assert part.data["jobsRequired"] == ["Boxes", "Scene"]
    assert events.TASK_JOBS_COMPLETE not in names(task)
    state = task_jobs_state(task)
    assert [(s["job"].name, s["submitted"], s["submittedBy"]) for s in state] == [
        ("Boxes", True, "bob"),
        ("Scene", False, ""),
    ]

    task = task_submit(task, user=jobs["dana"], answer=EVERYTHING)

    task.refresh_from_db()
    assert (task.stage, task.status) == ("Review", Task.Status.SUBMITTED)
    # The reviewer sees every job's part, merged plugin or not.
    assert tools_of(task.answer) == ["f1", "c1"] and classes_of(task.answer) == [
        "scene"
    ]
    [complete] = task.events.filter(name=events.TASK_JOBS_COMPLETE)
    assert complete.data["complete"] is True
    parts = complete.data["jobs"]
    assert [(p["job"], p["submittedBy"]) for p in parts] == [
        ("Boxes", "bob"),
        ("Scene", "dana"),
    ]
    assert parts[0]["tools"] == ["face-box", "coin-box"]
    assert tools_of(parts[0]["answer"]) == ["f1", "c1"]
    assert parts[1]["classifications"] == ["scene"]
    assert parts[1]["answer"]["tools"] == [] and classes_of(parts[1]["answer"]) == [
        "scene"
    ]
    assert names(task) == [
        events.LABEL_SUBMITTED,
        events.LABEL_SUBMITTED,
        events.TASK_JOBS_COMPLETE,
        events.TASK_STAGE_ENTERED,
    ]


def test_a_job_still_to_submit_keeps_its_prelabel_and_unowned_labels_stay(
    workspace: Any, jobs: dict[str, Any]
) -> None:
    task = workspace.asset("astronaut").task
    # A model's pre-label: a face (Boxes), the scene (Scene), a region (no job).
    Task.objects.filter(pk=task.pk).update(
        answer={"tools": [FACE, REGION], "classifications": [SCENE]}
    )

    task_submit(task, user=workspace.annotator, answer={"tools": [COIN]})

    task.refresh_from_db()
    # Boxes' part replaced the face; Scene's pre-label waits for its labeler.
    assert tools_of(task.answer) == ["c1", "r1"]
    assert classes_of(task.answer) == ["scene"]
    task = task_submit(task, user=jobs["dana"], answer={"classifications": []})
    task.refresh_from_db()
    assert tools_of(task.answer) == ["c1", "r1"] and classes_of(task.answer) == []


def test_a_member_outside_every_job_and_a_second_submit_of_a_job_are_refused(
    workspace: Any, jobs: dict[str, Any]
) -> None:
    task = workspace.asset("astronaut").task

    with pytest.raises(TaskPermissionError, match="not in any labeling job"):
        task_submit(task, user=jobs["erin"], answer=EVERYTHING)
    with pytest.raises(TaskPermissionError, match="not in the labeling job “Scene”"):
        task_submit(
            task, user=workspace.annotator, answer=EVERYTHING, job=jobs["scene"]
        )
    task_submit(task, user=workspace.annotator, answer=EVERYTHING)
    # Another member of the same job: the job is done for this round.
    job_set_members(jobs["boxes"], [workspace.annotator, workspace.admin])
    with pytest.raises(TaskActionError, match="“Boxes” of this task is already"):
        task_submit(task, user=workspace.admin, answer=EVERYTHING)

    assert Submission.objects.filter(task=task).count() == 1
    assert names(task) == [events.LABEL_SUBMITTED]


def test_someone_in_two_jobs_names_the_job_or_gets_the_one_still_open(
    workspace: Any, jobs: dict[str, Any]
) -> None:
    job_set_members(jobs["scene"], [jobs["dana"], workspace.annotator])
    task = workspace.asset("astronaut").task

    with pytest.raises(TaskActionError, match="several labeling jobs"):
        task_submit(task, user=workspace.annotator, answer=EVERYTHING)
    task_submit(task, user=workspace.annotator, answer=EVERYTHING, job=jobs["scene"])
    # Only Boxes is left open for them: no need to say it.
    task = task_submit(task, user=workspace.annotator, answer=EVERYTHING)

    assert task.stage == "Review"
    assert set(Submission.objects.values_list("job__name", flat=True)) == {
        "Boxes",
        "Scene",
    }


def test_a_job_of_another_project_is_refused(
    workspace: Any, jobs: dict[str, Any]
) -> None:
    other = workspace.project.__class__.objects.create(
        organization=workspace.org, name="Other", ontology=workspace.project.ontology
    )
    [foreign] = project_set_jobs(other, [{"name": "Boxes", "tools": ["face-box"]}])
    job_set_members(foreign, [workspace.annotator])

    with pytest.raises(TaskActionError, match="not a labeling job of this project"):
        task_submit(
            workspace.asset("astronaut").task,
            user=workspace.annotator,
            answer=EVERYTHING,
            job=foreign,
        )


def test_a_rejected_task_is_labeled_again_by_every_job(
    workspace: Any, jobs: dict[str, Any]
) -> None:
    task = workspace.asset("astronaut").task
    task_submit(task, user=workspace.annotator, answer=EVERYTHING)
    task_submit(task, user=jobs["dana"], answer=EVERYTHING)

    task_review(task, user=workspace.admin, accept=False, reason="missed a coin")
    task_submit(task, user=workspace.annotator, answer=EVERYTHING)
    task = task_submit(task, user=jobs["dana"], answer=EVERYTHING)

    assert task.stage == "Review"
    assert task.events.filter(name=events.TASK_JOBS_COMPLETE).count() == 2
    assert Submission.objects.filter(task=task, active=True).count() == 2


def test_job_specs_are_checked_with_clear_messages(workspace: Any) -> None:
    project = workspace.project
    bad = [
        ("not a list", "must be a list"),
        ([{"tools": ["face-box"]}], "Job 1 needs a name"),
        ([{"name": "A", "tools": ["face-box"]}] * 2, "Two jobs are named “A”"),
        ([{"name": "A", "tools": ["nope"]}], "'nope' is not one of the ontology's"),
        ([{"name": "A", "tools": ["scene"]}], "'scene' is not one of the ontology's"),
        (
            [
                {"name": "A", "tools": ["face-box"]},
                {"name": "B", "tools": ["face-box", "coin-box"]},
            ],
            "'face-box' is in both “A” and “B”",
        ),
        ([{"name": "A"}], "has no tool and no classification"),
        ([{"name": "A", "tools": "face-box"}], "must be a list of schemaIds"),
        ([{"name": "x" * 101, "tools": ["face-box"]}], "longer than 100"),
    ]
    for specs, message in bad:
        with pytest.raises(JobSpecError, match=message):
            project_set_jobs(project, specs)  # type: ignore[arg-type]
    assert not LabelingJob.objects.exists()


def test_jobs_keep_their_members_by_name_and_a_job_with_labels_stays(
    workspace: Any, jobs: dict[str, Any]
) -> None:
    task = workspace.asset("astronaut").task
    task_submit(task, user=workspace.annotator, answer=EVERYTHING)

    # Scene's tools change and it moves first; Boxes keeps its id and members.
    again = project_set_jobs(
        workspace.project,
        [
            {"name": "Scene", "classifications": ["scene"], "tools": ["region-poly"]},
            {"name": "Boxes", "tools": ["face-box", "coin-box"]},
        ],
    )
    assert [j.name for j in again] == ["Scene", "Boxes"]
    assert again[1].pk == jobs["boxes"].pk
    assert jobs_of(workspace.annotator, workspace.project) == [again[1]]
    with pytest.raises(JobSpecError, match="Boxes hold submitted labels"):
        project_set_jobs(workspace.project, [{"name": "Scene", "tools": ["face-box"]}])
    assert workspace.project.jobs.count() == 2


def test_only_members_of_the_organization_join_a_job(
    workspace: Any, jobs: dict[str, Any]
) -> None:
    with pytest.raises(JobSpecError, match="Not members of this organization: charlie"):
        job_set_members(jobs["boxes"], [workspace.annotator, workspace.outsider])
    assert list(jobs["boxes"].members.all()) == [workspace.annotator]


def test_a_job_part_keeps_its_tools_classifications_and_their_relations(
    workspace: Any, jobs: dict[str, Any]
) -> None:
    answer = {
        "tools": [FACE, COIN, REGION],
        "classifications": [SCENE],
        "relations": [
            {"schemaId": "r", "from": "f1", "to": "c1"},
            {"schemaId": "r", "from": "f1", "to": "r1"},
        ],
    }

    part = job_answer_part(answer, jobs["boxes"])

    assert tools_of(part) == ["f1", "c1"] and part["classifications"] == []
    assert part["relations"] == [{"schemaId": "r", "from": "f1", "to": "c1"}]


def test_a_project_without_jobs_labels_as_before(workspace: Any) -> None:
    project_set_jobs(workspace.project, SPECS)
    project_set_jobs(workspace.project, [])  # parallel labeling off again
    task = workspace.asset("astronaut").task

    task = task_submit(task, user=workspace.annotator, answer=EVERYTHING)

    assert task.stage == "Review"
    [submission] = Submission.objects.filter(task=task)
    assert submission.job is None and tools_of(submission.answer) == ["f1", "c1"]
    assert classes_of(submission.answer) == ["scene"]
    assert events.TASK_JOBS_COMPLETE not in names(task)
    submitted = task.events.get(name=events.LABEL_SUBMITTED)
    assert submitted.data["complete"] is True and "job" not in submitted.data


# --- the event and the merge's write ------------------------------------------
def merge_plugin(make_plugin: Any, workspace: Any) -> Any:
    registered = make_plugin(type=PluginType.EVENT, class_names=[], name="Merger")
    plugin_set_triggers(
        registered.plugin,
        projects=[workspace.project],
        event_names=[events.TASK_JOBS_COMPLETE],
    )
    return registered


def label_both(workspace: Any, jobs: dict[str, Any], capture: Any) -> Task:
    task = workspace.asset("astronaut").task
    with capture(execute=True):
        task_submit(task, user=workspace.annotator, answer=EVERYTHING)
    with capture(execute=True):
        task_submit(task, user=jobs["dana"], answer=EVERYTHING)
    task.refresh_from_db()
    return task


def test_jobs_complete_triggers_one_run_whose_job_carries_every_part(
    workspace: Any,
    jobs: dict[str, Any],
    make_plugin: Any,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    registered = merge_plugin(make_plugin, workspace)
    # A label.submitted plugin hears no part: a part is not the task's label.
    qa = make_plugin(type=PluginType.EVENT, class_names=[], name="QA")
    plugin_set_triggers(
        qa.plugin, projects=[workspace.project], event_names=[events.LABEL_SUBMITTED]
    )
    connect_instance(registered.plugin, "test!merge")

    task = label_both(workspace, jobs, django_capture_on_commit_callbacks)
    dispatch_pending(registered.plugin.pk)

    [run] = Run.objects.filter(plugin=registered.plugin)
    assert (run.trigger, run.task_id) == (events.TASK_JOBS_COMPLETE, task.pk)
    assert not Run.objects.filter(plugin=qa.plugin).exists()
    job = OutboxMessage.objects.filter(target="test!merge").last().message["job"]
    assert job["event"] == "task.jobs_complete" and job["taskId"] == str(task.pk)
    assert [(p["job"], p["submittedBy"]) for p in job["jobs"]] == [
        ("Boxes", "bob"),
        ("Scene", "dana"),
    ]
    assert "complete" not in job
    # Redelivered (Celery or the beat's recovery): still one run.
    event = task.events.get(name=events.TASK_JOBS_COMPLETE)
    assert run_create_for_event(registered.plugin.pk, event.pk) == run
    assert Run.objects.filter(plugin=registered.plugin).count() == 1


def test_the_edit_dialog_offers_task_jobs_complete_and_sets_it(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.EVENT, class_names=[]).plugin
    admin = client_for(workspace.admin)
    url = f"/plugins/{plugin.pk}/edit/"

    assert 'value="task.jobs_complete"' in admin.get(url).content.decode()
    response = admin.post(
        url,
        {
            "name": plugin.name,
            "type": "event",
            "default_config": "{}",
            "timeout_seconds": 60,
            "concurrency": 1,
            "projects": [workspace.project.pk],
            "trigger_events": ["task.jobs_complete"],
        },
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 200 and "HX-Redirect" in response
    assert plugin.triggers.get().events == ["task.jobs_complete"]


def merged_record(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "externalId": "astronaut",
            "objects": tools,
            "classifications": [SCENE],
        }
    ]


def test_the_merge_lands_once_for_review_with_history_and_undo(
    workspace: Any,
    jobs: dict[str, Any],
    make_plugin: Any,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    registered = merge_plugin(make_plugin, workspace)
    task = label_both(workspace, jobs, django_capture_on_commit_callbacks)
    union = task.answer
    run = Run.objects.get(plugin=registered.plugin)

    first = prelabels_import(
        project=workspace.project, records=merged_record([FACE]), mapping=None, run=run
    )

    assert (first.labeled, first.skipped) == (1, [])
    task.refresh_from_db()
    assert tools_of(task.answer) == ["f1"] and classes_of(task.answer) == ["scene"]
    assert (task.stage, task.status) == ("Review", Task.Status.SUBMITTED)
    assert task.prelabel_run_id == run.pk
    written = task.events.get(name=events.ANSWER_WRITTEN)
    assert "merge of its labeling jobs" in written.data["reason"]
    assert written.data["previousAnswer"] == union

    # The same run again (a retried job): the merge is in, nothing changes.
    again = prelabels_import(
        project=workspace.project,
        records=merged_record([FACE, COIN]),
        mapping=None,
        run=run,
    )

    assert again.labeled == 0
    [skipped] = again.skipped
    assert "merge of labeling jobs is written once" in skipped["reason"]
    task.refresh_from_db()
    assert tools_of(task.answer) == ["f1"]
    assert task.events.filter(name=events.ANSWER_WRITTEN).count() == 1

    Run.objects.filter(pk=run.pk).update(status=Run.Status.SUCCEEDED)
    result = run_undo(Run.objects.get(pk=run.pk), by=workspace.admin)

    assert result.restored == [task.pk]
    task.refresh_from_db()
    assert task.answer == union and task.stage == "Review"
    # Every job's label stayed where it was all along.
    assert Submission.objects.filter(task=task, active=True).count() == 2
    outcomes = AnswerWrite.objects.filter(run=run, task=task).values_list(
        "outcome", flat=True
    )
    assert list(outcomes) == ["undone", "skipped"]


def test_a_late_merge_after_the_reviewer_acted_keeps_the_reviewed_answer(
    workspace: Any,
    jobs: dict[str, Any],
    make_plugin: Any,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    registered = merge_plugin(make_plugin, workspace)
    task = label_both(workspace, jobs, django_capture_on_commit_callbacks)
    run = Run.objects.get(plugin=registered.plugin)
    task_review(task, user=workspace.admin, accept=False, reason="redo the boxes")
    task.refresh_from_db()
    before = task.answer

    late = prelabels_import(
        project=workspace.project, records=merged_record([FACE]), mapping=None, run=run
    )

    assert late.labeled == 0 and len(late.skipped) == 1
    task.refresh_from_db()
    assert task.answer == before
    assert TaskEvent.objects.filter(task=task, name=events.ANSWER_KEPT).exists()


# --- the JSON API ---------------------------------------------------------------
def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def put_json(client: Client, url: str, body: Any) -> Any:
    return client.put(url, json.dumps(body), content_type="application/json")


def test_the_api_sets_jobs_and_members_for_admins_and_shows_them_to_members(
    workspace: Any,
) -> None:
    url = f"/api/projects/{workspace.project.pk}/jobs"
    admin, annotator = client_for(workspace.admin), client_for(workspace.annotator)

    refused = put_json(annotator, url, {"jobs": SPECS})
    assert refused.status_code == 403
    assert "Only admins" in refused.json()["errors"]["__all__"][0]
    assert (
        put_json(client_for(workspace.outsider), url, {"jobs": SPECS}).status_code
        == 404
    )
    response = put_json(admin, url, {"jobs": SPECS})

    assert response.status_code == 200, response.content
    boxes, scene = response.json()
    assert (boxes["name"], boxes["tools"], boxes["members"]) == (
        "Boxes",
        ["face-box", "coin-box"],
        [],
    )
    members_url = f"{url}/{boxes['id']}/members"
    assert put_json(annotator, members_url, {"users": ["bob"]}).status_code == 403
    for users, message in (
        (["bob", "charlie"], "Not members of this organization: charlie"),
        (["bob", "nobody"], "Not members of this organization: nobody"),
    ):
        bad = put_json(admin, members_url, {"users": users})
        assert bad.status_code == 400 and message in bad.json()["errors"]["__all__"][0]
    assert put_json(admin, f"{url}/999999/members", {"users": []}).status_code == 404
    ok = put_json(admin, members_url, {"users": ["bob"]})
    assert ok.status_code == 200 and ok.json()["members"] == ["bob"]
    listed = annotator.get(url)
    assert listed.status_code == 200
    assert [(j["name"], j["members"]) for j in listed.json()] == [
        ("Boxes", ["bob"]),
        ("Scene", []),
    ]
    assert client_for(workspace.outsider).get(url).status_code == 404


def test_bad_job_specs_are_a_400_naming_the_problem(workspace: Any) -> None:
    url = f"/api/projects/{workspace.project.pk}/jobs"
    admin = client_for(workspace.admin)
    for body, message in (
        ({"jobs": [{"name": "A", "tools": ["nope"]}]}, "'nope' is not one of"),
        (
            {"jobs": [{"name": "A", "tools": ["face-box"]}, {"name": "A"}]},
            "Two jobs are named “A”",
        ),
        ({"jobs": [{"name": "", "tools": ["face-box"]}]}, "Job 1 needs a name"),
        ({"jobs": [7]}, "Job 1 must be an object"),
        ({"jobs": [{"name": "A", "tools": [["face-box"]]}]}, "list of schemaIds"),
    ):
        response = put_json(admin, url, body)
        assert response.status_code == 400, (body, response.content)
        assert message in response.json()["errors"]["__all__"][0]
    assert put_json(admin, url, {"nope": 1}).status_code == 422
    assert not LabelingJob.objects.exists()


def test_members_submit_their_job_over_the_api_and_outsiders_are_refused(
    workspace: Any, jobs: dict[str, Any]
) -> None:
    task = workspace.asset("astronaut").task
    url = f"/api/tasks/{task.pk}/jobs"
    boxes, scene = jobs["boxes"].pk, jobs["scene"].pk
    body = {"answer": EVERYTHING}

    erin = client_for(jobs["erin"]).post(
        f"{url}/{boxes}/submit", json.dumps(body), content_type="application/json"
    )
    assert erin.status_code == 403
    assert "not in the labeling job “Boxes”" in erin.json()["errors"]["__all__"][0]
    # The plain submit says the same: a permission, not a conflict.
    plain = client_for(jobs["erin"]).post(
        f"/api/tasks/{task.pk}/submit", "{}", content_type="application/json"
    )
    assert plain.status_code == 403, plain.content
    assert "labeling job" in plain.json()["errors"]["__all__"][0]
    bob = client_for(workspace.annotator)
    first = bob.post(
        f"{url}/{boxes}/submit", json.dumps(body), content_type="application/json"
    )
    assert first.status_code == 200, first.content
    assert [j["submitted_by"] for j in first.json()["jobs"]] == ["bob", ""]
    twice = bob.post(
        f"{url}/{boxes}/submit", json.dumps(body), content_type="application/json"
    )
    assert twice.status_code == 409 and "already submitted" in twice.content.decode()
    missing = bob.post(f"{url}/999999/submit", "{}", content_type="application/json")
    assert missing.status_code == 404
    done = client_for(jobs["dana"]).post(
        f"{url}/{scene}/submit", json.dumps(body), content_type="application/json"
    )

    assert done.status_code == 200
    assert done.json()["stage"] == "Review"
    assert classes_of(done.json()["answer"]) == ["scene"]
    state = client_for(jobs["erin"]).get(url).json()
    assert [(j["job"], j["submitted"]) for j in state["jobs"]] == [
        ("Boxes", True),
        ("Scene", True),
    ]
    # Another organization sees neither the task nor its jobs.
    assert client_for(workspace.outsider).get(url).status_code == 404
