"""The conditional state transitions of the ledger (runs/transitions.py): a row
moves only from a state it is still in, and a transition that loses a race (or
comes from the wrong state) changes nothing at all."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from plugins_app.plugins.models import Plugin
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.models import Run, WorkItem
from tests.builders import connect_instance, new_run

S = WorkItem.State


@pytest.fixture
def plugin(make_plugin: Any) -> Plugin:
    plugin = make_plugin().plugin
    connect_instance(plugin)  # runs are refused while no instance is live
    return plugin


def snapshot(item: WorkItem) -> dict[str, Any]:
    item.refresh_from_db()
    return {f.attname: getattr(item, f.attname) for f in WorkItem._meta.fields}


def test_a_transition_from_a_wrong_state_changes_nothing_and_returns_false(
    workspace: Any, plugin: Plugin
) -> None:
    item = new_run(workspace, plugin).items.get()
    before = snapshot(item)

    moved = WorkItem.objects.transition(
        item.pk, S.LEASED, S.DONE, finished_at=timezone.now(), error="late"
    )

    assert moved is False
    assert snapshot(item) == before


def test_a_transition_moves_the_row_and_sets_its_fields_once(
    workspace: Any, plugin: Plugin
) -> None:
    item = new_run(workspace, plugin).items.get()
    now = timezone.now()

    assert WorkItem.objects.transition(
        item.pk, (S.PENDING, S.LEASED), S.FAILED, failure="error", finished_at=now
    )
    # The second racer finds it moved already.
    assert not WorkItem.objects.transition(item.pk, (S.PENDING, S.LEASED), S.DONE)

    item.refresh_from_db()
    assert (item.state, item.failure, item.finished_at) == (S.FAILED, "error", now)


def test_a_transition_held_by_another_instance_changes_nothing(
    workspace: Any, plugin: Plugin
) -> None:
    instance = connect_instance(plugin)  # the fixture's
    item = new_run(workspace, plugin).items.get()
    assert dispatch_pending(plugin.pk) == 1
    before = snapshot(item)

    assert not WorkItem.objects.transition(
        item.pk, S.LEASED, S.PENDING, where={"instance_id": instance.pk + 1}
    )
    assert not WorkItem.objects.transition(
        item.pk, S.LEASED, S.PENDING, where={"instance_id": None}
    )
    assert snapshot(item) == before

    assert WorkItem.objects.transition(
        item.pk, S.LEASED, S.PENDING, where={"instance_id": instance.pk}
    )
    assert snapshot(item)["state"] == S.PENDING
    assert snapshot(item)["instance_id"] == instance.pk
    assert before["instance_id"] == instance.pk


def test_a_filtered_queryset_moves_only_its_rows_in_the_from_states(
    workspace: Any, plugin: Plugin
) -> None:
    run = new_run(workspace, plugin, "astronaut", "coins", "camera")
    other = new_run(workspace, plugin, "astronaut")
    first = run.items.first()
    assert first is not None
    assert WorkItem.objects.transition(first.pk, S.PENDING, S.DONE)

    moved = run.items.transition_all((S.PENDING, S.LEASED), S.CANCELLED, error="x")

    assert moved == 2
    assert sorted(run.items.values_list("state", flat=True)) == sorted(
        [S.DONE, S.CANCELLED, S.CANCELLED]
    )
    assert other.items.get().state == S.PENDING
    # Through a filtered queryset, `transition` keeps the same rule.
    assert not run.items.transition(first.pk, S.PENDING, S.FAILED)
    assert run.items.get(pk=first.pk).state == S.DONE


def test_a_run_moves_on_its_status(workspace: Any, plugin: Plugin) -> None:
    run = new_run(workspace, plugin)

    assert not Run.objects.transition(run.pk, Run.Status.RUNNING, Run.Status.FAILED)
    assert Run.objects.transition(
        run.pk, Run.OPEN, Run.Status.SUCCEEDED, finished_at=timezone.now()
    )
    assert not Run.objects.transition(run.pk, Run.OPEN, Run.Status.CANCELLED)

    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and run.finished_at is not None
