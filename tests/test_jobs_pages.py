"""The labeling jobs page and the task page with jobs, over HTTP (Django's
test client): admins edit, members read, refusals are 4xx with a clear
message; a job's member submits only their part; someone in no job gets no
Submit; the labeler's task list says which of their jobs wait."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from plugins_app.workspace.jobs import job_set_members, project_set_jobs
from plugins_app.workspace.models import LabelingJob, Membership, Task

BOX = {"x": 10.0, "y": 10.0, "width": 40.0, "height": 30.0}


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def member(workspace: Any, name: str, role: str = Membership.Role.ANNOTATOR) -> User:
    user = User.objects.create_user(name, f"{name}@x.test", "pw")
    Membership.objects.create(user=user, organization=workspace.org, role=role)
    return user


def form(rows: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {"rows": str(len(rows))}
    for i, row in enumerate(rows):
        data[f"name-{i}"] = row.get("name", "")
        for key in ("tools", "classifications", "members", "delete"):
            if key in row:
                data[f"{key}-{i}"] = row[key]
    return data


@pytest.fixture
def jobs(workspace: Any) -> dict[str, Any]:
    """Two jobs on the workspace's project: boxes (bob) and the scene (dave)."""
    dave = member(workspace, "dave")
    boxes, scene = project_set_jobs(
        workspace.project,
        [
            {"name": "Boxes", "tools": ["face-box", "coin-box"]},
            {"name": "Scene", "classifications": ["scene"]},
        ],
    )
    job_set_members(boxes, [workspace.annotator])
    job_set_members(scene, [dave])
    return {"boxes": boxes, "scene": scene, "dave": dave}


def test_it_lets_an_admin_create_jobs_and_assign_members(workspace: Any) -> None:
    dave = member(workspace, "dave")
    url = f"/projects/{workspace.project.pk}/jobs/"
    response = client_for(workspace.admin).post(
        url,
        form(
            [
                {
                    "name": "Boxes",
                    "tools": ["face-box", "coin-box"],
                    "members": [str(workspace.annotator.pk)],
                },
                {
                    "name": "Scene",
                    "classifications": ["scene"],
                    "members": [str(dave.pk)],
                },
                {"name": ""},  # the empty "add a job" row
            ]
        ),
    )

    assert response.status_code == 200
    assert "Saved 2 job(s)." in response.content.decode()
    jobs = list(workspace.project.jobs.order_by("position"))
    assert [(j.name, j.tools, j.classifications) for j in jobs] == [
        ("Boxes", ["face-box", "coin-box"], []),
        ("Scene", [], ["scene"]),
    ]
    assert list(jobs[0].members.all()) == [workspace.annotator]
    assert list(jobs[1].members.all()) == [dave]
    # The saved page marks a tool of one job as taken in the other's row.
    page = client_for(workspace.admin).get(url).content.decode()
    assert "taken by Boxes" in page and "taken by Scene" in page


