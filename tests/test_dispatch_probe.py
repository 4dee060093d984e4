"""The freed-slot dispatch that every answer asks for: when nothing of the
plugin is pending it costs one statement and no transaction, and it still finds
an item made pending behind its back (another process, the sweep's requeue)."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from plugins_app.plugins.models import PluginInstance
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.models import WorkItem
from tests.builders import new_run


def test_it_costs_one_statement_when_nothing_is_pending_and_finds_what_is(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    PluginInstance.objects.create(plugin=plugin, channel_name="probe!1", address="p:1")
    run = new_run(workspace, plugin, "astronaut")
    assert dispatch_pending(plugin.pk) == 1
    WorkItem.objects.filter(run=run).update(state=WorkItem.State.DONE)

    with CaptureQueriesContext(connection) as queries:
        assert dispatch_pending(plugin.pk) == 0
    assert len(queries) == 1, [q["sql"] for q in queries]

    # Made pending without this process knowing (as a requeue elsewhere does).
    WorkItem.objects.filter(run=run).update(state=WorkItem.State.PENDING, instance=None)
    assert dispatch_pending(plugin.pk) == 1
    assert run.items.get().state == WorkItem.State.LEASED
