"""The plugin-type registry: for each type, how a job is built and how its
response is applied. Runs call into this; nothing else knows type specifics."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core import signing
from django.db import transaction
from django.urls import reverse

from plugins_app.plugins.models import PluginType
from plugins_app.workspace import workflow, writes
from plugins_app.workspace.answers import ValidationResult, validate_answer
from plugins_app.workspace.models import Asset, Task

if TYPE_CHECKING:
    from plugins_app.runs.models import Run, WorkItem

FILE_LINK_SALT = "plugins_app.asset-file"
# Run.trigger of a run made because a task entered a workflow Plugin stage.
WORKFLOW_TRIGGER = writes.WORKFLOW_TRIGGER


@dataclass
class Outcome:
    """What applying a response did: problems make the item fail."""

    problems: list[str] = field(default_factory=list)
    note: str = ""
    # Why the answer was not written (a person's work is kept): the item ends
    # skipped, not failed.
    skipped: str = ""


def asset_file_link(asset_id: int) -> str:
    """A relative, signed link to an asset's image; the plugin fetches it without
    credentials (the SDK uses plain urllib), so the signature is the credential."""
    token = signing.TimestampSigner(salt=FILE_LINK_SALT).sign(str(asset_id))
    return reverse("ango_api:asset-file", args=[token])


def base_job(item: WorkItem, *, api_key: str) -> dict[str, Any]:
    run = item.run
    return {
        "session": item.session,
        "projectId": str(run.project_id),
        "apiKey": api_key,
        "orgId": str(run.organization_id),
        "runBy": run.created_by.get_username() if run.created_by else "",
        "configJSON": run.config_json or "{}",
        "categorySchema": run.class_mapping or None,
        "batches": [str(b) for b in run.batch_ids],
        "pluginId": run.plugin.public_id,
    }


def _model_job(item: WorkItem, *, api_key: str) -> dict[str, Any]:
    job = base_job(item, api_key=api_key)
    asset = item.asset
    assert asset is not None
    job.update(
        {
            # The sample scripts filter get_assets by `_id`; the product docs call it
            # the external ID. We send the internal id and accept either in filters.
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


def check_model_answer(run: Run, asset: Asset, response: Any) -> ValidationResult:
    """A Model answer against the run's ontology, mapping and image size."""
    return validate_answer(
        response,
        ontology=run.project.ontology,
        mapping=run.class_mapping,
        image_size=(asset.width, asset.height),
    )


def store_model_answer(run: Run, asset: Asset, answer: dict[str, Any]) -> Outcome:
    """Write a checked answer as the asset's pre-label, unless its task holds a
    person's work (workspace/writes.py); call inside a transaction."""
    task = (
        Task.objects.select_for_update()
        .only(*writes.TASK_FIELDS, "prelabel_run_id")
        .get(asset=asset)
    )
    via = writes.VIA_WORKFLOW if run.trigger == WORKFLOW_TRIGGER else writes.VIA_MODEL
    report = writes.write_answers(run, run.project, [task], {task.pk: answer}, via=via)
    if task.pk in report.skipped:
        return Outcome(skipped=report.skipped[task.pk])
    tools = len(answer["tools"])
    classifications = len(answer["classifications"])
    return Outcome(
        note=f"{asset.external_id}: stored {tools} object(s) and "
        f"{classifications} classification(s) as a To-Do pre-label"
    )


def foreign_external_id(asset: Asset, response: Any) -> str | None:
    """The externalId an answer names when it is not the job's asset (1.3.x
    answers carry one; an answer for another asset must not land on this one).
    The job's internal id counts as the asset's own: the samples send either."""
    if not isinstance(response, dict):
        return None
    inner = response.get("answer")
    named = response.get("externalId")
    if named in (None, "") and isinstance(inner, dict):
        named = inner.get("externalId")
    if named in (None, "") or str(named) in (asset.external_id, str(asset.pk)):
        return None
    return str(named)


def _model_apply(item: WorkItem, response: Any) -> Outcome:
    asset = item.asset
    assert asset is not None
    named = foreign_external_id(asset, response)
    if named is not None:
        return Outcome(
            problems=[
                f"the answer is for externalId {named[:300]!r}, but this job is for "
                f"asset {asset.external_id!r} (id {asset.pk}); nothing was stored"
            ]
        )
    result = check_model_answer(item.run, asset, response)
    if not result.ok:
        return Outcome(problems=result.problems)
    with transaction.atomic():
        return store_model_answer(item.run, asset, result.answer)


def _batch_job(item: WorkItem, *, api_key: str) -> dict[str, Any]:
    return base_job(item, api_key=api_key)


def _note_apply(item: WorkItem, response: Any) -> Outcome:
    # Batch Model plugins write through POST /v2/import/labels, event plugins
    # through /v2/issues, requeueTasks and the like; the response is only a
    # message such as "All annotations are imported!".
    text = response if isinstance(response, str) else json.dumps(response)[:500]
    return Outcome(note=f"plugin finished: {text}")


