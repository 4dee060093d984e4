"""Labeling events: submit and review (lifecycle, task page, JSON API), the
task's history, event triggers creating exactly one run per (plugin, event)
through the on-commit → Celery path, and run-level events on the task."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from plugins_app.plugins.models import PluginTrigger, PluginType
from plugins_app.plugins.triggers import plugin_set_triggers
from plugins_app.runs.creation import run_create_for_event
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.models import Run, WorkItem
from plugins_app.runs.responses import item_respond
from plugins_app.runs.tasks import create_event_run
from plugins_app.wire.models import OutboxMessage
from plugins_app.workspace import events
from plugins_app.workspace.lifecycle import (
    TaskActionError,
    TaskPermissionError,
    task_review,
    task_send_back,
    task_submit,
)
from plugins_app.workspace.models import Membership, Task, TaskEvent
from tests.builders import connect_instance

BOX = {
    "schemaId": "face-box",
    "objectId": "o1",
    "bounding-box": {"x": 10, "y": 10, "width": 40, "height": 40},
    "title": "Face",  # the hub adds the ontology's title when it stores a label
}
ANSWER = {"tools": [BOX], "classifications": [], "relations": []}


def in_label(workspace: Any, external_id: str = "astronaut") -> Task:
    task = workspace.asset(external_id).task
    task.stage, task.status = "Label", Task.Status.TODO
    task.save()
    return task


def event_plugin(make_plugin: Any, workspace: Any, *names: str) -> Any:
    registered = make_plugin(type=PluginType.EVENT, class_names=[], name="QA bot")
    plugin_set_triggers(
        registered.plugin,
        projects=[workspace.project],
        event_names=list(names) or [events.LABEL_SUBMITTED],
    )
    return registered


def reviewer_in(workspace: Any) -> Any:
    """A member of the workspace's organization with the Reviewer role."""
    user = get_user_model().objects.create_user("dora", password="x")
    Membership.objects.create(
        user=user, organization=workspace.org, role=Membership.Role.REVIEWER
    )
    return user


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- lifecycle ------------------------------------------------------------------
def test_submit_stores_the_answer_moves_to_review_and_records_the_event(
    workspace: Any,
) -> None:
    task = in_label(workspace)

    task = task_submit(task, user=workspace.annotator, answer=ANSWER)

    task.refresh_from_db()
    assert (task.stage, task.status) == ("Review", Task.Status.SUBMITTED)
    assert task.answer["tools"] == [BOX]
    submitted = task.events.get(name=events.LABEL_SUBMITTED)
    assert submitted.actor == workspace.annotator
    assert submitted.data["answer"]["tools"] == [BOX]
    assert submitted.data["submittedBy"] == "bob"
    assert submitted.data["complete"] is True
    assert [e.name for e in task.events.all()] == [
        events.LABEL_SUBMITTED,
        events.TASK_STAGE_ENTERED,
    ]


def test_review_accept_completes_and_reject_sends_back(workspace: Any) -> None:
    accepted = task_submit(in_label(workspace), user=workspace.annotator, answer=ANSWER)
    rejected = task_submit(
        in_label(workspace, "coins"), user=workspace.annotator, answer=ANSWER
    )

    task_review(accepted, user=workspace.admin, accept=True)
    task_review(rejected, user=workspace.admin, accept=False, reason="box too big")

    accepted.refresh_from_db()
    rejected.refresh_from_db()
    assert (accepted.stage, accepted.status) == ("Complete", Task.Status.REVIEWED)
    assert (rejected.stage, rejected.status) == ("Label", Task.Status.TODO)
    reviewed = rejected.events.get(name=events.LABEL_REVIEWED)
    assert reviewed.data["verdict"] == "rejected"
    assert reviewed.data["reason"] == "box too big"
    sent_back = rejected.events.get(name=events.TASK_SENT_BACK)
    assert sent_back.data == {"from": "Review", "to": "Label", "reason": "box too big"}


