"""A Model answer claimed and read in one statement (runs/answer_row.py): no
model instance is built for the common case, the parsed ontology follows the
project's as it changes, a refused answer ends its item failed, the history
keeps the replaced answer exactly (spliced in as text), and the whole answer
is 8 statements on SQLite (BEGIN included), 4 on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models.signals import post_init
from django.utils import timezone

from plugins_app.plugins.models import Plugin
from plugins_app.plugins.versions import served_version
from plugins_app.runs import answer_row
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.models import Run, WorkItem
from plugins_app.runs.responses import item_respond
from plugins_app.workspace import events
from plugins_app.workspace.models import Project, Task, TaskEvent
from tests.builders import connect_instance, new_run

CHANNEL = "row!one"
BOX = {"x": 1, "y": 2, "width": 3, "height": 4}
ANSWER = {"objects": [{"schemaId": "face-box", "bounding-box": BOX}]}


@pytest.fixture
def plugin(make_plugin: Any) -> Plugin:
    plugin: Plugin = make_plugin(timeout=30).plugin
    connect_instance(plugin, CHANNEL)
    return plugin


def leased(workspace: Any, plugin: Plugin, external_id: str = "astronaut") -> WorkItem:
    run = new_run(workspace, plugin, external_id)
    dispatch_pending(plugin.pk)
    item = run.items.get()
    assert item.state == WorkItem.State.LEASED
    return item


def respond(item: WorkItem, response: Any = ANSWER) -> str:
    return item_respond(
        session=item.session,
        payload={"session": item.session, "response": response},
        channel_name=CHANNEL,
    )


def test_it_applies_an_answer_without_building_a_model_instance(
    workspace: Any, plugin: Plugin
) -> None:
    """The ORM read built six (item, run, plugin, project, asset, instance)."""
    item = leased(workspace, plugin)
    built: list[str] = []

    def count(sender: Any, **kwargs: Any) -> None:
        built.append(sender.__name__)

    post_init.connect(count)
    try:
        assert respond(item) == "done"
    finally:
        post_init.disconnect(count)
    assert built == []
    assert Run.objects.get(pk=item.run_id).status == Run.Status.SUCCEEDED


def test_the_claim_returns_what_the_orm_reads_of_its_item(
    workspace: Any, plugin: Plugin
) -> None:
    """Each id, name and version the claim returns is the ORM's."""
    # A run id past the plugin's (a deleted run's id is not given again), so
    # that the run's id taken for the plugin's shows.
    while (spent := new_run(workspace, plugin)).pk <= plugin.pk:
        spent.delete()
    spent.delete()
    item = leased(workspace, plugin)
    item = WorkItem.objects.select_related("run", "asset", "instance").get(pk=item.pk)
    assert item.run_id != plugin.pk
    with transaction.atomic():
        row = answer_row.claim_answer(item.session, CHANNEL, timezone.now())
    assert row is not None
    assert (row.item_id, row.run_id, row.plugin_id) == (item.pk, item.run_id, plugin.pk)
    assert (row.instance_id, row.asset_id) == (item.instance_id, item.asset_id)
    assert (row.plugin_name, row.external_id) == (plugin.name, "astronaut")
    assert row.run_version == item.run.plugin_version
    assert row.version == served_version(plugin, item.instance)
    assert WorkItem.objects.get(pk=item.pk).state == WorkItem.State.DONE


def test_it_checks_against_the_ontology_as_it_is_now(
    workspace: Any, plugin: Plugin
) -> None:
    """The parsed ontology is kept per text: one parse for a run's answers,
    and a changed ontology is a new text, parsed anew (never a stale copy)."""
    answer_row._parsed_text.cache_clear()
    assert respond(leased(workspace, plugin)) == "done"
    assert respond(leased(workspace, plugin, "coins")) == "done"
    info = answer_row._parsed_text.cache_info()
    assert info.hits >= 1

    project = Project.objects.get(pk=workspace.project.pk)
    ontology = dict(project.ontology)
    ontology["tools"] = [t for t in ontology["tools"] if t["schemaId"] != "face-box"]
    Project.objects.filter(pk=project.pk).update(ontology=ontology)
    item = leased(workspace, plugin)

    assert respond(item) == "invalid"
    item.refresh_from_db()
    assert (item.state, item.failure) == (WorkItem.State.FAILED, "invalid")
    assert "face-box" in item.error and item.finished_at is not None
    assert item.plugin_version == Run.objects.get(pk=item.run_id).plugin_version


def test_an_answer_is_one_statement_fewer_than_a_read_then_a_claim(
    workspace: Any, plugin: Plugin
) -> None:
    """The claim returns what applying reads: no SELECT of its own. SQLite:
    the claim, the ledger row, the task, its history, the close, the keys,
    the log lines (8 with the read before, BEGIN aside); PostgreSQL: the
    claim, the pre-label, the run's lock, the settle (5 before)."""
    item = leased(workspace, plugin)
    statements: list[str] = []

    def count(execute: Any, sql: str, *args: Any) -> Any:
        statements.append(sql.split(None, 1)[0].upper())
        return execute(sql, *args)

    with connection.execute_wrapper(count):
        assert respond(item) == "done"
    # The test's transaction turns BEGIN … COMMIT into a savepoint's pair.
    control = {"BEGIN", "SAVEPOINT", "RELEASE"}
    statements = [s for s in statements if s not in control]
    assert statements[0] == "UPDATE", statements
    expected = 4 if connection.vendor == "postgresql" else 7
    assert len(statements) == expected, statements
    assert Run.objects.get(pk=item.run_id).status == Run.Status.SUCCEEDED


def test_a_refused_answer_fails_its_item_and_its_run(
    workspace: Any, plugin: Plugin
) -> None:
    item = leased(workspace, plugin)
    task = workspace.asset("astronaut").task
    before = Task.objects.values_list("answer", "status").get(pk=task.pk)

    assert respond(item, {"objects": [{"schemaId": "nope", "point": [1]}]}) == (
        "invalid"
    )

    item.refresh_from_db()
    assert item.state == WorkItem.State.FAILED
    assert item.error.startswith("The plugin's answer was rejected:\n• ")
    assert Task.objects.values_list("answer", "status").get(pk=task.pk) == before
    run = Run.objects.get(pk=item.run_id)
    assert run.status == Run.Status.FAILED and run.error == item.error
    lines = list(run.log_lines.order_by("id").values_list("level", "message"))
    assert lines[-2] == ("ERROR", item.error) and lines[-1] == ("HUB", "Run failed.")
    assert respond(item) == "stale"  # a late second answer changes nothing


@pytest.mark.parametrize(
    ("held", "recorded"),
    [
        ({}, {}),
        ([], {}),
        ({"tools": [{"schemaId": "x", "title": 'Zoë \u2603 "q"'}]}, None),
    ],
)
def test_the_history_keeps_the_replaced_answer_exactly(
    workspace: Any, plugin: Plugin, held: Any, recorded: Any
) -> None:
    task = workspace.asset("astronaut").task
    Task.objects.filter(pk=task.pk).update(answer=held)
    item = leased(workspace, plugin)

    assert respond(item) == "done"

    event = TaskEvent.objects.get(task=task, name=events.ANSWER_WRITTEN)
    assert event.data["previousAnswer"] == (held if recorded is None else recorded)
    assert (event.data["run"], event.data["plugin"]) == (item.run_id, plugin.name)
