"""The create's statements written once (runs/run_insert.py, runs/create_reads.py,
workspace/rows.py, web/access.py): what they write and read is what the ORM
writes and reads, and the create builds no ORM query.

Runs on SQLite by default and on PostgreSQL with DATABASE_URL set (the
PostgreSQL INSERTs are one statement, a different SQL):

    HUB_METRICS_TOKEN=x-long-enough-test-metrics-token \\
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/create_sql \\
    .venv/bin/python -m pytest tests/test_create_sql.py -q
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models.sql import compiler
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from plugins_app.plugins.models import Plugin, PluginInstance
from plugins_app.runs import create_reads, run_insert
from plugins_app.runs.creation import RunRequest, new_session, run_create_items
from plugins_app.runs.models import (
    PRIORITY_BATCH,
    Run,
    RunApiKey,
    RunLogLine,
    WorkItem,
)
from plugins_app.runs.notify import HUB
from plugins_app.web import access
from plugins_app.workspace import rows
from plugins_app.workspace.bulk import insert_many
from plugins_app.workspace.models import Asset, Project, Task
from tests.builders import bulk_assets, connect_instance

NOW = timezone.now().replace(microsecond=123456)


def _fields(obj: Any) -> dict[str, Any]:
    """An instance's field values as it holds them in memory."""
    return {k: v for k, v in vars(obj).items() if k != "_state"}


def _unsaved(
    workspace: Any, plugin: Plugin, assets: list[Asset | None], **run: Any
) -> tuple[Run, list[WorkItem]]:
    made = Run(
        organization_id=workspace.project.organization_id,
        project=workspace.project,
        plugin=plugin,
        created_by=run.pop("created_by", workspace.admin),
        created_at=NOW,
        **run,
    )
    items = [
        WorkItem(
            run=made,
            plugin=plugin,
            asset=asset,
            session=new_session(),
            priority=PRIORITY_BATCH,
            queued_at=NOW,
        )
        for asset in assets
    ]
    return made, items


def _orm_write(run: Run, items: list[WorkItem], lines: list[str]) -> None:
    """run_write as it was: Run.save, bulk_create, insert_many."""
    run.save(force_insert=True)
    WorkItem.objects.bulk_create(items)
    insert_many(
        RunLogLine,
        ["run", "item", "level", "message", "extra", "created_at"],
        [(run.pk, None, HUB, line, {}, NOW) for line in lines],
    )


RUNS = [
    {},
    {
        "class_mapping": [{"schemaId": "face-box", "modelClass": "face"}],
        "config_json": '{"threshold": 0.5}',
        "batch_ids": [3, 4],
        "inputs": {"retry_timeouts": True, "nested": {"a": [1, None, "é"]}},
        "selection": {"filters": {"status": ["TODO"]}, "ids": [1, 2]},
        "replace_submitted": True,
        "dry_run": True,
        "plugin_version": "1.2, 2.0",
        "assets_total": 7,
        "created_by": None,
    },
]


