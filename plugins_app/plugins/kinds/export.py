"""Export plugins: one job over the chosen batches and workflow stages; the
SDK uploads the export file (PUT to a signed URL) and answers its URL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms

from plugins_app.plugins.kinds.base import Errors, Kind, Outcome, base_job
from plugins_app.plugins.models import Plugin, PluginType
from plugins_app.workspace import workflow
from plugins_app.workspace.models import Project

if TYPE_CHECKING:
    from plugins_app.runs.models import WorkItem


def project_stage_names(project: Project) -> list[str]:
    """The workflow's stage names, then any other stage tasks are in."""
    names = [s.get("name", "") for s in workflow.stages(project.workflow)]
    extra = project.tasks.exclude(stage__in=names).values_list("stage", flat=True)
    return names + sorted(set(extra))


class ExportKind(Kind):
    type = PluginType.EXPORT
    label = "Export"
    description = (
        "Writes an export file of the chosen batches and stages, downloadable "
        "from the run's page; it labels nothing."
    )
    scope = "batches"

    def run_fields(self, project: Project) -> dict[str, forms.Field]:
        names = project_stage_names(project)
        return {
            "stages": forms.MultipleChoiceField(
                label="Stages",
                choices=[(n, n) for n in names],
                required=False,
                initial=["Complete"] if "Complete" in names else [],
                widget=forms.CheckboxSelectMultiple,
                help_text="Tasks in these stages are exported; none chosen exports "
                "every stage.",
            )
        }

    def run_inputs(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        return {"stages": cleaned.get("stages", [])}

    def check_inputs(
        self, plugin: Plugin, project: Project, inputs: dict[str, Any], errors: Errors
    ) -> dict[str, Any]:
        """The workflow stages to export (the job's `stage`; [] = every stage)."""
        known = project_stage_names(project)
        given = inputs.get("stages") or []
        if not isinstance(given, list):
            errors.setdefault("stages", []).append(
                "Give the stages as a list of names."
            )
            return {"stages": []}
        wanted = list(dict.fromkeys(str(s) for s in given if s))
        unknown = [s for s in wanted if s not in known]
        if unknown:
            errors.setdefault("stages", []).append(
                "Not stages of this project's workflow: " + ", ".join(unknown)
            )
        return {"stages": wanted}

    def build_job(self, item: WorkItem, *, api_key: str) -> dict[str, Any]:
        job = base_job(item, api_key=api_key)
        # Stage names; [] exports every stage (the SDK then sends no `stage`).
        job["stage"] = list(item.run.inputs.get("stages", []))
        return job

    def apply_response(self, item: WorkItem, response: Any) -> Outcome:
        # The SDK sends {"export": true, "response": <signedUrl>} after its PUT;
        # the file must be one this run uploaded. Imported here: exports sits
        # above plugins (it reads runs), and only this answer needs it.
        from plugins_app.exports.uploads import uploaded_file

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