def test_actions_that_do_not_apply_are_refused_clearly(workspace: Any) -> None:
    task = in_label(workspace)
    with pytest.raises(TaskActionError, match="only a task in a Review stage"):
        task_review(task, user=workspace.admin, accept=True)
    task_submit(task, user=workspace.annotator, answer=ANSWER)
    with pytest.raises(TaskActionError, match="only a task in a Label stage"):
        task_submit(task, user=workspace.admin, answer=ANSWER)
    with pytest.raises(TaskActionError, match="does not fit this project"):
        task_submit(
            in_label(workspace, "coins"), user=workspace.admin, answer={"tools": 3}
        )
    assert TaskEvent.objects.filter(name=events.LABEL_REVIEWED).count() == 0


def test_consensus_waits_for_n_different_labelers(workspace: Any) -> None:
    workspace.project.labels_per_asset = 2
    workspace.project.save()
    task = in_label(workspace)

    task_submit(task, user=workspace.annotator, answer=ANSWER)
    task.refresh_from_db()
    assert task.stage == "Label"
    with pytest.raises(TaskActionError, match="already submitted"):
        task_submit(task, user=workspace.annotator, answer=ANSWER)
    task_submit(task, user=workspace.admin, answer={"tools": []})

    task.refresh_from_db()
    assert task.stage == "Review"
    first, last = task.events.filter(name=events.LABEL_SUBMITTED)
    assert first.data["complete"] is False and last.data["complete"] is True
    assert [label["submittedBy"] for label in last.data["labels"]] == ["bob", "alice"]
    assert last.data["labels"][0]["answer"]["tools"] == [BOX]
    # Sent back, the next round starts from scratch.
    task_send_back(task, reason="disagreement")
    task_submit(task, user=workspace.annotator, answer=ANSWER)
    task.refresh_from_db()
    assert task.stage == "Label"