def test_it_refuses_bad_jobs_with_a_clear_400_and_keeps_the_input(
    workspace: Any, jobs: dict[str, Any]
) -> None:
    url = f"/projects/{workspace.project.pk}/jobs/"
    admin = client_for(workspace.admin)
    cases = [
        # A tool in two jobs.
        (
            [
                {"name": "A", "tools": ["face-box"]},
                {"name": "B", "tools": ["face-box"]},
            ],
            "each tool or classification belongs to one job",
        ),
        # Not in the ontology.
        ([{"name": "A", "tools": ["nope"]}], "is not one of the ontology"),
        # Two jobs of the same name.
        (
            [
                {"name": "A", "tools": ["face-box"]},
                {"name": "A", "tools": ["coin-box"]},
            ],
            "names must differ",
        ),
        # Someone of another organization as a member.
        (
            [
                {
                    "name": "Boxes",
                    "tools": ["face-box"],
                    "members": [str(workspace.outsider.pk)],
                }
            ],
            "only members of this organization",
        ),
        # A name but nothing to label.
        ([{"name": "Empty"}], "has no tool and no classification"),
    ]
    for rows, message in cases:
        response = admin.post(url, form(rows))
        assert response.status_code == 400, rows
        body = response.content.decode()
        assert message in body, (rows, body[:2000])
        assert f'value="{rows[0]["name"]}"' in body  # what was typed stays
    # Nothing changed (all or nothing): the outsider was refused after the
    # jobs themselves were valid.
    assert [j.name for j in workspace.project.jobs.all()] == ["Boxes", "Scene"]
    assert list(jobs["boxes"].members.all()) == [workspace.annotator]
    # htmx shows the refusal in place (htmx swaps only 2xx).
    response = admin.post(url, form(cases[0][0]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert 'id="jobs-error"' in response.content.decode()
    assert "<html" not in response.content.decode()


def test_it_shows_jobs_read_only_to_members_and_hides_them_from_outsiders(
    workspace: Any, jobs: dict[str, Any]
) -> None:
    url = f"/projects/{workspace.project.pk}/jobs/"
    bob = client_for(workspace.annotator)
    page = bob.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="jobs-table"' in body and 'id="jobs-form"' not in body
    assert bob.post(url, form([])).status_code == 403
    assert workspace.project.jobs.count() == 2
    assert client_for(workspace.outsider).get(url).status_code == 404


def test_it_deletes_a_job_and_refuses_one_with_submitted_work(
    workspace: Any, jobs: dict[str, Any]
) -> None:
    url = f"/projects/{workspace.project.pk}/jobs/"
    admin = client_for(workspace.admin)
    keep_scene = {
        "name": "Scene",
        "classifications": ["scene"],
        "members": [str(jobs["dave"].pk)],
    }
    boxes = {"name": "Boxes", "tools": ["face-box", "coin-box"], "delete": "1"}
    response = admin.post(url, form([boxes, keep_scene]))
    assert response.status_code == 200
    assert [j.name for j in workspace.project.jobs.all()] == ["Scene"]

    task = workspace.asset("astronaut").task
    scene = {"classifications": [{"schemaId": "scene", "answer": "photo"}]}
    submitted = client_for(jobs["dave"]).post(
        submit_url(workspace, task, jobs["scene"]), {"answer": json.dumps(scene)}
    )
    assert submitted.status_code == 302
    response = admin.post(url, form([{**keep_scene, "delete": "1"}]))
    assert response.status_code == 400
    assert "hold submitted labels" in response.content.decode()
    assert LabelingJob.objects.filter(pk=jobs["scene"].pk).exists()


def submit_url(workspace: Any, task: Task, job: LabelingJob) -> str:
    return f"/projects/{workspace.project.pk}/tasks/{task.pk}/jobs/{job.pk}/submit/"


def test_members_submit_their_job_and_the_task_goes_to_review(
    workspace: Any, jobs: dict[str, Any]
) -> None:
    task = workspace.asset("astronaut").task
    page_url = f"/projects/{workspace.project.pk}/tasks/{task.pk}/"
    bob = client_for(workspace.annotator)
    page = bob.get(page_url).content.decode()
    # Bob's canvas draws his job's labels; the form posts his job's part.
    assert 'id="task-job"' in page and "<strong>Boxes</strong>" in page
    assert submit_url(workspace, task, jobs["boxes"]) in page
    state = json.loads(
        page.split('id="canvas-state" type="application/json">')[1].split("</script>")[
            0
        ]
    )
    assert state["job"]["name"] == "Boxes"
    assert [t["schemaId"] for t in state["tools"] if t["inJob"]] == [
        "face-box",
        "coin-box",
    ]
    assert state["classifications"] == []  # the scene is the other job's

    # Bob sends a box and a scene answer: only his part (the box) is his.
    answer = {
        "tools": [{"schemaId": "face-box", "objectId": "f1", "bounding-box": BOX}],
        "classifications": [{"schemaId": "scene", "answer": "document"}],
    }
    response = bob.post(
        submit_url(workspace, task, jobs["boxes"]),
        {"answer": json.dumps(answer)},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and response.headers["HX-Refresh"] == "true"
    task.refresh_from_db()
    assert task.stage == "Label"
    assert task.answer["classifications"] == []
    # Twice the same job: refused in place, clearly.
    again = bob.post(
        submit_url(workspace, task, jobs["boxes"]), {"answer": json.dumps(answer)}
    )
    assert again.status_code == 409
    assert "already" in again.content.decode()
    # With htmx, the refusal is shown in the task panel, in place.
    again = bob.post(
        submit_url(workspace, task, jobs["boxes"]), {}, HTTP_HX_REQUEST="true"
    )
    assert again.status_code == 200
    assert 'id="task-action-error"' in again.content.decode()
    assert "<html" not in again.content.decode()
    # The scene member cannot submit Bob's job.
    dave = client_for(jobs["dave"])
    refused = dave.post(submit_url(workspace, task, jobs["boxes"]), {"answer": "{}"})
    assert refused.status_code == 403

    scene = {"classifications": [{"schemaId": "scene", "answer": "photo"}]}
    response = dave.post(
        submit_url(workspace, task, jobs["scene"]), {"answer": json.dumps(scene)}
    )
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.stage == "Review"
    assert task.answer["tools"][0]["objectId"] == "f1"
    assert task.answer["classifications"] == scene["classifications"]
    page = client_for(workspace.admin).get(page_url).content.decode()
    assert 'id="task-jobs"' in page
    assert "bob" in page.split('id="task-jobs"')[1].split("</table>")[0]
    assert "dave" in page.split('id="task-jobs"')[1].split("</table>")[0]


def test_someone_in_no_job_sees_why_and_no_submit(
    workspace: Any, jobs: dict[str, Any]
) -> None:
    task = workspace.asset("astronaut").task
    erin = member(workspace, "erin")
    page = client_for(erin).get(f"/projects/{workspace.project.pk}/tasks/{task.pk}/")
    body = page.content.decode()
    assert "not in any labeling job of this project" in body
    assert 'id="task-submit-form"' not in body
    refused = client_for(erin).post(
        submit_url(workspace, task, jobs["boxes"]), {"answer": "{}"}
    )
    assert refused.status_code == 403
    assert "labeling job" in refused.content.decode()
    # Another project's job id is a 404, not someone else's job.
    other = client_for(workspace.annotator).post(
        f"/projects/{workspace.project.pk}/tasks/{task.pk}/jobs/999999/submit/", {}
    )
    assert other.status_code == 404


def test_the_task_list_shows_which_of_my_jobs_wait(
    workspace: Any, jobs: dict[str, Any]
) -> None:
    task = workspace.asset("astronaut").task
    client_for(workspace.annotator).post(
        submit_url(workspace, task, jobs["boxes"]), {"answer": json.dumps({})}
    )
    page = client_for(workspace.annotator).get(f"/projects/{workspace.project.pk}/")
    body = page.content.decode()
    row = body.split(f'data-task="{task.pk}"')[1].split("</tr>")[0]
    assert "Boxes" not in row  # submitted
    other = workspace.project.tasks.exclude(pk=task.pk).first()
    row = body.split(f'data-task="{other.pk}"')[1].split("</tr>")[0]
    assert "Boxes" in row
    assert f'href="/projects/{workspace.project.pk}/jobs/"' in body


def test_someone_in_two_jobs_labels_one_then_the_other(
    workspace: Any, jobs: dict[str, Any]
) -> None:
    job_set_members(jobs["scene"], [jobs["dave"], workspace.annotator])
    task = workspace.asset("astronaut").task
    page_url = f"/projects/{workspace.project.pk}/tasks/{task.pk}/"
    bob = client_for(workspace.annotator)
    page = bob.get(page_url).content.decode()
    # The first job waiting (the project's order), with a way to the other.
    assert submit_url(workspace, task, jobs["boxes"]) in page
    assert f'href="?job={jobs["scene"].pk}"' in page
    page = bob.get(f"{page_url}?job={jobs['scene'].pk}").content.decode()
    assert submit_url(workspace, task, jobs["scene"]) in page
    # The canvas state read again (after a run) stays with the chosen job.
    state = bob.get(
        f"/projects/{workspace.project.pk}/tasks/{task.pk}/canvas/"
        f"?job={jobs['scene'].pk}"
    ).json()
    assert state["job"]["name"] == "Scene"
    assert [c["schemaId"] for c in state["classifications"]] == ["scene"]
    assert not any(t["inJob"] for t in state["tools"])

    bob.post(submit_url(workspace, task, jobs["scene"]), {"answer": "{}"})
    page = bob.get(page_url).content.decode()
    assert submit_url(workspace, task, jobs["boxes"]) in page
    assert 'href="?job=' not in page  # nothing else of his waits
    bob.post(submit_url(workspace, task, jobs["boxes"]), {"answer": "{}"})
    task.refresh_from_db()
    assert task.stage == "Review"
    # A bad ?job= is ignored: the first waiting job, never a 500.
    assert bob.get(f"{page_url}?job=abc").status_code == 200


def test_a_post_without_a_valid_row_count_is_refused_not_read_as_no_jobs(
    workspace: Any, jobs: dict[str, Any]
) -> None:
    url = f"/projects/{workspace.project.pk}/jobs/"
    admin = client_for(workspace.admin)
    for rows in (None, "", "abc", "-1", "²", "9" * 5000, "22"):
        data = {} if rows is None else {"rows": rows}
        response = admin.post(url, data)
        assert response.status_code == 400, rows
        assert "how many rows" in response.content.decode()
    junk = {"rows": "1", "name-0": "Boxes", "tools-0": "face-box", "members-0": "x"}
    response = admin.post(url, junk)
    assert response.status_code == 400
    assert "user ids" in response.content.decode()
    assert [j.name for j in workspace.project.jobs.all()] == ["Boxes", "Scene"]
    # An empty form that says so turns parallel labeling off.
    response = admin.post(url, {"rows": "0"})
    assert response.status_code == 200
    assert "No jobs: tasks label as before." in response.content.decode()
    assert not workspace.project.jobs.exists()
