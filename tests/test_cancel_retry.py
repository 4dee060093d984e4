"""Cancel and retry from the run page (htmx buttons) and the JSON API: members of
the run's organization may, outsiders get a 404, and a cancelled job's late
answer changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.models import Run, WorkItem
from plugins_app.runs.responses import item_respond
from plugins_app.workspace.models import Task
from tests.builders import CHANNEL, connect_instance, new_run
from tests.test_api import bearer

ANSWER = {
    "objects": [
        {
            "schemaId": "face-box",
            "bounding-box": {"x": 1, "y": 2, "width": 3, "height": 4},
        }
    ]
}


def browser(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def running(workspace: Any, make_plugin: Any) -> Run:
    """A run of two assets, one in an instance's hands, one waiting."""
    plugin = make_plugin().plugin
    plugin.concurrency = 1
    plugin.save()
    connect_instance(plugin, CHANNEL)
    run = new_run(workspace, plugin, "astronaut", "coins")
    assert dispatch_pending(plugin.pk) == 1
    return run


@pytest.fixture
def failed(running: Run) -> Run:
    """A finished run: one item failed with the plugin's error, one done."""
    first = running.items.get(state=WorkItem.State.LEASED)
    assert item_respond(
        session=first.session, payload={"error": True}, channel_name=CHANNEL
    )
    dispatch_pending(running.plugin_id)
    second = running.items.get(state=WorkItem.State.LEASED)
    assert item_respond(
        session=second.session, payload={"response": ANSWER}, channel_name=CHANNEL
    )
    running.refresh_from_db()
    assert running.status == Run.Status.FAILED
    return running


# --- the run page ------------------------------------------------------------
def test_it_shows_each_item_and_a_cancel_button_on_a_running_run(
    workspace: Any, running: Run
) -> None:
    page = browser(workspace.annotator).get(f"/runs/{running.pk}/").content.decode()

    assert 'id="run-items"' in page
    assert "astronaut" in page and "coins" in page
    assert "Leased" in page and "Pending" in page
    assert f'hx-post="/runs/{running.pk}/cancel/"' in page
    assert "/retry/" not in page


def test_it_shows_the_reason_of_a_failed_item_and_a_retry_button(
    workspace: Any, failed: Run
) -> None:
    page = browser(workspace.annotator).get(f"/runs/{failed.pk}/").content.decode()

    assert "without logging why" in page  # the failed item's reason
    assert f'hx-post="/runs/{failed.pk}/retry/"' in page
    assert "Retry 1 failed item" in page
    assert "/cancel/" not in page


# --- cancel ------------------------------------------------------------------
def test_it_cancels_a_run_from_its_page(workspace: Any, running: Run) -> None:
    held = running.items.get(state=WorkItem.State.LEASED)

    response = browser(workspace.annotator).post(
        f"/runs/{running.pk}/cancel/", HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    assert 'id="run-live"' in response.content.decode()
    assert "Cancelled" in response.content.decode()
    running.refresh_from_db()
    assert running.status == Run.Status.CANCELLED
    assert set(running.items.values_list("state", flat=True)) == {"cancelled"}
    # The instance answers anyway, later: ignored.
    outcome = item_respond(
        session=held.session, payload={"response": ANSWER}, channel_name=CHANNEL
    )
    assert outcome == "stale"
    assert Task.objects.get(asset=workspace.asset("astronaut")).answer == {}
    assert running.log_lines.filter(message__startswith="Ignored a response").exists()


def test_it_redirects_a_plain_form_post_back_to_the_run(
    workspace: Any, running: Run
) -> None:
    response = browser(workspace.admin).post(f"/runs/{running.pk}/cancel/")

    assert response.status_code == 302
    assert response["Location"] == f"/runs/{running.pk}/"
    running.refresh_from_db()
    assert running.status == Run.Status.CANCELLED


def test_it_hides_runs_of_other_organizations_from_cancel_and_retry(
    workspace: Any, running: Run
) -> None:
    outsider = browser(workspace.outsider)

    assert outsider.post(f"/runs/{running.pk}/cancel/").status_code == 404
    assert outsider.post(f"/runs/{running.pk}/retry/").status_code == 404

    running.refresh_from_db()
    assert running.status == Run.Status.RUNNING


def test_it_only_accepts_posts(workspace: Any, running: Run) -> None:
    assert (
        browser(workspace.annotator).get(f"/runs/{running.pk}/cancel/").status_code
        == 405
    )


# --- retry -------------------------------------------------------------------
def test_it_retries_the_failed_items_from_the_run_page(
    workspace: Any, failed: Run
) -> None:
    response = browser(workspace.annotator).post(
        f"/runs/{failed.pk}/retry/", HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    failed.refresh_from_db()
    assert failed.status in (Run.Status.QUEUED, Run.Status.RUNNING)
    assert failed.error == ""
    retried = failed.items.exclude(state=WorkItem.State.DONE).get()
    assert retried.state in (WorkItem.State.PENDING, WorkItem.State.LEASED)
    assert retried.error == "" and retried.attempts >= 1


def test_it_explains_why_a_running_run_cannot_be_retried(
    workspace: Any, running: Run
) -> None:
    client = browser(workspace.annotator)

    htmx = client.post(f"/runs/{running.pk}/retry/", HTTP_HX_REQUEST="true")
    plain = client.post(f"/runs/{running.pk}/retry/")

    assert htmx.status_code == 200
    assert "Only a finished run can be retried" in htmx.content.decode()
    assert plain.status_code == 409
    running.refresh_from_db()
    assert running.status == Run.Status.RUNNING


# --- the JSON API ------------------------------------------------------------
def test_it_cancels_and_retries_through_the_api(workspace: Any, running: Run) -> None:
    client = bearer(workspace.annotator)

    refused = client.post(f"/api/runs/{running.pk}/retry")
    assert refused.status_code == 409
    assert "Only a finished run" in refused.json()["errors"]["__all__"][0]

    cancelled = client.post(f"/api/runs/{running.pk}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert client.post(f"/api/runs/{running.pk}/cancel").json()["status"] == (
        "cancelled"
    )
    # Cancelled items are not failures: nothing to retry.
    assert client.post(f"/api/runs/{running.pk}/retry").status_code == 409


def test_it_retries_a_failed_run_through_the_api(workspace: Any, failed: Run) -> None:
    response = bearer(workspace.admin).post(f"/api/runs/{failed.pk}/retry")

    assert response.status_code == 200
    assert response.json()["status"] in ("queued", "running")
    assert response.json()["items_failed"] == 0


def test_it_hides_runs_of_other_organizations_from_the_api(
    workspace: Any, running: Run
) -> None:
    client = bearer(workspace.outsider)

    assert client.post(f"/api/runs/{running.pk}/cancel").status_code == 404
    assert client.post(f"/api/runs/{running.pk}/retry").status_code == 404

    running.refresh_from_db()
    assert running.status == Run.Status.RUNNING