@pytest.mark.django_db
@pytest.mark.parametrize("fields", RUNS)
@pytest.mark.parametrize("n_assets, lines", [(0, []), (1, ["one"]), (3, ["a", "b"])])
def test_a_run_written_raw_reads_back_as_the_orm_writes_it(
    workspace: Any,
    make_plugin: Any,
    fields: dict[str, Any],
    n_assets: int,
    lines: list[str],
) -> None:
    plugin = make_plugin().plugin
    assets: list[Asset | None] = list(workspace.project.assets.all()[:n_assets])
    assets = assets or [None]
    by_orm, orm_items = _unsaved(workspace, plugin, assets, **fields)
    raw, raw_items = _unsaved(workspace, plugin, assets, **fields)
    with transaction.atomic():
        _orm_write(by_orm, orm_items, lines)
        run_insert.insert_run(raw, raw_items, lines, NOW)

    def row(run: Run) -> dict[str, Any]:
        return Run.objects.filter(pk=run.pk).values().get()

    def item_rows(run: Run) -> list[dict[str, Any]]:
        return list(WorkItem.objects.filter(run=run).order_by("id").values())

    def line_rows(run: Run) -> list[tuple[Any, ...]]:
        fields = ["item_id", "level", "message", "extra", "created_at"]
        return list(RunLogLine.objects.filter(run=run).values_list(*fields))

    def same(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ignore = {"id", "run_id", "session"}
        return [{k: v for k, v in r.items() if k not in ignore} for r in rows]

    assert {**row(raw), "id": 0} == {**row(by_orm), "id": 0}
    assert same(item_rows(raw)) == same(item_rows(by_orm))
    assert (
        line_rows(raw)
        == line_rows(by_orm)
        == [(None, HUB, line, {}, NOW) for line in lines]
    )
    # In memory, as save() and bulk_create leave them, and as read back.
    assert {**_fields(raw), "id": 0} == {**_fields(by_orm), "id": 0}
    assert _fields(Run.objects.get(pk=raw.pk)) == _fields(raw)
    assert (raw._state.adding, raw._state.db) == (False, by_orm._state.db)
    read_items = {i.session: i for i in WorkItem.objects.filter(run=raw)}
    for item in raw_items:
        assert _fields(read_items[item.session]) == _fields(item)
        assert (item._state.adding, item._state.db) == (False, by_orm._state.db)
        assert item.run is raw  # cached: the lease reads no run back


@pytest.mark.django_db
def test_a_large_run_is_written_in_several_inserts_each_item_with_its_row(
    workspace: Any, make_plugin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """150 items: on SQLite 62 rows per INSERT (999 parameters), on
    PostgreSQL the first ones in the one statement and the rest after."""
    monkeypatch.setattr(run_insert, "_PG_ITEMS", 64)
    plugin = make_plugin().plugin
    bulk_assets(workspace.project, 150)
    assets: list[Asset | None] = list(
        workspace.project.assets.filter(external_id__startswith="bulk-")
    )
    run, items = _unsaved(workspace, plugin, assets)
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        run_insert.insert_run(run, items, ["made"], NOW)

    inserts = [q["sql"] for q in queries if "INSERT" in q["sql"]]
    if connection.vendor == "postgresql":
        assert len(inserts) == 3  # run + 64 items + line, then 64 and 22 items
    else:
        assert len(inserts) == 5  # run, 62 + 62 + 26 items, the line
    stored = dict(WorkItem.objects.filter(run=run).values_list("session", "id"))
    assert len(stored) == 150
    assert {i.session: i.pk for i in items} == stored
    assert dict(WorkItem.objects.filter(run=run).values_list("id", "asset_id")) == {
        i.pk: i.asset_id for i in items
    }


def _compiled_queries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The queries the ORM compiles from now on (its SELECT, UPDATE and
    DELETE compiler and its INSERT one, which has an as_sql of its own)."""
    compiled: list[str] = []
    for klass in (compiler.SQLCompiler, compiler.SQLInsertCompiler):

        def counting(self: Any, *a: Any, _o: Any = klass.as_sql, **kw: Any) -> Any:
            compiled.append(f"{type(self).__name__} {self.query.model.__name__}")
            return _o(self, *a, **kw)

        monkeypatch.setattr(klass, "as_sql", counting)
    return compiled


def _request(workspace: Any, plugin: Plugin, **changes: Any) -> RunRequest:
    """An admin's run of the astronaut, "face" mapped to the face box."""
    fields: dict[str, Any] = {
        "plugin": plugin,
        "project": workspace.project,
        "user": workspace.admin,
        "class_mapping": {"face": "face-box"},
        "config_json": "{}",
        "external_ids": ["astronaut"],
        "batch_ids": [],
    }
    return RunRequest(**{**fields, **changes})


@pytest.mark.django_db
def test_the_create_builds_no_orm_query_and_writes_in_fewer_statements(
    workspace: Any, make_plugin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-asset run of a connected socket plugin, up to its dispatch: the
    reads are the activation with the live versions and the assets; the
    writes one statement on PostgreSQL, one per table on SQLite."""
    plugin = make_plugin().plugin
    connect_instance(plugin)
    compiled = _compiled_queries(monkeypatch)
    request = _request(workspace, plugin)
    with CaptureQueriesContext(connection) as queries:
        run, items = run_create_items(request, dispatch=False)

    statements = [
        q["sql"].split(None, 1)[0].upper()
        for q in queries
        if "SAVEPOINT" not in q["sql"] and q["sql"] != "BEGIN"
    ]
    assert compiled == []
    if connection.vendor == "postgresql":
        assert statements == ["SELECT", "SELECT", "WITH"]
    else:
        assert statements == ["SELECT", "SELECT", "INSERT", "INSERT", "INSERT"]
    assert items[0].asset.external_id == "astronaut"
    assert run.items.get().pk == items[0].pk


@pytest.mark.django_db
def test_the_create_and_its_lease_read_no_task_and_build_no_orm_query(
    workspace: Any,
    make_plugin: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """The same create leased to the free instance in its transaction: the
    job's task came with the asset (create_reads.assets), so the lease reads
    no task (it prefetched it, an ORM query, inside the write transaction)."""
    plugin = make_plugin().plugin
    connect_instance(plugin)
    compiled = _compiled_queries(monkeypatch)
    request = _request(workspace, plugin)
    with (
        django_capture_on_commit_callbacks(execute=False),
        CaptureQueriesContext(connection) as queries,
    ):
        run, items = run_create_items(request)

    assert items[0].state == WorkItem.State.LEASED
    assert compiled == []
    task_table = Task._meta.db_table
    reads_task = [q["sql"] for q in queries if f'FROM "{task_table}"' in q["sql"]]
    assert reads_task == []
    assert RunApiKey.objects.filter(run=run).count() == 1


@pytest.mark.django_db
def test_a_run_on_a_selection_is_leased_without_reading_its_tasks_again(
    workspace: Any, make_plugin: Any, django_capture_on_commit_callbacks: Any
) -> None:
    """The assets a saved selection matches come with their tasks, as named
    ones do: the lease in the create's transaction reads no task."""
    plugin = make_plugin().plugin
    connect_instance(plugin)
    request = _request(workspace, plugin, external_ids=[], selection={"q": "astronaut"})
    with (
        django_capture_on_commit_callbacks(execute=False),
        CaptureQueriesContext(connection) as queries,
    ):
        _, items = run_create_items(request)

    assert [i.state for i in items] == [WorkItem.State.LEASED]
    table = connection.ops.quote_name(Task._meta.db_table)
    assert [q["sql"] for q in queries if f"FROM {table} WHERE" in q["sql"]] == []


@pytest.mark.django_db
def test_activation_and_live_versions_read_as_the_orm_reads_them(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    long_ago = timezone.now() - timedelta(days=1)
    for n, (version, gone) in enumerate(
        [("1.0", {}), ("", {}), ("2.0", {"disconnected_at": timezone.now()})]
        + [("3.0", {"last_heartbeat": long_ago}), ("4.0", {"last_seen_at": long_ago})]
    ):
        instance = connect_instance(plugin, f"test!live{n}")
        PluginInstance.objects.filter(pk=instance.pk).update(version=version, **gone)
    other = make_plugin(name="elsewhere").plugin
    other.projects.clear()
    connect_instance(other, "test!other")

    def orm(p: Plugin) -> tuple[bool, list[str]]:
        live = PluginInstance.objects.live().filter(plugin=p)
        return (
            p.projects.filter(pk=workspace.project.pk).exists(),
            sorted(live.values_list("version", flat=True)),
        )

    for p in (plugin, other):
        activated, versions = create_reads.activation(
            p.pk, workspace.project.pk, live=True
        )
        assert (activated, sorted(versions or [])) == orm(p)
        assert sorted(create_reads.live_versions(p.pk)) == orm(p)[1]
        only = create_reads.activation(p.pk, workspace.project.pk, live=False)
        assert only == (orm(p)[0], None)
    assert orm(plugin) == (True, ["", "1.0"]) and orm(other) == (False, [""])


@pytest.mark.django_db
def test_assets_and_visible_rows_read_as_the_orm_reads_them(
    workspace: Any, make_plugin: Any, django_assert_num_queries: Any
) -> None:
    project = workspace.project
    wanted = ["astronaut", "coins", "nowhere", "camera"]
    orm = {a.external_id: a for a in project.assets.filter(external_id__in=wanted)}
    raw = {a.external_id: a for a in create_reads.assets(project, wanted)}

    assert {k: _fields(a) for k, a in raw.items()} == {
        k: _fields(a) for k, a in orm.items()
    }
    assert len(raw) == 3
    with django_assert_num_queries(0):
        assert all(a.project is project for a in raw.values())
        assert all(a.task.asset is a for a in raw.values())
        assert all(a.task.project is project for a in raw.values())
    by_orm = {a.external_id: a.task for a in orm.values()}
    assert {k: _fields(a.task) for k, a in raw.items()} == {
        k: _fields(t) for k, t in by_orm.items()
    }

    plugin = make_plugin(class_names=["face", "coin"]).plugin
    for model, pk, get in [
        (Plugin, plugin.pk, access.get_plugin_for_user),
        (Project, project.pk, access.get_project_for_user),
    ]:
        found = get(workspace.annotator, pk)
        assert type(found) is model
        assert _fields(found) == _fields(model.objects.get(pk=pk))
        assert found._state.db == "default" and not found._state.adding
        assert access._member_row(model, workspace.outsider, pk) is None


@pytest.mark.django_db
@pytest.mark.parametrize("raw_up_to", [500, 1])
def test_an_asset_without_a_task_reads_as_select_related_leaves_it(
    workspace: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_assert_num_queries: Any,
    raw_up_to: int,
) -> None:
    """Raw (a few ids) or through the ORM (a long list): an asset whose task
    is gone has None cached, so asset.task raises without a query."""
    monkeypatch.setattr(create_reads, "_RAW_ASSETS", raw_up_to)
    project = workspace.project
    Task.objects.filter(asset__external_id="coins").delete()
    read = create_reads.assets(project, ["coins", "camera"])
    found = {a.external_id: a for a in read}
    with django_assert_num_queries(0):
        with pytest.raises(Asset.task.RelatedObjectDoesNotExist):
            found["coins"].task  # noqa: B018
        assert found["camera"].task.project is project
        assert found["camera"].task.asset is found["camera"]


@pytest.mark.parametrize("model", [Run, WorkItem, Asset, PluginInstance])
def test_values_written_as_they_are_are_what_their_fields_make_of_them(
    model: Any,
) -> None:
    """workspace/rows.py skips the field's conversion for these types only
    where it returns the value unchanged, on this backend."""
    samples: dict[type, list[Any]] = {
        str: ["", "x", "é ✓"],
        int: [0, 7, 2**40],
        bool: [True, False],
    }
    skipped = 0
    for field, plain in rows._plan(model):
        if plain is None:
            continue
        for value in [*samples[plain], None]:
            prepared = field.get_db_prep_save(value, connection)
            if connection.vendor == "postgresql" and type(value) is int:
                # psycopg's Int2/Int4/Int8: the same int, naming the
                # parameter's SQL type. A plain int is bound as the smallest
                # that holds it, and an INSERT's VALUES take the column's type
                # by assignment either way (the rows read back equal the
                # ORM's: test_a_run_written_raw_reads_back_as_the_orm_writes_it).
                assert isinstance(prepared, int) and prepared == value, field
            else:
                assert (type(prepared), prepared) == (type(value), value), field
            skipped += 1
    assert skipped
