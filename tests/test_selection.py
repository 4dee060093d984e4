"""Select, then run, through the JSON API and the service: a saved selection
(workspace/selection.py) scopes a run to exactly the assets it matches, the
same set the asset table shows; a bad one is a 400 that says what is wrong;
a Batch Model run on a selection sees only those assets; a dry run writes
nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from plugins_app.plugins.models import PluginType
from plugins_app.runs.creation import RunRequest, run_create
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.models import PreviewAnswer, Run
from plugins_app.runs.preview import hold_import
from plugins_app.runs.responses import item_respond
from plugins_app.workspace import selection
from plugins_app.workspace.models import AnswerWrite, Task, TaskEvent
from tests.builders import CHANNEL, connect_instance
from tests.test_api import bearer, post_json
from tests.test_api_key_scope import job_key


def external_ids(run: Run) -> list[str]:
    return sorted(i.asset.external_id for i in run.items.select_related("asset"))


def create(workspace: Any, plugin: Any, **body: Any) -> Any:
    client = bearer(workspace.annotator)
    request = {
        "plugin_id": plugin.pk,
        "project_id": workspace.project.pk,
        "class_mapping": {"face": "face-box"},
    } | body
    return post_json(client, "/api/runs", request)


def test_the_api_selection_gives_the_same_set_as_the_table(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect_instance(plugin)
    Task.objects.filter(asset__external_id__in=["coins", "camera"]).update(
        status=Task.Status.SUBMITTED
    )
    wanted = {"batch": workspace.batch_a.pk, "status": "TODO"}
    response = create(workspace, plugin, selection=wanted)
    assert response.status_code == 201, response.content
    run = Run.objects.get(pk=response.json()["id"])
    table = selection.assets(
        workspace.project,
        selection.from_query(
            {"batch": str(workspace.batch_a.pk), "status": "TODO"}, workspace.project
        ),
    )
    expected = sorted(table.values_list("external_id", flat=True))
    assert expected and external_ids(run) == expected
    assert not set(expected) & {"coins", "camera"}
    assert run.selection == wanted
    assert response.json()["selection"] == wanted

    ticked = list(table.values_list("pk", flat=True)[:2])
    response = create(workspace, plugin, selection={"ids": ticked})
    assert response.status_code == 201, response.content
    run = Run.objects.get(pk=response.json()["id"])
    assert sorted(i.asset_id for i in run.items.all()) == sorted(ticked)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("status=TODO", "The selection must be a JSON object."),
        ({"colour": "red"}, "Unknown selection field(s): colour"),
        ({"status": "DONE"}, "status must be one of TODO, SUBMITTED, REVIEWED"),
        ({"batch": "first"}, "batch must be a positive integer id"),
        ({"batch": 1.5}, "batch must be a positive integer id"),
        ({"ids": [1, True]}, "ids must be a positive integer id"),
        ({"ids": list(range(1, 1002))}, "ids lists at most 1000 assets"),
        ({"q": ["a"]}, "q must be a string"),
        ({"q": "no-such-asset"}, "The selection matches no asset of this project."),
    ],
)
def test_a_bad_selection_is_a_400_saying_why(
    workspace: Any, make_plugin: Any, bad: Any, message: str
) -> None:
    plugin = make_plugin().plugin
    connect_instance(plugin)
    response = create(workspace, plugin, selection=bad)
    assert response.status_code == 400, response.content
    assert message in " ".join(response.json()["errors"]["selection"])
    assert not Run.objects.exists()


def test_a_selection_cannot_name_another_projects_batch_or_mix_with_ids(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect_instance(plugin)
    theirs = workspace.other_project.batches.create(name="Theirs")
    response = create(workspace, plugin, selection={"batch": theirs.pk})
    assert response.status_code == 400
    assert f"batch {theirs.pk} is not a batch of this project" in str(
        response.json()["errors"]
    )
    response = create(
        workspace, plugin, selection={"q": "a"}, external_ids=["astronaut"]
    )
    assert response.status_code == 400
    assert "either a selection or external IDs" in str(response.json()["errors"])


def batch_run_on_co(workspace: Any, plugin: Any, **kwargs: Any) -> Run:
    """A Batch Model run (not dispatched) on the assets whose ID has "co"."""
    return run_create(
        RunRequest(
            plugin=plugin,
            project=workspace.project,
            user=workspace.annotator,
            class_mapping={"face": "face-box"},
            config_json="{}",
            external_ids=[],
            batch_ids=[],
            selection={"q": "co"},
            **kwargs,
        ),
        dispatch=False,
    )


def test_a_batch_model_run_on_a_selection_sees_only_those_assets(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.BATCH_MODEL).plugin
    connect_instance(plugin, CHANNEL)
    run = batch_run_on_co(workspace, plugin)
    matched = sorted(
        workspace.project.assets.filter(external_id__icontains="co").values_list(
            "external_id", flat=True
        )
    )
    assert run.assets_total == len(matched) >= 2
    assert dispatch_pending(plugin.pk) == 1
    key = job_key(CHANNEL, run)
    listed = Client().get(
        f"/v2/project/{workspace.project.pk}/assets?page=1&limit=100",
        HTTP_APIKEY=key,
    )
    assert listed.status_code == 200, listed.content
    got = sorted(a["externalId"] for a in listed.json()["data"]["assets"])
    assert got == matched


def test_a_dry_batch_import_is_held_and_writes_nothing(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.BATCH_MODEL).plugin
    connect_instance(plugin)
    run = batch_run_on_co(workspace, plugin, dry_run=True, preview_limit=2)
    assert run.dry_run and len(run.selection["ids"]) == 2
    in_preview = list(
        workspace.project.assets.filter(pk__in=run.selection["ids"]).order_by("pk")
    )
    before = {t.pk: t.answer for t in Task.objects.all()}
    events = TaskEvent.objects.count()
    box = {"x": 1, "y": 2, "width": 30, "height": 40}
    records = [
        {
            "externalId": in_preview[0].external_id,
            "objects": [{"schemaId": "face-box", "bounding-box": box}],
        },
        {
            "externalId": in_preview[1].external_id,
            "objects": [{"schemaId": "nope", "bounding-box": box}],
        },
        {"externalId": "astronaut", "objects": []},
    ]
    held = hold_import(run, records)
    assert held.held == 2 and held.outside == ["astronaut"]
    kept = {p.asset_id: p for p in PreviewAnswer.objects.filter(run=run)}
    assert kept[in_preview[0].pk].answer["tools"][0]["bounding-box"] == box
    assert not kept[in_preview[0].pk].problems
    assert kept[in_preview[1].pk].problems
    assert {t.pk: t.answer for t in Task.objects.all()} == before
    assert TaskEvent.objects.count() == events
    assert not AnswerWrite.objects.filter(run=run).exists()


def test_the_asset_table_filters_pages_and_keeps_tenants_apart(
    workspace: Any, make_plugin: Any
) -> None:
    make_plugin(type=PluginType.BATCH_MODEL, name="Batcher")
    client = Client()
    client.force_login(workspace.annotator)
    url = f"/projects/{workspace.project.pk}/assets/"
    page = client.get(url, {"q": "coins-tile", "per_page": "5"})
    assert page.status_code == 200
    text = page.content.decode()
    assert text.count('class="row-check"') == 4
    assert "Select all 4 matching" in text and "Batcher (Batch Model)" in text
    assert page.context["filter_json"] == '{"q": "coins-tile"}'
    second = client.get(url, {"per_page": "5", "page": "2"}).content.decode()
    assert second.count('class="row-check"') == 5 and "Page 2 of 7" in second

    bad = client.get(url, {"status": "bogus"})
    assert bad.status_code == 400
    assert "status must be one of TODO, SUBMITTED, REVIEWED" in bad.content.decode()

    outsider = Client()
    outsider.force_login(workspace.outsider)
    assert outsider.get(url).status_code == 404
    plugin = make_plugin(type=PluginType.BATCH_MODEL).plugin
    connect_instance(plugin)
    run = batch_run_on_co(workspace, plugin, dry_run=True)
    assert client.get(f"/runs/{run.pk}/preview/").status_code == 200
    assert outsider.get(f"/runs/{run.pk}/preview/").status_code == 404


def test_a_preview_may_read_and_import_but_no_other_write(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.BATCH_MODEL).plugin
    connect_instance(plugin, CHANNEL)
    run = batch_run_on_co(workspace, plugin, dry_run=True, preview_limit=1)
    assert dispatch_pending(plugin.pk) == 1
    key = job_key(CHANNEL, run)
    asset = workspace.project.assets.get(pk=run.selection["ids"][0])
    client = Client(HTTP_APIKEY=key)
    listed = client.get(f"/v2/project/{workspace.project.pk}/assets")
    assert [a["externalId"] for a in listed.json()["data"]["assets"]] == [
        asset.external_id
    ]
    events = TaskEvent.objects.count()
    box = {"x": 1, "y": 2, "width": 3, "height": 4}
    imported = post_json(
        client,
        "/v2/import/labels",
        {
            "jsonContent": [
                {
                    "externalId": asset.external_id,
                    "objects": [{"schemaId": "face-box", "bounding-box": box}],
                }
            ]
        },
    )
    assert imported.status_code == 200, imported.content
    assert "nothing was written" in imported.json()["data"]["project"]
    shown = bearer(workspace.annotator).get(f"/api/runs/{run.pk}").json()
    assert shown["dry_run"] and shown["selection"] == {"q": "co", "ids": [asset.pk]}
    assert [(p["external_id"], p["problems"]) for p in shown["previews"]] == [
        (asset.external_id, [])
    ]
    assert shown["previews"][0]["answer"]["tools"][0]["bounding-box"] == box
    issue = post_json(
        client, "/v2/issues", {"content": "x", "labelTask": str(asset.task.pk)}
    )
    assert issue.status_code == 403
    assert "preview (dry run): it writes nothing" in issue.json()["message"]
    metadata = post_json(
        client, f"/v2/task/{asset.task.pk}/metadata", {"metadata": {"a": 1}}
    )
    assert metadata.status_code == 403
    asset.task.refresh_from_db()
    assert asset.task.answer == {} and asset.task.metadata == {}
    assert TaskEvent.objects.count() == events
    assert not asset.task.issues.exists()


def test_a_model_preview_reports_problems_per_object_and_writes_nothing(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin().plugin
    connect_instance(plugin, CHANNEL)
    run = run_create(
        RunRequest(
            plugin=plugin,
            project=workspace.project,
            user=workspace.annotator,
            class_mapping={"face": "face-box"},
            config_json="{}",
            external_ids=["astronaut", "coins", "camera", "moon"],
            batch_ids=[],
            dry_run=True,
        ),
        dispatch=False,
    )
    assert run_assets_of(run) == ["astronaut", "camera", "coins"]  # the first 3
    dispatch_pending(plugin.pk)
    events = TaskEvent.objects.count()
    good = {"schemaId": "face-box", "bounding-box": {"x": 1, "y": 2, "width": 30}}
    good["bounding-box"]["height"] = 40
    outside = {"schemaId": "face-box", "bounding-box": {"x": -5, "y": 2}}
    outside["bounding-box"] |= {"width": 99999, "height": 4}
    unmapped = {"schemaId": "coin-box", "bounding-box": good["bounding-box"]}
    item = run.items.get(asset__external_id="astronaut")
    answer = {"objects": [good, outside, unmapped]}
    word = item_respond(
        session=item.session, payload={"response": answer}, channel_name=CHANNEL
    )
    assert word == "done"
    kept = PreviewAnswer.objects.get(run=run)
    assert len(kept.answer["tools"]) == 3  # every object it returned, drawn
    assert len(kept.problems) == 2, kept.problems
    assert any("objects[1]" in p for p in kept.problems), kept.problems
    assert any("objects[2]" in p for p in kept.problems), kept.problems
    astronaut = workspace.asset("astronaut").task
    assert astronaut.answer == {} and astronaut.prelabel_run_id is None
    assert TaskEvent.objects.count() == events
    assert not AnswerWrite.objects.exists()

    client = Client()
    client.force_login(workspace.annotator)
    fragment = client.get(f"/runs/{run.pk}/preview/").content.decode()
    assert "2 problem(s)" in fragment and "Waiting for the plugin" in fragment


def run_assets_of(run: Run) -> list[str]:
    return sorted(i.asset.external_id for i in run.items.select_related("asset"))


def test_a_batch_preview_without_a_selection_takes_its_first_assets(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.BATCH_MODEL).plugin
    connect_instance(plugin)
    run = run_create(
        RunRequest(
            plugin=plugin,
            project=workspace.project,
            user=workspace.annotator,
            class_mapping={"face": "face-box"},
            config_json="{}",
            external_ids=[],
            batch_ids=[workspace.batch_a.pk],
            dry_run=True,
        ),
        dispatch=False,
    )
    first = list(
        workspace.batch_a.assets.order_by("external_id").values_list("pk", flat=True)
    )[:3]
    assert run.selection == {"ids": first} and run.assets_total == 3
    assert run.batch_ids == [workspace.batch_a.pk]


def test_a_selection_by_pre_label_plugin_and_stage(
    workspace: Any, make_plugin: Any
) -> None:
    from plugins_app.workspace.services import prelabels_import

    batcher = make_plugin(type=PluginType.BATCH_MODEL, name="Batcher").plugin
    connect_instance(batcher, CHANNEL)
    labeling = batch_run_on_co(workspace, batcher)
    box = {"x": 1, "y": 2, "width": 3, "height": 4}
    result = prelabels_import(
        project=workspace.project,
        records=[
            {
                "externalId": e,
                "objects": [{"schemaId": "face-box", "bounding-box": box}],
            }
            for e in ("coins", "coffee")
        ],
        mapping=labeling.class_mapping,
        run=labeling,
    )
    assert result.labeled == 2
    Task.objects.filter(asset__external_id="coffee").update(stage="Review")
    model = make_plugin(name="Model").plugin
    connect_instance(model, "test!model")
    response = create(workspace, model, selection={"prelabel_plugin": batcher.pk})
    assert response.status_code == 201, response.content
    assert external_ids(Run.objects.get(pk=response.json()["id"])) == [
        "coffee",
        "coins",
    ]
    both = {"prelabel_plugin": batcher.pk, "stage": "Review"}
    response = create(workspace, model, selection=both)
    assert external_ids(Run.objects.get(pk=response.json()["id"])) == ["coffee"]
    # Another organization's plugin id matches nothing here.
    rival = workspace.outsider.memberships.get().organization
    theirs = make_plugin(name="Theirs").plugin
    type(theirs).objects.filter(pk=theirs.pk).update(organization=rival)
    response = create(workspace, model, selection={"prelabel_plugin": theirs.pk})
    assert response.status_code == 400