# Keys of an event's data that are bookkeeping, not part of the plugin's job.
_EVENT_DATA_HIDDEN = ("complete",)


def _event_job(item: WorkItem, *, api_key: str) -> dict[str, Any]:
    """The job of an event-triggered run: the event, the task and its asset,
    plus what the event carried (answer, submittedBy, labels, verdict...)."""
    job = base_job(item, api_key=api_key)
    run, asset = item.run, item.asset
    task, event = run.task, run.event
    assert asset is not None and task is not None
    data = dict(event.data) if event is not None else {}
    job.update(
        {
            "event": run.trigger,
            "eventId": str(event.pk) if event is not None else "",
            "taskId": str(task.pk),
            "assetId": str(asset.pk),
            "externalId": asset.external_id,
            "dataURL": asset_file_link(asset.pk),
            "stage": data.get("stage", task.stage),
            "answer": data.get("answer", task.answer),
            "submittedBy": data.get("submittedBy", ""),
            "labels": data.get("labels", []),
            "metadata": task.metadata,
        }
    )
    for key, value in data.items():
        if key not in _EVENT_DATA_HIDDEN:
            job.setdefault(key, value)
    return job


def _file_explorer_job(item: WorkItem, *, api_key: str) -> dict[str, Any]:
    """What the File Explorer sample reads: the bucket and folder to import, the
    storage whose keys it fetches with get_storages (`integrationId` for the
    older sample), an optional file list, and `upload` (False: list only)."""
    job = base_job(item, api_key=api_key)
    inputs = item.run.inputs
    storage_id = str(inputs.get("storage_id", ""))
    job.update(
        {
            "storageId": storage_id,
            "integrationId": storage_id,
            "bucket": inputs.get("bucket", ""),
            "folder": inputs.get("folder", ""),
            "files": inputs.get("files") or None,
            "upload": bool(inputs.get("upload", True)),
            "scrollToken": None,
        }
    )
    return job


def _markdown_job(item: WorkItem, *, api_key: str) -> dict[str, Any]:
    """The Markdown sample decodes `inputFile` (base64 CSV) and unescapes
    `markdownText` (Ango sends the template HTML-escaped) before filling its
    `|column|` placeholders."""
    job = base_job(item, api_key=api_key)
    inputs = item.run.inputs
    job.update(
        {
            "inputFile": inputs.get("csv_base64", ""),
            "markdownText": html.escape(inputs.get("markdown_text", ""), quote=True),
            "fileList": [inputs.get("csv_name", "input.csv")],
        }
    )
    return job


def _input_apply(item: WorkItem, response: Any) -> Outcome:
    # Both samples answer with a message; the File Explorer sample's failure
    # message starts with "Error" (its upload_files_cloud call was refused).
    # A listing (upload=False) is a dict of folders and files.
    if isinstance(response, dict) and "folders" in response:
        folders, files = response.get("folders") or [], response.get("files") or []
        shown = ", ".join(str(f) for f in [*folders, *files][:50])
        return Outcome(note=f"{len(folders)} folder(s), {len(files)} file(s): {shown}")
    if isinstance(response, str) and response.lower().startswith("error"):
        return Outcome(problems=[f"the plugin answered: {response[:500]}"])
    return _note_apply(item, response)


def _export_job(item: WorkItem, *, api_key: str) -> dict[str, Any]:
    job = base_job(item, api_key=api_key)
    # Stage names; [] exports every stage (the SDK then sends no `stage`).
    job["stage"] = list(item.run.inputs.get("stages", []))
    return job


def _export_apply(item: WorkItem, response: Any) -> Outcome:
    # The SDK sends {"export": true, "response": <signedUrl>} after its PUT; the
    # file must be one this run uploaded.
    from plugins_app.exports.services import uploaded_file

    upload = uploaded_file(item.run, response)
    if upload is None:
        return Outcome(
            problems=[
                "the plugin reported an export, but it names no file this run "
                f"uploaded (got {str(response)[:200]!r})"
            ]
        )
    return Outcome(
        note=f"Export file {upload.name} ({upload.size:,} bytes) is ready to "
        "download from this page."
    )


@dataclass(frozen=True)
class PluginKind:
    build_job: Any
    apply_response: Any


KINDS: dict[str, PluginKind] = {
    PluginType.MODEL: PluginKind(_model_job, _model_apply),
    PluginType.BATCH_MODEL: PluginKind(_batch_job, _note_apply),
    PluginType.EVENT: PluginKind(_event_job, _note_apply),
    PluginType.EXPORT: PluginKind(_export_job, _export_apply),
    PluginType.FILE_EXPLORER: PluginKind(_file_explorer_job, _input_apply),
    PluginType.MARKDOWN: PluginKind(_markdown_job, _input_apply),
}


def kind_of(run: Run) -> PluginKind:
    try:
        return KINDS[run.plugin.type]
    except KeyError:
        raise ValueError(f"{run.plugin.get_type_display()} plugins cannot be run yet")
