"""File Explorer plugins: import a storage folder's files as assets (or only
list the folder)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms

from plugins_app.inputs import parse_id
from plugins_app.plugins.kinds.base import Errors, Kind, Outcome, base_job, input_apply
from plugins_app.plugins.models import Plugin, PluginType
from plugins_app.workspace.models import Project, Storage

if TYPE_CHECKING:
    from plugins_app.runs.models import WorkItem


class FileExplorerKind(Kind):
    type = PluginType.FILE_EXPLORER
    label = "File Explorer"
    description = (
        "Imports the files of a cloud storage folder as assets of the project "
        "(or only lists the folder)."
    )

    def run_fields(self, project: Project) -> dict[str, forms.Field]:
        return {
            "storage": forms.ModelChoiceField(
                queryset=Storage.usable_by(project),
                empty_label="— choose a storage —",
                required=True,
                help_text="The project's cloud storages (admins add them under "
                "Storages).",
            ),
            "folder": forms.CharField(
                required=False,
                max_length=1000,
                widget=forms.TextInput(attrs={"placeholder": "images/2024/"}),
                help_text="A folder (prefix) in the bucket; empty: the whole bucket.",
            ),
            "files": forms.CharField(
                label="Only these files",
                required=False,
                widget=forms.Textarea(attrs={"rows": 2, "placeholder": "images/a.jpg"}),
                help_text="Optional: one key per line; empty imports the whole folder.",
            ),
            "upload": forms.BooleanField(
                label="Create assets from the files (unticked: only list the folder)",
                required=False,
                initial=True,
            ),
        }

    def run_inputs(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        storage = cleaned.get("storage")
        return {
            "storage_id": storage.pk if storage else None,
            "folder": cleaned.get("folder", ""),
            "files": (cleaned.get("files") or "").splitlines(),
            "upload": cleaned.get("upload", False),
        }

    def check_inputs(
        self, plugin: Plugin, project: Project, inputs: dict[str, Any], errors: Errors
    ) -> dict[str, Any]:
        """The storage must be one this project may use (its keys go to the run)."""
        storage_pk = parse_id(str(inputs.get("storage_id") or ""))
        storage = (
            Storage.usable_by(project).filter(pk=storage_pk).first()
            if storage_pk is not None
            else None
        )
        if storage is None:
            errors.setdefault("storage", []).append(
                "Choose a storage of this project (admins add them under Storages)."
            )
            return {}
        folder = str(inputs.get("folder") or "").strip().lstrip("/")
        given = inputs.get("files") or []
        if not isinstance(given, list):
            errors.setdefault("files", []).append("Give the files as a list of keys.")
            given = []
        files = [str(f).strip() for f in given if str(f).strip()]
        if len(folder) > 1000 or len(files) > 10_000:
            errors.setdefault("folder", []).append(
                "The folder or file list is too long."
            )
        return {
            "storage_id": storage.pk,
            "bucket": storage.bucket,
            "folder": folder,
            "files": files,
            "upload": bool(inputs.get("upload", True)),
        }

    def build_job(self, item: WorkItem, *, api_key: str) -> dict[str, Any]:
        """What the File Explorer sample reads: the bucket and folder to import,
        the storage whose keys it fetches with get_storages (`integrationId` for
        the older sample), an optional file list, and `upload` (False: list
        only)."""
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

    def apply_response(self, item: WorkItem, response: Any) -> Outcome:
        return input_apply(item, response)