# --- triggers -------------------------------------------------------------------
def test_a_submit_triggers_one_run_of_the_event_plugin_after_commit(
    workspace: Any,
    make_plugin: Any,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    registered = event_plugin(make_plugin, workspace)
    other = event_plugin(make_plugin, workspace, events.LABEL_REVIEWED)
    task = in_label(workspace)

    with django_capture_on_commit_callbacks(execute=True):
        task_submit(task, user=workspace.annotator, answer=ANSWER)

    run = Run.objects.get(plugin=registered.plugin)
    event = task.events.get(name=events.LABEL_SUBMITTED)
    assert (run.trigger, run.task_id, run.event_id) == (
        events.LABEL_SUBMITTED,
        task.pk,
        event.pk,
    )
    assert run.created_by == workspace.annotator
    assert run.items.get().asset_id == task.asset_id
    assert not Run.objects.filter(plugin=other.plugin).exists()


def test_a_redelivered_trigger_creates_no_second_run(
    workspace: Any, make_plugin: Any
) -> None:
    registered = event_plugin(make_plugin, workspace)
    task = task_submit(in_label(workspace), user=workspace.annotator, answer=ANSWER)
    event = task.events.get(name=events.LABEL_SUBMITTED)

    first = run_create_for_event(registered.plugin.pk, event.pk)
    again = create_event_run.apply(args=[registered.plugin.pk, event.pk]).get()

    assert first is not None and again == first.pk
    assert Run.objects.filter(event=event).count() == 1


def test_a_consensus_submission_short_of_n_triggers_nothing(
    workspace: Any,
    make_plugin: Any,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    event_plugin(make_plugin, workspace)
    workspace.project.labels_per_asset = 2
    workspace.project.save()
    task = in_label(workspace)

    with django_capture_on_commit_callbacks(execute=True):
        task_submit(task, user=workspace.annotator, answer=ANSWER)
    assert not Run.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        task_submit(task, user=workspace.admin, answer=ANSWER)
    assert Run.objects.count() == 1


def test_the_event_job_carries_the_event_and_the_run_end_lands_in_the_history(
    workspace: Any,
    make_plugin: Any,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    registered = event_plugin(make_plugin, workspace)
    instance = connect_instance(registered.plugin, "test!event")
    task = in_label(workspace)
    with django_capture_on_commit_callbacks(execute=True):
        task_submit(task, user=workspace.annotator, answer=ANSWER)
    dispatch_pending(registered.plugin.pk)

    job = OutboxMessage.objects.filter(target="test!event").last().message["job"]
    assert job["event"] == "label.submitted"
    assert job["taskId"] == str(task.pk)
    assert job["externalId"] == "astronaut"
    assert job["assetId"] == str(task.asset_id)
    assert job["answer"]["tools"] == [BOX]
    assert job["submittedBy"] == "bob"
    assert job["stage"] == "Label"
    assert [label["submittedBy"] for label in job["labels"]] == ["bob"]
    assert "complete" not in job and job["apiKey"]
    with django_capture_on_commit_callbacks(execute=True):
        outcome = item_respond(
            session=job["session"],
            payload={"response": "checked"},
            channel_name=instance.channel_name,
        )
    assert outcome == "done"
    run = Run.objects.get(plugin=registered.plugin)
    assert run.status == Run.Status.SUCCEEDED
    ended = task.events.get(name=events.RUN_SUCCEEDED)
    assert ended.data["run"] == run.pk and ended.actor_label == "plugin QA bot"


def test_only_event_plugins_take_triggers(workspace: Any, make_plugin: Any) -> None:
    model = make_plugin().plugin
    with pytest.raises(ValueError, match="Only Event-triggered"):
        plugin_set_triggers(
            model, projects=[workspace.project], event_names=["label.submitted"]
        )
    with pytest.raises(ValueError, match="Not trigger events"):
        plugin_set_triggers(model, projects=[workspace.project], event_names=["x"])


def test_only_reviewers_and_admins_accept_or_reject(workspace: Any) -> None:
    task = task_submit(in_label(workspace), user=workspace.annotator, answer=ANSWER)

    with pytest.raises(TaskPermissionError, match="Only reviewers and admins"):
        task_review(task, user=workspace.annotator, accept=True)
    task.refresh_from_db()
    assert (task.stage, task.status) == ("Review", Task.Status.SUBMITTED)
    assert not task.events.filter(name=events.LABEL_REVIEWED).exists()

    # A reviewer of another organization may not either.
    rival = Membership.objects.create(
        user=get_user_model().objects.create_user("eve"),
        organization=workspace.other_project.organization,
        role=Membership.Role.REVIEWER,
    )
    with pytest.raises(TaskPermissionError):
        task_review(task, user=rival.user, accept=True)

    task_review(task, user=reviewer_in(workspace), accept=True)
    task.refresh_from_db()
    assert task.stage == "Complete"
    assert task.events.get(name=events.LABEL_REVIEWED).actor.username == "dora"


def test_the_task_page_shows_review_actions_only_to_those_who_may_review(
    workspace: Any,
) -> None:
    task = task_submit(in_label(workspace), user=workspace.annotator, answer=ANSWER)
    base = f"/projects/{workspace.project.pk}/tasks/{task.pk}/"
    labeler = client_for(workspace.annotator)

    page = labeler.get(base).content.decode()
    assert 'id="task-awaiting-review"' in page and 'id="task-accept"' not in page
    for who in (reviewer_in(workspace), workspace.admin):
        page = client_for(who).get(base).content.decode()
        assert 'id="task-accept"' in page and 'id="task-reject"' in page

    # A forged post is refused: 403 for a plain form, the reason in the panel
    # for htmx; the task stays where it was.
    plain = labeler.post(base + "review/", {"verdict": "accept"})
    assert plain.status_code == 403
    assert "Only reviewers and admins" in plain.content.decode()
    inline = labeler.post(
        base + "review/", {"verdict": "reject"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert 'id="task-action-error"' in inline and "Only reviewers and admins" in inline
    task.refresh_from_db()
    assert (task.stage, task.status) == ("Review", Task.Status.SUBMITTED)


# --- the task page ----------------------------------------------------------------
def test_the_task_page_submits_and_reviews_with_htmx(
    workspace: Any, make_plugin: Any
) -> None:
    event_plugin(make_plugin, workspace)
    task = in_label(workspace)
    base = f"/projects/{workspace.project.pk}/tasks/{task.pk}/"
    labeler, reviewer = client_for(workspace.annotator), client_for(workspace.admin)

    page = labeler.get(base).content.decode()
    assert 'id="task-submit"' in page and "Label" in page
    assert (
        f'href="{base}"'
        in labeler.get(f"/projects/{workspace.project.pk}/").content.decode()
    )
    asset_page = labeler.get(
        f"/projects/{workspace.project.pk}/assets/{task.asset_id}/"
    ).content.decode()
    assert f'href="{base}"' in asset_page

    submitted = labeler.post(
        base + "submit/", {"answer": json.dumps(ANSWER)}, HTTP_HX_REQUEST="true"
    )
    assert submitted.status_code == 200
    assert 'id="task-awaiting-review"' in submitted.content.decode()

    refused = labeler.post(base + "submit/", {"answer": "{}"}, HTTP_HX_REQUEST="true")
    assert "only a task in a Label stage" in refused.content.decode()

    rejected = reviewer.post(
        base + "review/",
        {"verdict": "reject", "reason": "<b>wrong</b>"},
        HTTP_HX_REQUEST="true",
    ).content.decode()
    assert 'id="task-submit"' in rejected
    assert "&lt;b&gt;wrong&lt;/b&gt;" in rejected and "<b>wrong</b>" not in rejected
    assert "task.sent_back" in rejected and "label.reviewed" in rejected


def test_a_reject_without_a_reason_is_refused_everywhere(workspace: Any) -> None:
    """The labeler gets the task back with only the reason to go on: the
    service, the task page and the JSON API all refuse a blank one."""
    task = task_submit(in_label(workspace), user=workspace.annotator, answer=ANSWER)
    reviewer = reviewer_in(workspace)

    for blank in ("", "   "):
        with pytest.raises(TaskActionError, match="Give a reason to reject"):
            task_review(task, user=reviewer, accept=False, reason=blank)

    base = f"/projects/{workspace.project.pk}/tasks/{task.pk}/"
    page = client_for(reviewer)
    inline = page.post(
        base + "review/", {"verdict": "reject", "reason": " "}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert 'id="task-action-error"' in inline and "Give a reason to reject" in inline
    form = page.get(base).content.decode()
    assert 'name="reason" type="text" maxlength="1000" required' in form

    api = page.post(
        f"/api/tasks/{task.pk}/review",
        {"verdict": "reject"},
        content_type="application/json",
    )
    assert api.status_code == 409
    assert "Give a reason to reject" in api.json()["errors"]["__all__"][0]

    task.refresh_from_db()
    assert (task.stage, task.status) == ("Review", Task.Status.SUBMITTED)
    assert not task.events.filter(name=events.LABEL_REVIEWED).exists()

    # With a reason it goes back, carrying the reason.
    task_review(task, user=reviewer, accept=False, reason="box too big")
    task.refresh_from_db()
    assert task.stage == "Label"


def test_a_bad_answer_is_refused_inline_and_changes_nothing(workspace: Any) -> None:
    task = in_label(workspace)
    url = f"/projects/{workspace.project.pk}/tasks/{task.pk}/submit/"

    client = client_for(workspace.annotator)
    outside = {
        "tools": [
            {
                "schemaId": "face-box",
                "bounding-box": {"x": 500, "y": 0, "width": 90, "height": 9},
            },
            {
                "schemaId": "<no-such-tool>",
                "bounding-box": {"x": 0, "y": 0, "width": 9, "height": 9},
            },
        ]
    }

    response = client.post(url, {"answer": "{nope"})
    refused = client.post(url, {"answer": json.dumps(outside)}, HTTP_HX_REQUEST="true")

    assert response.status_code == 409
    assert "not valid JSON" in response.content.decode()
    html = refused.content.decode()
    assert "does not fit this project" in html and "&lt;no-such-tool&gt;" in html
    assert "<no-such-tool>" not in html
    task.refresh_from_db()
    assert task.stage == "Label" and not task.events.exists()


def test_the_runs_list_and_run_page_name_the_event_and_the_task(
    workspace: Any,
    make_plugin: Any,
    eager_celery: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    event_plugin(make_plugin, workspace)
    task = in_label(workspace)
    with django_capture_on_commit_callbacks(execute=True):
        task_submit(task, user=workspace.annotator, answer=ANSWER)
    run = Run.objects.get()
    client = client_for(workspace.annotator)
    link = f'href="/projects/{workspace.project.pk}/tasks/{task.pk}/"'

    for page in (client.get("/runs/"), client.get(f"/runs/{run.pk}/")):
        html = page.content.decode()
        assert "label.submitted" in html and link in html
    task_page = client.get(f"/projects/{workspace.project.pk}/tasks/{task.pk}/")
    assert f'href="/runs/{run.pk}/"' in task_page.content.decode()


# --- the JSON API -------------------------------------------------------------------
def test_the_api_submits_and_reviews(workspace: Any) -> None:
    task = in_label(workspace)
    client = client_for(workspace.annotator)

    submitted = client.post(
        f"/api/tasks/{task.pk}/submit",
        json.dumps({"answer": ANSWER}),
        content_type="application/json",
    )
    assert submitted.status_code == 200, submitted.content
    assert submitted.json()["stage"] == "Review"
    again = client.post(
        f"/api/tasks/{task.pk}/submit", "{}", content_type="application/json"
    )
    assert again.status_code == 409
    assert "only a task in a Label stage" in again.json()["errors"]["__all__"][0]

    def review(who: Client) -> Any:
        return who.post(
            f"/api/tasks/{task.pk}/review",
            json.dumps({"verdict": "accept"}),
            content_type="application/json",
        )

    refused = review(client)  # an annotator
    assert refused.status_code == 403
    assert "Only reviewers and admins" in refused.json()["errors"]["__all__"][0]
    reviewed = review(client_for(reviewer_in(workspace)))
    assert reviewed.status_code == 200, reviewed.content
    assert reviewed.json()["stage"] == "Complete"
    names = [e["name"] for e in client.get(f"/api/tasks/{task.pk}/events").json()]
    assert names[0] == "label.submitted" and "label.reviewed" in names
    listed = client.get(f"/api/projects/{workspace.project.pk}/tasks?stage=Complete")
    assert [t["id"] for t in listed.json()] == [task.pk]
    project = client.get("/api/projects").json()[0]
    assert project["labels_per_asset"] == 1
    assert [s["name"] for s in project["workflow"]][1:3] == ["Label", "Review"]


def test_the_edit_dialog_and_the_api_set_triggers(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.EVENT, class_names=[]).plugin
    admin = client_for(workspace.admin)

    response = admin.post(
        f"/plugins/{plugin.pk}/edit/",
        {
            "name": plugin.name,
            "type": "event",
            "default_config": "{}",
            "timeout_seconds": 60,
            "concurrency": 1,
            "projects": [workspace.project.pk],
            "trigger_events": ["label.submitted", "label.reviewed"],
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and "HX-Redirect" in response
    trigger = PluginTrigger.objects.get(plugin=plugin)
    assert trigger.events == ["label.submitted", "label.reviewed"]
    project_page = admin.get(f"/projects/{workspace.project.pk}/").content.decode()
    assert "label.reviewed" in project_page
    patched = admin.patch(
        f"/api/plugins/{plugin.pk}",
        json.dumps({"trigger_events": ["task.sent_back"]}),
        content_type="application/json",
    )
    assert patched.json()["trigger_events"] == ["task.sent_back"]
    bad = admin.patch(
        f"/api/plugins/{plugin.pk}",
        json.dumps({"trigger_events": ["label.exploded"]}),
        content_type="application/json",
    )
    assert bad.status_code == 400
    PluginTrigger.objects.get(plugin=plugin, events=["task.sent_back"])
    assert WorkItem.objects.count() == 0


# --- the REST endpoints event plugins act through ---------------------------------
@pytest.fixture
def job_key(
    workspace: Any, make_plugin: Any, django_capture_on_commit_callbacks: Any
) -> dict[str, Any]:
    """A leased event run's apiKey, as its plugin would hold it."""
    registered = event_plugin(make_plugin, workspace)
    connect_instance(registered.plugin, "test!rest")
    task = task_submit(in_label(workspace), user=workspace.annotator, answer=ANSWER)
    event = task.events.get(name=events.LABEL_SUBMITTED)
    # Created and leased in one transaction; the job goes out at its commit.
    with django_capture_on_commit_callbacks(execute=True):
        run_create_for_event(registered.plugin.pk, event.pk)
    job = OutboxMessage.objects.filter(target="test!rest").last().message["job"]
    return {"key": job["apiKey"], "task": task, "project": workspace.project.pk}


def rest(job_key: dict[str, Any], path: str, body: Any) -> Any:
    return Client().post(
        path,
        json.dumps(body),
        content_type="application/json",
        HTTP_APIKEY=job_key["key"],
    )


def test_rest_issues_requeue_and_metadata_act_on_the_task(
    job_key: dict[str, Any],
) -> None:
    task = job_key["task"]
    created = rest(
        job_key,
        "/v2/issues",
        {"content": "<i>bad</i>", "labelTask": str(task.pk), "position": "[1, 2]"},
    )
    assert created.status_code == 200, created.content
    assert created.json()["data"]["issue"]["content"] == "<i>bad</i>"
    meta = rest(
        job_key, f"/v2/task/{task.pk}/metadata", {"metadata": {"accuracy": 0.5}}
    )
    assert meta.json()["data"]["task"]["metadata"] == {"accuracy": 0.5}
    requeued = rest(
        job_key,
        f"/v2/project/{job_key['project']}/requeueTasks",
        {"toStageId": "", "filters": {"externalIds": ["astronaut"]}, "options": {}},
    )
    assert requeued.json()["data"] == {
        "requeued": 1,
        "tasks": [str(task.pk)],
        "toStage": "Label",
    }
    task.refresh_from_db()
    assert (task.stage, task.metadata) == ("Label", {"accuracy": 0.5})
    assert task.answer["tools"], "requeued without options: the answer stays"
    assert task.issues.get().created_by_label == "plugin QA bot"


def test_requeue_options_clear_the_answer_and_say_what_they_ignored(
    job_key: dict[str, Any],
) -> None:
    task = job_key["task"]
    requeued = rest(
        job_key,
        f"/v2/project/{job_key['project']}/requeueTasks",
        {
            "toStageId": "Label",
            "filters": {"taskIds": [str(task.pk)]},
            "options": {"removeAnnotations": True, "removeAssignee": True},
        },
    )
    assert requeued.status_code == 200, requeued.content
    assert requeued.json()["data"]["ignoredOptions"] == ["removeAssignee"]
    task.refresh_from_db()
    assert (task.stage, task.answer) == ("Label", {})
    sent_back = task.events.filter(name=events.TASK_SENT_BACK).get()
    assert sent_back.data["answerRemoved"] is True
    assert task.events.filter(name=events.LABEL_SUBMITTED).exists()  # history kept


def test_rest_refuses_what_it_cannot_do_and_changes_nothing(
    workspace: Any, job_key: dict[str, Any]
) -> None:
    task = job_key["task"]
    theirs = workspace.other_project.tasks.first()
    requeue = f"/v2/project/{job_key['project']}/requeueTasks"
    cases = [
        ("/v2/issues", {"content": "x", "labelTask": str(theirs.pk)}, 404),
        ("/v2/issues", {"content": " ", "labelTask": str(task.pk)}, 400),
        (requeue, {"toStageId": "Label", "filters": {}}, 400),
        (requeue, {"toStageId": "Nowhere", "filters": {"taskIds": [task.pk]}}, 400),
        (
            requeue,
            {"filters": {"taskIds": [task.pk]}, "options": {"removeAnswers": True}},
            400,
        ),
        (requeue, {"filters": {"taskIds": [task.pk]}, "options": [1]}, 400),
        (
            f"/v2/project/{workspace.other_project.pk}/requeueTasks",
            {"toStageId": "", "filters": {"taskIds": [theirs.pk]}},
            403,
        ),
        (f"/v2/task/{task.pk}/metadata", {"metadata": [1]}, 400),
        (f"/v2/task/{theirs.pk}/metadata", {"metadata": {"a": 1}}, 404),
    ]
    for path, body, status in cases:
        response = rest(job_key, path, body)
        assert response.status_code == status, (path, body, response.content)
        assert response.json()["status"] == "fail" and response.json()["message"]
    task.refresh_from_db()
    theirs.refresh_from_db()
    assert task.stage == "Review" and not task.issues.exists() and not task.metadata
    assert theirs.stage == "Label" and not theirs.issues.exists()
    assert (
        Client().post("/v2/issues", "{}", content_type="application/json").status_code
        == 401
    )


def test_beat_creates_the_runs_of_triggers_whose_celery_task_was_lost(
    workspace: Any, make_plugin: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from plugins_app.runs.tasks import retrigger_missed_events

    registered = event_plugin(make_plugin, workspace)
    PluginTrigger.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    # Submitted without the on-commit listener running: the trigger was lost.
    lost = task_submit(in_label(workspace), user=workspace.annotator, answer=ANSWER)
    fresh = task_submit(
        in_label(workspace, "coins"), user=workspace.annotator, answer=ANSWER
    )
    minute_ago = timezone.now() - timedelta(minutes=1)
    TaskEvent.objects.filter(task=lost).update(created_at=minute_ago)

    assert retrigger_missed_events.apply().get() == 1
    assert retrigger_missed_events.apply().get() == 0

    run = Run.objects.get(plugin=registered.plugin)
    assert run.task_id == lost.pk and run.trigger == events.LABEL_SUBMITTED
    # Too recent (its task may still be in the broker): left alone for now.
    assert not Run.objects.filter(task=fresh).exists()
    # An event from before the trigger was set never runs it.
    PluginTrigger.objects.update(created_at=timezone.now())
    TaskEvent.objects.filter(task=fresh).update(created_at=minute_ago)
    assert retrigger_missed_events.apply().get() == 0


def test_registering_an_event_plugin_with_triggers_and_refusing_them_elsewhere(
    workspace: Any,
) -> None:
    admin = client_for(workspace.admin)
    form = {
        "name": "Checker",
        "type": "event",
        "default_config": "{}",
        "timeout_seconds": 60,
        "concurrency": 1,
        "projects": [workspace.project.pk],
        "trigger_events": ["label.reviewed"],
    }

    created = admin.post("/plugins/new/", form, HTTP_HX_REQUEST="true")
    refused = admin.post(
        "/plugins/new/",
        {**form, "name": "Model", "type": "model", "class_names_text": "face"},
        HTTP_HX_REQUEST="true",
    )

    assert created.status_code == 200 and "PLUGIN_SECRET" in created.content.decode()
    trigger = PluginTrigger.objects.get(plugin__name="Checker")
    assert (trigger.project, trigger.events) == (workspace.project, ["label.reviewed"])
    page = admin.get(f"/plugins/{trigger.plugin_id}/").content.decode()
    assert 'id="plugin-triggers"' in page and "label.reviewed" in page
    assert "Only Event-triggered plugins run on events." in refused.content.decode()
    assert not PluginTrigger.objects.filter(plugin__name="Model").exists()


def test_a_double_submit_racing_past_the_check_gets_the_same_refusal(
    workspace: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db.models import QuerySet

    from plugins_app.workspace.models import Submission

    workspace.project.labels_per_asset = 2
    workspace.project.save()
    task = in_label(workspace)
    Submission.objects.create(task=task, user=workspace.annotator, answer={})
    # As if the other request's row was not visible yet when this one checked.
    monkeypatch.setattr(QuerySet, "exists", lambda self: False)

    with pytest.raises(TaskActionError, match="already submitted"):
        task_submit(task, user=workspace.annotator, answer=ANSWER)
    assert task.submissions.count() == 1 and not task.events.exists()
