"""Select, then run: the project's asset table (search, pages, ticked rows or
"all N matching") and what the Run dialog needs to carry such a selection — a
saved filter (workspace/selection.py), never a list of every id it matches —
and to preview a run on a few of its assets before running on all of them
(runs/preview.py)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from plugins_app.inputs import json_loads_bounded, parse_count
from plugins_app.plugins.kinds import kind_for
from plugins_app.plugins.kinds.export import project_stage_names
from plugins_app.plugins.models import Plugin, PluginType
from plugins_app.runs import preview
from plugins_app.runs.creation import RunRequest, RunRequestError, run_create
from plugins_app.runs.notify import hub_log
from plugins_app.web import access
from plugins_app.web.request_types import AuthenticatedHttpRequest
from plugins_app.workspace import selection
from plugins_app.workspace.models import Project, Task

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# The kinds that write answers (Model, Batch Model): a selection scopes their
# runs and a Preview shows what they would write.
SELECTABLE_TYPES = tuple(t for t in PluginType.values if kind_for(t).writes_answers)


@require_GET
@login_required
def asset_table(request: AuthenticatedHttpRequest, project_id: int) -> HttpResponse:
    project = access.get_project_for_user(request.user, project_id)
    status = 200
    problem = ""
    try:
        chosen = selection.from_query(request.GET, project)
    except selection.SelectionError as exc:
        chosen, problem, status = selection.Selection(), str(exc), 400
    matched = (
        selection.assets(project, chosen)
        .select_related("task__prelabel_run__plugin")
        .prefetch_related("batches")
    )
    per_page = parse_count(
        request.GET.get("per_page"), default=PAGE_SIZE, low=5, high=MAX_PAGE_SIZE
    )
    page = Paginator(matched, per_page or PAGE_SIZE).get_page(request.GET.get("page"))
    org_plugins = Plugin.objects.filter(
        organization_id=project.organization_id, type__in=SELECTABLE_TYPES
    )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "projects/asset_table.html",
        {
            "project": project,
            "page": page,
            "problem": problem,
            "filters": chosen,
            "filter_json": json.dumps(chosen.as_json()),
            "query": query.urlencode(),
            "batches": project.batches.all(),
            "stages": project_stage_names(project),
            "statuses": Task.Status.choices,
            "prelabel_plugins": org_plugins,
            "run_plugins": org_plugins.filter(projects=project),
        },
        status=status,
    )


class SelectionFormMixin(forms.Form):
    """The Run dialog's saved selection: a hidden JSON field, checked again by
    run creation (bad ones are a form error there, not a 500)."""

    selection = forms.CharField(required=False, widget=forms.HiddenInput)

    project: Project

    def clean_selection(self) -> dict[str, Any] | None:
        text = (self.cleaned_data.get("selection") or "").strip()
        if not text:
            return None
        try:
            value = json_loads_bounded(text, what="The selection")
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("The selection must be a JSON object.")
        return value

    def selection_summary(self) -> str:
        """“12 assets: status To-Do, batch b1”, or why the selection is bad."""
        text = str(self["selection"].value() or "").strip()
        if not text:
            return ""
        try:
            chosen = selection.parse(
                json_loads_bounded(text, what="The selection"), self.project
            )
        except (ValueError, selection.SelectionError) as exc:
            return f"Bad selection: {exc}"
        count = selection.assets(self.project, chosen).count()
        return f"{count} asset(s): {selection.describe(chosen, self.project)}"

    def can_preview(self) -> bool:
        plugin = getattr(self, "plugin", None)
        return plugin is not None and kind_for(plugin.type).writes_answers


def preview_start(
    request: AuthenticatedHttpRequest, wanted: RunRequest
) -> HttpResponse:
    """The dialog's Preview: a dry run on the first few assets of what the
    dialog would run on (`wanted`, the request its Run button makes); the
    answers are shown in the dialog as they come."""
    try:
        run = run_create(
            dataclasses.replace(
                wanted,
                dry_run=True,
                preview_limit=preview.DEFAULT_ASSETS,
                # Nothing is written, so nothing is replaced.
                replace_submitted=False,
            )
        )
    except RunRequestError as exc:
        return preview_refused(request, exc.errors)
    hub_log(
        run,
        "Preview (dry run): the answers are checked and shown in the Run dialog; "
        "nothing is written to any task.",
    )
    return preview_fragment(request, run)


@require_GET
@login_required
def preview_poll(request: AuthenticatedHttpRequest, run_id: int) -> HttpResponse:
    run = access.get_run_for_user(request.user, run_id)
    if not run.dry_run:
        return HttpResponse("This run is not a preview.", status=404)
    return preview_fragment(request, run)


def preview_fragment(request: AuthenticatedHttpRequest, run: Any) -> HttpResponse:
    run.refresh_from_db()
    # On the run page (?on=page) there is no dialog form to run for real.
    on_page = request.GET.get("on") == "page"
    return render(
        request,
        "runs/run_preview.html",
        {"run": run, "rows": preview.preview_rows(run), "on_page": on_page},
    )


def preview_refused(
    request: AuthenticatedHttpRequest, errors: Mapping[str, Iterable[Any]]
) -> HttpResponse:
    """Why no preview was started (the form's or run creation's errors); 200
    like the dialog's own form errors: htmx swaps no 4xx into the page."""
    messages = [str(m) for field in errors.values() for m in field]
    return render(request, "runs/run_preview.html", {"errors": messages})
