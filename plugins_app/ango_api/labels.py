"""`import/labels`: a plugin's pre-labels for the project's tasks (held, not
written, for a preview)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from plugins_app.ango_api.auth import api_key_required, fail, same_project
from plugins_app.ango_api.messages import bulk_json_body, ok, refused
from plugins_app.plugins.versions import served_version
from plugins_app.runs import logs as run_logs
from plugins_app.runs import preview
from plugins_app.runs.models import Run, WorkItem
from plugins_app.workspace.services import prelabels_import


def _sending_version(run: Run) -> str:
    """The version of the plugin instance whose job is importing (a Batch
    Model run has one job; its holder may declare another version than the
    plugin had when the run was created)."""
    held = (
        run.items.filter(state=WorkItem.State.LEASED).select_related("instance").first()
    )
    return served_version(run.plugin, held.instance if held else None)


@require_POST
@api_key_required
def import_labels(request: HttpRequest, run: Run) -> JsonResponse:
    body = bulk_json_body(request, "send it in smaller calls; nothing was imported")
    if isinstance(body, JsonResponse):
        return body
    if not isinstance(body, dict):
        return fail("The body must be a JSON object.", 400)
    records = body.get("jsonContent", body.get("labels"))
    if not isinstance(records, list):
        return fail("Send the labels as a list in jsonContent (or labels).", 400)
    if not same_project(run, body.get("project", run.project_id)):
        return fail("This apikey is not valid for that project.", 403)
    if run.dry_run:
        return _held_for_preview(run, records)
    result = prelabels_import(
        project=run.project,
        records=records,
        mapping=run.class_mapping,
        run=run,
        version=_sending_version(run),
    )
    if result.errors:
        return refused(run, result.errors, len(records), "records", "imported")
    run_logs.run_count_labeled(run, result.labeled)
    if result.skipped:
        # Tasks holding a person's work keep it; the others were written.
        run_logs.run_log_import_skips(run, result.skipped)
    kept = f" ({len(result.skipped)} kept: a person's work)" if result.skipped else ""
    message = f"{result.labeled} / {len(records)} tasks are labeled{kept}."
    return ok(
        {"project": message}
        | ({"skipped": result.skipped[:1000]} if result.skipped else {})
    )


def _held_for_preview(run: Run, records: list[Any]) -> JsonResponse:
    """A dry run's import: checked and kept for the Preview, nothing written;
    the plugin is told so in the reply it logs."""
    held = preview.hold_import(run, records)
    outside = (
        f"; {len(held.outside)} record(s) for assets outside the preview ignored"
        if held.outside
        else ""
    )
    return ok(
        {
            "project": f"Preview: {held.held} / {len(records)} records held for "
            f"review{outside}; nothing was written.",
            "errors": held.errors[:1000],
        }
    )
