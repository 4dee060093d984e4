"""Parallel labeling in a real browser (Chromium, Playwright) against a live
hub, a real Celery worker and the real merge plugin (examples/
merge_jobs_plugin.py under the imerit-ango SDK): an admin splits the ontology
into two jobs and assigns a member to each on the Labeling jobs page; one
member draws a box for the first job, the other answers the scene for the
second (seeing the first's box greyed); a third member opens the task and
cannot submit; once both are in, the merge plugin runs once and its merged
answer is what the reviewer sees."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User

from plugins_app.plugins.models import PluginType
from plugins_app.plugins.triggers import plugin_set_triggers
from plugins_app.runs.models import Run
from plugins_app.workspace import events
from plugins_app.workspace.models import Membership
from tests.hub import ROOT, PluginProcess
from tests.test_browser import (  # noqa: F401 - pytest fixtures
    Tab,
    browser,
    expect,
    log_in,
    tab,
)
from tests.test_browser_canvas import drag, open_canvas
from tests.test_sdk_event_runs import finished_run

MERGE = ROOT / "examples" / "merge_jobs_plugin.py"
SCREENSHOT = ROOT / "docs" / "screenshots" / "parallel-labeling.png"


@pytest.fixture
def other_page(browser: Any) -> Iterator[Any]:  # noqa: F811
    """Pages of their own (separate cookies), one per signed-in member."""
    contexts = []

    def new_page() -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context.new_page()

    yield new_page
    for context in contexts:
        context.close()


def member(workspace: Any, name: str) -> User:
    user = User.objects.create_user(name, f"{name}@x.test", "pw")
    Membership.objects.create(
        user=user, organization=workspace.org, role=Membership.Role.ANNOTATOR
    )
    return user


def add_job(page: Any, name: str, tools: list[str], member: str) -> None:
    """Fill the jobs page's empty row (the last) and save."""
    row = page.locator("fieldset.job-row").last
    expect(row.locator("legend")).to_have_text("Add a job")
    row.get_by_label("Name").fill(name)
    for label in tools:
        row.locator("label", has_text=label).locator("input").check()
    row.get_by_role("group", name="Members of the new job").get_by_label(
        member, exact=True
    ).check()
    page.get_by_role("button", name="Save jobs").click()


