"""What every plugin kind shares: the Kind interface the registry
(kinds/__init__.py) holds one of per PluginType, the job fields every kind
sends, and the outcome of applying an answer."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from django.core import signing
from django.urls import reverse

from plugins_app.workspace import human_work

if TYPE_CHECKING:
    from django import forms

    from plugins_app.plugins.models import Plugin
    from plugins_app.runs.models import WorkItem
    from plugins_app.workspace.models import Project

FILE_LINK_SALT = "plugins_app.asset-file"
# Run.trigger of a run made because a task entered a workflow Plugin stage.
WORKFLOW_TRIGGER = human_work.WORKFLOW_TRIGGER

# Form field name -> messages, as RunRequestError and Django forms carry them.
Errors = dict[str, list[str]]


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
    """The fields every job carries (protocol reference §3)."""
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


def note_apply(item: WorkItem, response: Any) -> Outcome:
    # Kinds that write through the REST API (Batch Model: /v2/import/labels,
    # events: /v2/issues, requeueTasks...) answer only a message such as
    # "All annotations are imported!".
    text = response if isinstance(response, str) else json.dumps(response)[:500]
    return Outcome(note=f"plugin finished: {text}")


class Kind:
    """One plugin type's home: what its dialogs show and check, how its job is
    built and how its answer is applied. Subclasses override what differs."""

    type: ClassVar[str]
    label: ClassVar[str]
    # One line for the register dialog (under the type choice) and plugin page.
    description: ClassVar[str]
    # The register dialog's fields only this kind has (PluginForm field names).
    register_fields: ClassVar[tuple[str, ...]] = ()
    # Class names at registration, and a class mapping that maps at least one
    # class at run time (its answers are checked against it, and the samples
    # read categorySchema[0]).
    needs_classes: ClassVar[bool] = False
    # Its runs write answers: "Replace submitted answers" applies.
    writes_answers: ClassVar[bool] = False
    # What a run covers: "assets" (one item per asset), "batches" (one item
    # over the batches chosen, or the whole project) or "none" (it creates
    # assets or files instead).
    scope: ClassVar[str] = "none"
    # Started from the Run dialog and POST /api/runs (else by events/stages).
    runnable: ClassVar[bool] = True
    # Why a kind that is not runnable has no Run button.
    not_runnable_reason: ClassVar[str] = ""

    def run_fields(self, project: Project) -> dict[str, forms.Field]:
        """The Run dialog's extra inputs (besides scope, mapping and config)."""
        return {}

    def run_inputs(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        """The dialog's cleaned extra inputs as a run request's `inputs` (the
        JSON API takes the same dict as its body's `inputs`)."""
        return {}

    def check_inputs(
        self, plugin: Plugin, project: Project, inputs: dict[str, Any], errors: Errors
    ) -> dict[str, Any]:
        """A run request's `inputs`, checked; what is stored as Run.inputs."""
        return {}

    def build_job(self, item: WorkItem, *, api_key: str) -> dict[str, Any]:
        return base_job(item, api_key=api_key)

    def apply_response(self, item: WorkItem, response: Any) -> Outcome:
        return note_apply(item, response)


def input_apply(item: WorkItem, response: Any) -> Outcome:
    # The File Explorer and Markdown samples answer with a message; the File
    # Explorer sample's failure message starts with "Error" (its
    # upload_files_cloud call was refused). A listing (upload=False) is a dict
    # of folders and files.
    if isinstance(response, dict) and "folders" in response:
        folders, files = response.get("folders") or [], response.get("files") or []
        shown = ", ".join(str(f) for f in [*folders, *files][:50])
        return Outcome(note=f"{len(folders)} folder(s), {len(files)} file(s): {shown}")
    if isinstance(response, str) and response.lower().startswith("error"):
        return Outcome(problems=[f"the plugin answered: {response[:500]}"])
    return note_apply(item, response)
