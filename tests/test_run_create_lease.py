"""Creating a run: the run, its items and the lease of the first ones in one
transaction when an instance is free, the jobs sent only after the commit, and
a crash in between recovered by the sweep. The API's token auth refuses a
revoked token at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from plugins_app.plugins.models import Plugin, PluginInstance, lease_ttl
from plugins_app.runs.dispatch.leases import lease
from plugins_app.runs.models import Run, RunApiKey, WorkItem
from plugins_app.runs.sweep import runs_sweep
from plugins_app.wire.models import OutboxMessage
from plugins_app.workspace.models import ApiToken
from tests.builders import connect_instance, new_run
from tests.test_api import api_token

FIRST, SECOND = "test!first", "test!second"


def jobs_sent() -> list[str]:
    """The channels that jobs were sent to, through the outbox."""
    sent = OutboxMessage.objects.filter(method="send").values_list("target", flat=True)
    return list(sent)


@pytest.fixture
def plugin(make_plugin: Any) -> Plugin:
    return make_plugin(timeout=5).plugin


def test_a_run_is_leased_in_the_transaction_that_creates_it(
    workspace: Any, plugin: Plugin, django_capture_on_commit_callbacks: Any
) -> None:
    connect_instance(plugin, FIRST)
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            run = new_run(workspace, plugin, "astronaut", dispatch=True)
            # Still inside the creating transaction: leased already, with its
            # API key, and nothing sent yet.
            item = run.items.get()
            assert item.state == WorkItem.State.LEASED and item.attempts == 1
            assert item.instance is not None and item.instance.channel_name == FIRST
            assert Run.objects.get(pk=run.pk).status == Run.Status.RUNNING
            assert RunApiKey.objects.filter(run=run).count() == 1
            assert not OutboxMessage.objects.exists()
    # After the commit the job goes out (to the outbox: no ASGI loop here).
    assert jobs_sent() == [FIRST]
    lines = list(run.log_lines.values_list("message", flat=True))
    assert lines[0].startswith("Run created by")
    assert lines[1] == "Job sent to instance at test!first:1 for astronaut."


def test_a_crash_between_create_and_delivery_is_recovered_by_the_sweep(
    workspace: Any, plugin: Plugin, django_capture_on_commit_callbacks: Any
) -> None:
    connect_instance(plugin, FIRST)
    # The process dies right after the commit: the after-commit hooks (the
    # job's delivery) never run, and the instance's socket dies with it.
    with django_capture_on_commit_callbacks(execute=False):
        run = new_run(workspace, plugin, "astronaut", dispatch=True)
    item = run.items.get()
    assert item.state == WorkItem.State.LEASED and not OutboxMessage.objects.exists()
    silent_since = timezone.now() - 2 * lease_ttl()
    PluginInstance.objects.filter(channel_name=FIRST).update(
        last_seen_at=silent_since, last_heartbeat=silent_since
    )
    WorkItem.objects.filter(pk=item.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    connect_instance(plugin, SECOND)

    with django_capture_on_commit_callbacks(execute=True):
        assert runs_sweep() == {"timed_out": 0, "requeued": 1, "dispatched": 1}

    item.refresh_from_db()
    assert item.state == WorkItem.State.LEASED and item.attempts == 2
    assert item.instance is not None and item.instance.channel_name == SECOND
    assert jobs_sent() == [SECOND]


def test_a_revoked_or_deactivated_token_is_refused_at_once(workspace: Any) -> None:
    token = api_token("bob")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/projects").status_code == 200
    assert client.get("/api/projects").status_code == 200

    ApiToken.objects.filter(user=workspace.annotator).delete()
    assert client.get("/api/projects").status_code == 401

    token = api_token("bob")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/projects").status_code == 200
    workspace.annotator.is_active = False
    workspace.annotator.save(update_fields=["is_active"])
    assert client.get("/api/projects").status_code == 401


@pytest.mark.parametrize("instances", [1, 2])
def test_each_instance_leased_to_stores_its_last_dispatch(
    workspace: Any, plugin: Plugin, instances: int
) -> None:
    """Guard: the allocator's tie-break (last_dispatch_at) is stored for every
    instance a lease went to, one (one UPDATE) or several (executemany)."""
    connect_instance(plugin, FIRST)
    run = new_run(workspace, plugin, "astronaut", "coins", "camera")
    fleet = [connect_instance(plugin, c) for c in (FIRST, SECOND)[:instances]]
    items = list(run.items.select_related("run__plugin", "asset").order_by("pk"))
    for n, item in enumerate(items):
        item.instance = fleet[n % instances]
    now = timezone.now()
    with transaction.atomic():
        won = lease(items, now=now)

    assert len(won) == 3
    stored = dict(
        PluginInstance.objects.filter(plugin=plugin).values_list(
            "channel_name", "last_dispatch_at"
        )
    )
    assert stored == {i.channel_name: now for i in fleet}
