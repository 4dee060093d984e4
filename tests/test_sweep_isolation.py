"""The runs sweep isolates plugins: one plugin whose data makes its step raise
is logged, naming it, and every other plugin is still timed out and dispatched."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from plugins_app.plugins.models import Plugin
from plugins_app.runs.models import Run, WorkItem
from plugins_app.runs.sweep import runs_sweep
from tests.builders import connect_instance, new_run, pass_deadline


@pytest.mark.django_db(transaction=True)
def test_it_sweeps_the_other_plugins_past_one_that_raises(
    workspace: Any, make_plugin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    broken = make_plugin(name="Broken", timeout=1, max_attempts=1).plugin
    healthy = make_plugin(name="Healthy").plugin
    late = make_plugin(name="Late", max_attempts=1).plugin
    for plugin in (broken, healthy, late):
        connect_instance(plugin, f"c!{plugin.pk}")
    broken_run = new_run(workspace, broken, "astronaut")
    healthy_run = new_run(workspace, healthy, "coins")
    late_run = new_run(workspace, late, "camera", dispatch=True)
    assert WorkItem.objects.get(run=late_run).state == WorkItem.State.LEASED
    pass_deadline(late_run)
    # A plugin row this version cannot build jobs for (say, a type written by a
    # newer release before a downgrade): its dispatch raises every time.
    Plugin.objects.filter(pk=broken.pk).update(type="retired-kind")
    caplog.set_level(logging.ERROR, logger="plugins_app.ops.isolation")

    counts = runs_sweep()

    healthy_item = WorkItem.objects.get(run=healthy_run)
    assert healthy_item.state == WorkItem.State.LEASED  # dispatched all the same
    late_item = WorkItem.objects.get(run=late_run)
    assert late_item.state == WorkItem.State.FAILED  # timed out all the same
    assert counts == {"timed_out": 1, "requeued": 0, "dispatched": 1}
    assert WorkItem.objects.get(run=broken_run).state == WorkItem.State.PENDING
    assert Run.objects.get(pk=broken_run.pk).status == Run.Status.QUEUED
    [record] = caplog.records
    assert record.getMessage() == (
        f"sweep: dispatch failed for plugin {broken.public_id}; the other plugins go on"
    )
    assert record.plugin_id == broken.public_id
    assert record.exc_info is not None

    # The next sweep does the same: the broken plugin never stops the others.
    second = new_run(workspace, healthy, "coffee")
    caplog.clear()
    runs_sweep()
    assert WorkItem.objects.get(run=second).state == WorkItem.State.LEASED
    assert len(caplog.records) == 1
