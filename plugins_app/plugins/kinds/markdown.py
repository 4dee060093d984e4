"""Markdown plugins: a CSV (one document per row) and a template with
|column| placeholders become Markdown assets."""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING, Any

from django import forms

from plugins_app.plugins.kinds.base import Errors, Kind, Outcome, base_job, input_apply
from plugins_app.plugins.models import Plugin, PluginType
from plugins_app.workspace.models import Project

if TYPE_CHECKING:
    from plugins_app.runs.models import WorkItem

MAX_CSV_BYTES = 5 * 1024 * 1024
_TOO_BIG = f"The CSV file is over {MAX_CSV_BYTES // (1024 * 1024)} MiB."


class CsvField(forms.FileField):
    """The CSV upload, refused over MAX_CSV_BYTES before it is read."""

    def clean(self, data: Any, initial: Any = None) -> Any:
        upload = super().clean(data, initial)
        if upload is not None and upload.size > MAX_CSV_BYTES:
            raise forms.ValidationError(_TOO_BIG)
        return upload


class MarkdownKind(Kind):
    type = PluginType.MARKDOWN
    label = "Markdown"
    description = (
        "Creates one Markdown asset per row of a CSV file, filling a template's "
        "|column| placeholders."
    )

    def run_fields(self, project: Project) -> dict[str, forms.Field]:
        return {
            "csv_file": CsvField(
                label="CSV file",
                required=True,
                help_text="A header row names the columns; each row becomes one "
                "document.",
            ),
            "markdown_text": forms.CharField(
                label="Markdown template",
                required=True,
                widget=forms.Textarea(
                    attrs={
                        "rows": 6,
                        "class": "mono",
                        "placeholder": "# |title|\n\n|body|",
                    }
                ),
                help_text="|column| is replaced by the row's value of that column.",
            ),
        }

    def run_inputs(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        upload = cleaned.get("csv_file")
        return {
            "csv_name": upload.name if upload else "",
            "csv_base64": base64.b64encode(upload.read()).decode() if upload else "",
            "markdown_text": cleaned.get("markdown_text", ""),
        }

    def check_inputs(
        self, plugin: Plugin, project: Project, inputs: dict[str, Any], errors: Errors
    ) -> dict[str, Any]:
        """The CSV must decode (UTF-8, a header row) and a template be given."""
        csv_b64 = str(inputs.get("csv_base64") or "")
        template = str(inputs.get("markdown_text") or "")
        try:
            header = base64.b64decode(csv_b64, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            header = ""
        if not csv_b64 or not header.strip():
            errors.setdefault("csv_file", []).append(
                "Upload a UTF-8 CSV file with a header row and one row per document."
            )
        elif len(csv_b64) * 3 // 4 > MAX_CSV_BYTES:
            errors.setdefault("csv_file", []).append(_TOO_BIG)
        if not template.strip():
            errors.setdefault("markdown_text", []).append(
                "Write the Markdown template; |column| is replaced by each row's value."
            )
        return {
            "csv_name": str(inputs.get("csv_name") or "input.csv")[:200],
            "csv_base64": csv_b64,
            "markdown_text": template,
        }

    def build_job(self, item: WorkItem, *, api_key: str) -> dict[str, Any]:
        """The Markdown sample decodes `inputFile` (base64 CSV) and unescapes
        `markdownText` (Ango sends the template HTML-escaped) before filling its
        `|column|` placeholders."""
        job = base_job(item, api_key=api_key)
        inputs = item.run.inputs
        job.update(
            {
                "inputFile": inputs.get("csv_base64", ""),
                "markdownText": html.escape(
                    inputs.get("markdown_text", ""), quote=True
                ),
                "fileList": [inputs.get("csv_name", "input.csv")],
            }
        )
        return job

    def apply_response(self, item: WorkItem, response: Any) -> Outcome:
        return input_apply(item, response)
