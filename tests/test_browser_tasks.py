"""The task page in a real browser (Chromium, Playwright): a labeler submits
with htmx (CSRF from the page's hx-headers), the panel swaps in place without
a reload, the labeler is not offered the review, a reviewer rejects with a
reason, the history shows every event."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from plugins_app.workspace import events
from plugins_app.workspace.lifecycle import (
    issue_create,
    task_metadata_update,
    task_send_back,
    task_submit,
)
from plugins_app.workspace.models import Membership, Task
from tests.test_browser import (  # noqa: F401 - pytest fixtures
    Tab,
    browser,
    expect,
    log_in,
    tab,
)

ANSWER = {
    "tools": [
        {
            "schemaId": "face-box",
            "objectId": "f1",
            "bounding-box": {"x": 170, "y": 60, "width": 100, "height": 110},
        }
    ],
    "classifications": [],
    "relations": [],
}


def test_a_labeler_submits_and_a_reviewer_rejects_on_the_task_page(
    workspace: Any,
    live_hub: Any,
    tab: Tab,  # noqa: F811
) -> None:
    page = tab.page
    task = workspace.asset("astronaut").task
    # The pre-label the labeler submits from the review canvas as it is.
    Task.objects.filter(pk=task.pk).update(answer=ANSWER)
    log_in(page, live_hub, "bob")
    page.goto(f"{live_hub.url}/projects/{workspace.project.pk}/")
    page.locator("#project-tasks").get_by_role(
        "link", name=f"task #{task.pk}", exact=True
    ).click()
    expect(page.locator("#task-stage")).to_have_text("Label")
    navigations = tab.mark()

    expect(page.locator("#canvas")).to_have_attribute("data-ready", "true")
    page.get_by_role("button", name="Submit").click()

    expect(page.locator("#task-stage")).to_have_text("Review")
    expect(page.locator("#task-history")).to_contain_text(events.LABEL_SUBMITTED)
    # An annotator does not review: the panel says who does.
    expect(page.locator("#task-awaiting-review")).to_be_visible()
    expect(page.get_by_role("button", name="Accept")).to_have_count(0)
    tab.assert_not_reloaded(navigations)
    task.refresh_from_db()
    assert task.answer["tools"][0]["objectId"] == "f1"

    reviewer = User.objects.create_user("dora", password="pw")
    Membership.objects.create(
        user=reviewer, organization=workspace.org, role=Membership.Role.REVIEWER
    )
    page.get_by_role("button", name="Log out").click()
    log_in(page, live_hub, "dora")
    page.goto(f"{live_hub.url}/projects/{workspace.project.pk}/tasks/{task.pk}/")
    # Reject without a reason: the browser refuses it, nothing is sent.
    page.get_by_role("button", name="Reject").click()
    assert page.locator("#task-reason").evaluate("e => e.validity.valueMissing")
    expect(page.locator("#task-stage")).to_have_text("Review")
    task.refresh_from_db()
    assert task.stage == "Review"
    page.locator("#task-reason").fill("<b>box misses the chin</b>")
    page.get_by_role("button", name="Reject").click()

    expect(page.locator("#task-stage")).to_have_text("Label")
    history = page.locator("#task-history")
    expect(history).to_contain_text(events.TASK_SENT_BACK)
    expect(history).to_contain_text("<b>box misses the chin</b>")  # shown as text
    assert page.locator("#task-history b").count() == 0
    task.refresh_from_db()
    assert (task.stage, task.status) == ("Label", Task.Status.TODO)


def test_the_task_page_shows_what_a_plugin_did_without_a_reload(
    workspace: Any,
    live_hub: Any,
    tab: Tab,  # noqa: F811
) -> None:
    """A QA plugin acting while the reviewer looks: the issue, the metadata and
    the send-back appear, and the Accept/Reject panel gives way to Submit."""
    page = tab.page
    task = task_submit(
        workspace.asset("astronaut").task, user=workspace.annotator, answer=ANSWER
    )
    log_in(page, live_hub, "alice")
    page.goto(f"{live_hub.url}/projects/{workspace.project.pk}/tasks/{task.pk}/")
    expect(page.locator("#task-accept")).to_be_visible()
    navigations = tab.mark()

    issue_create(task, content="Box misses the chin", actor_label="plugin QA bot")
    task_metadata_update(task, {"qa": "failed"})
    task_send_back(task, actor_label="plugin QA bot", reason="QA failed")

    expect(page.locator("#task-issues")).to_contain_text("Box misses the chin")
    expect(page.locator("#task-metadata")).to_contain_text("failed")
    expect(page.locator("#task-stage")).to_have_text("Label")
    expect(page.locator("#task-submit")).to_be_visible()
    assert page.locator("#task-accept").count() == 0
    tab.assert_not_reloaded(navigations)


def test_an_admin_gives_the_reviewer_role_on_the_members_page(
    workspace: Any,
    live_hub: Any,
    tab: Tab,  # noqa: F811
) -> None:
    page = tab.page
    log_in(page, live_hub, "alice")
    page.get_by_role("link", name="Members").click()
    navigations = tab.mark()
    bob = Membership.objects.get(user=workspace.annotator)
    row = page.locator(f"#member-{bob.pk}")

    row.get_by_label("Role of bob").select_option("reviewer")
    row.get_by_role("button", name="Save").click()

    expect(page.locator(f"#member-{bob.pk}")).to_contain_text("Saved.")
    tab.assert_not_reloaded(navigations)  # htmx swapped the row (CSRF header)
    bob.refresh_from_db()
    assert bob.role == Membership.Role.REVIEWER