def test_two_members_label_two_jobs_and_the_reviewer_gets_the_merge(
    workspace: Any,
    make_plugin: Any,
    plugin_runner: Any,
    celery_worker: PluginProcess,
    live_hub: Any,
    tab: Tab,  # noqa: F811
    other_page: Any,
) -> None:
    dave, erin = member(workspace, "dave"), member(workspace, "erin")
    registered = make_plugin(
        type=PluginType.EVENT, class_names=[], name="Job merger", default_config="{}"
    )
    plugin_set_triggers(
        registered.plugin,
        projects=[workspace.project],
        event_names=[events.TASK_JOBS_COMPLETE],
    )
    merger = plugin_runner(MERGE, registered, sdk="1.4", wait_live=False)
    project = workspace.project
    task = workspace.asset("astronaut").task

    # The admin makes two jobs, each with one member.
    admin = tab.page
    log_in(admin, live_hub, "alice")
    admin.goto(f"{live_hub.url}/projects/{project.pk}/")
    admin.locator("#project-jobs").click()
    add_job(admin, "Vehicles", ["Face", "Coin"], "bob")
    expect(admin.locator("#jobs-notice")).to_have_text("Saved 1 job(s).")
    add_job(admin, "Scene", ["Scene"], "dave")
    expect(admin.locator("#jobs-notice")).to_have_text("Saved 2 job(s).")
    # The first job's tools are taken in the second's row.
    scene_row = admin.locator("fieldset.job-row", has_text="Job “Scene”")
    expect(scene_row.locator("label.taken", has_text="Face")).to_contain_text(
        "taken by Vehicles"
    )
    assert [(j.name, j.tools, j.classifications) for j in project.jobs.all()] == [
        ("Vehicles", ["face-box", "coin-box"], []),
        ("Scene", [], ["scene"]),
    ]

    # Bob labels the Vehicles job: a face box.
    bob = other_page()
    log_in(bob, live_hub, "bob")
    canvas = open_canvas(bob, live_hub, workspace, task)
    expect(canvas.locator("#canvas-job")).to_contain_text("Vehicles")
    labels = canvas.locator("#canvas-label option")
    expect(labels).to_have_text(["Face (bounding-box)", "Coin (bounding-box)"])
    expect(canvas.locator("#canvas-classifications")).to_have_count(0)
    canvas.get_by_role("button", name="Box").click()
    canvas.locator("#canvas-label").select_option(label="Face (bounding-box)")
    drag(bob, (180, 60), (300, 200))
    expect(canvas.locator("#canvas-objects li")).to_have_count(1)
    bob.get_by_role("button", name="Submit").click()
    expect(bob.locator("#task-no-job")).to_contain_text("Your job(s)")
    expect(bob.locator("#task-jobs tr[data-job='Vehicles']")).to_contain_text("bob")

    # Erin is in no job: told so, and no Submit.
    erin_page = other_page()
    log_in(erin_page, live_hub, "erin")
    open_canvas(erin_page, live_hub, workspace, task)
    expect(erin_page.locator("#task-no-job")).to_contain_text("not in any labeling job")
    expect(erin_page.locator("#task-submit-form")).to_have_count(0)
    expect(erin_page.locator("#canvas")).to_have_class("card review-canvas read-only")

    # Dave labels the Scene job; Bob's box is there, greyed, not his to edit.
    dave_page = other_page()
    log_in(dave_page, live_hub, "dave")
    canvas = open_canvas(dave_page, live_hub, workspace, task)
    expect(canvas.locator("#canvas-job")).to_contain_text("Scene")
    expect(canvas.locator("#canvas-objects li")).to_have_count(1)
    expect(canvas.locator("#canvas-objects li").first).to_contain_text("other job")
    # The Scene job has no box or polygon label: nothing to draw with.
    expect(canvas.get_by_role("button", name="Box")).to_be_disabled()
    canvas.locator("#canvas-classifications").get_by_label("photo").check()
    dave_page.screenshot(path=str(SCREENSHOT), animations="disabled")
    dave_page.get_by_role("button", name="Submit").click()
    expect(dave_page.locator("#task-stage")).to_have_text("Review")

    # Both parts are in: the merge plugin ran once and wrote the answer.
    run = finished_run(task, celery_worker, merger)
    assert run.status == Run.Status.SUCCEEDED, (run.error, merger.log())
    assert Run.objects.filter(task=task).count() == 1
    task.refresh_from_db()
    assert (task.stage, task.prelabel_run_id) == ("Review", run.pk)
    [box] = task.answer["tools"]
    assert box["schemaId"] == "face-box" and 170 < box["bounding-box"]["x"] < 190
    assert task.answer["classifications"] == [{"schemaId": "scene", "answer": "photo"}]
    assert task.metadata["merged_jobs"] == 2
    assert task.submissions.filter(active=True).count() == 2  # the parts stay

    # The reviewer sees the merged answer, the run that wrote it, both jobs.
    admin.goto(f"{live_hub.url}/projects/{project.pk}/tasks/{task.pk}/")
    expect(admin.locator("#task-merged")).to_contain_text(f"run #{run.pk}")
    expect(admin.locator("#task-jobs tr[data-job='Scene']")).to_contain_text("dave")
    canvas = admin.locator("#canvas")
    expect(canvas).to_have_attribute("data-ready", "true")
    expect(canvas.locator("#canvas-objects li")).to_have_count(1)
    expect(canvas.locator("#canvas-objects li").first).to_contain_text("Job merger")
    expect(admin.locator("#task-accept")).to_be_visible()
    assert dave.labeling_jobs.get().name == "Scene"
    assert not erin.labeling_jobs.exists()
