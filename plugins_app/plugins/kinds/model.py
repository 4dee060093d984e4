"""Model plugins: one job per asset; the answer is checked against the
run's ontology and mapping, then stored as the task's pre-label."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import transaction

from plugins_app.answers import ValidationResult, validate_answer
from plugins_app.inputs import answer_limits
from plugins_app.plugins.kinds.base import (
    WORKFLOW_TRIGGER,
    Kind,
    Outcome,
    asset_file_link,
    base_job,
)
from plugins_app.plugins.models import PluginType
from plugins_app.plugins.versions import served_version
from plugins_app.workspace import prelabel, workflow, writes
from plugins_app.workspace.models import Asset, Task

if TYPE_CHECKING:
    from plugins_app.runs.models import Run, WorkItem


def check_model_answer(run: Run, asset: Asset, response: Any) -> ValidationResult:
    """A Model answer against the run's ontology, mapping and image size."""
    return check_answer(
        response,
        ontology=run.project.ontology,
        mapping=run.class_mapping,
        image_size=(asset.width, asset.height),
    )


def check_answer(
    response: Any, *, ontology: Any, mapping: Any, image_size: tuple[int, int]
) -> ValidationResult:
    return validate_answer(
        response,
        ontology=ontology,
        mapping=mapping,
        image_size=image_size,
        **answer_limits(),
    )


def store_model_answer(
    run: Run, asset: Asset, answer: dict[str, Any], *, version: str = ""
) -> Outcome:
    """Write a checked answer as the asset's pre-label, unless its task holds a
    person's work (workspace/writes.py); call inside a transaction. `version`:
    the plugin version that answered (the run's when not given)."""
    writes.refuse_dry_run(run)
    writer = prelabel.Writer(
        run.pk,
        run.plugin.name,
        run.plugin_version,
        prelabel.stages_past_labeling(run.project.workflow),
    )
    return store_answer(
        writer,
        asset.pk,
        asset.external_id,
        answer,
        workflow=run.trigger == WORKFLOW_TRIGGER,
        version=version,
        load_run=lambda: run,
    )


def store_answer(
    writer: prelabel.Writer,
    asset_id: int,
    external_id: str,
    answer: dict[str, Any],
    *,
    workflow: bool,
    version: str,
    load_run: Callable[[], Run],
) -> Outcome:
    """store_model_answer from what an answer's raw read holds (never a dry
    run's: the caller checks); `load_run` gives the run, with its plugin and
    project, only when the task may hold a person's work."""
    via = writes.VIA_WORKFLOW if workflow else writes.VIA_MODEL
    # Most tasks hold no person's work: written in one to three statements.
    # Any other task goes through the whole rule, which writes or keeps it and
    # says why.
    written = prelabel.write_prelabel_as(
        writer, asset_id, answer, via=via, version=version
    )
    if written is None:
        run = load_run()
        task = (
            Task.objects.select_for_update()
            .only(*writes.TASK_FIELDS, "prelabel_run_id")
            .get(asset_id=asset_id)
        )
        report = writes.write_answers(
            run, run.project, [task], {task.pk: answer}, via=via, version=version
        )
        if report.skipped:
            return Outcome(skipped=next(iter(report.skipped.values())))
    tools = len(answer["tools"])
    classifications = len(answer["classifications"])
    return Outcome(
        note=f"{external_id}: stored {tools} object(s) and "
        f"{classifications} classification(s) as a To-Do pre-label"
    )


def foreign_external_id(asset: Asset, response: Any) -> str | None:
    """The externalId an answer names when it is not the job's asset (1.3.x
    answers carry one; an answer for another asset must not land on this one).
    The job's internal id counts as the asset's own: the samples send either."""
    return foreign_external_id_of(asset.pk, asset.external_id, response)


def foreign_external_id_of(
    asset_id: int, external_id: str, response: Any
) -> str | None:
    if not isinstance(response, dict):
        return None
    inner = response.get("answer")
    named = response.get("externalId")
    if named in (None, "") and isinstance(inner, dict):
        named = inner.get("externalId")
    if named in (None, "") or str(named) in (external_id, str(asset_id)):
        return None
    return str(named)


def foreign_problem(named: str, asset_id: int, external_id: str) -> str:
    return (
        f"the answer is for externalId {named[:300]!r}, but this job is "
        f"for asset {external_id!r} (id {asset_id}); nothing was stored"
    )


class ModelKind(Kind):
    type = PluginType.MODEL
    label = "Model"
    description = (
        "Labels one asset per job: the hub sends each asset and stores the "
        "answer as a To-Do pre-label, checked against the class mapping."
    )
    register_fields = ("class_names_text",)
    needs_classes = True
    writes_answers = True
    scope = "assets"

    def build_job(self, item: WorkItem, *, api_key: str) -> dict[str, Any]:
        job = base_job(item, api_key=api_key)
        asset = item.asset
        assert asset is not None
        job.update(
            {
                # The sample scripts filter get_assets by `_id`; the product docs
                # call it the external ID. We send the internal id and accept
                # either in filters.
                "assetId": str(asset.pk),
                "externalId": asset.external_id,
                "dataURL": asset_file_link(asset.pk),
                "taskId": str(asset.task.pk),
                "overwrite": True,
            }
        )
        if item.run.trigger == WORKFLOW_TRIGGER:
            # The SDK answers these over POST /v2/annotate/{taskId}, not the socket.
            stage = workflow.stage_named(asset.task.project.workflow, asset.task.stage)
            job["workflow"] = True
            job["overwrite"] = bool((stage or {}).get("overwrite", True))
        return job

    def apply_response(self, item: WorkItem, response: Any) -> Outcome:
        asset = item.asset
        assert asset is not None
        named = foreign_external_id(asset, response)
        if named is not None:
            return Outcome(
                problems=[foreign_problem(named, asset.pk, asset.external_id)]
            )
        result = check_model_answer(item.run, asset, response)
        if not result.ok:
            return Outcome(problems=result.problems)
        # No savepoint: inside item_respond's transaction one would only cost
        # two statements (an error rolls the whole answer back either way).
        with transaction.atomic(savepoint=False):
            return store_model_answer(
                item.run,
                asset,
                result.answer,
                version=item.plugin_version
                or served_version(item.run.plugin, item.instance),
            )
