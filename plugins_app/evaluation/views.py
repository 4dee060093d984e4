"""Pages of comparisons: the project's list with the form that starts one, a
comparison's table, charts and per-asset list, and its progress (polled by htmx
until the Celery task is done)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
)

from plugins_app.evaluation import asset_view, charts
from plugins_app.evaluation.models import Comparison
from plugins_app.evaluation.recovery import comparison_retry
from plugins_app.evaluation.services import (
    COMPARED_KINDS,
    MAX_RUNS,
    ComparisonError,
    ComparisonNotFound,
    comparison_create,
)
from plugins_app.runs.models import Run
from plugins_app.web import access
from plugins_app.web.request_types import AuthenticatedHttpRequest

# The form lists the project's latest finished runs that can be compared.
RUNS_OFFERED = 50


def visible_comparisons(user: Any) -> Any:
    return Comparison.objects.filter(organization__in=access.user_orgs(user))


def get_comparison_for_user(user: Any, comparison_id: int) -> Comparison:
    try:
        return visible_comparisons(user).select_related("project").get(pk=comparison_id)
    except Comparison.DoesNotExist:
        raise Http404("No such comparison") from None


@require_http_methods(["GET", "POST"])
@login_required
def comparison_list(request: AuthenticatedHttpRequest, project_id: int) -> HttpResponse:
    project = access.get_project_for_user(request.user, project_id)
    error, status = "", 200
    if request.method == "POST":
        try:
            comparison = comparison_create(
                user=request.user,
                # Oldest first, as versions usually follow each other.
                run_ids=sorted(
                    (_int(v) for v in request.POST.getlist("runs")), key=_order
                ),
                iou_threshold=request.POST.get("iou_threshold") or 0.5,
                project_id=project.pk,
            )
        except ComparisonNotFound as exc:
            raise Http404(str(exc)) from None
        except ComparisonError as exc:
            error, status = str(exc), 400
        else:
            return redirect("evaluation:comparison-detail", comparison.pk)
    runs = (
        Run.objects.filter(
            project=project,
            plugin__type__in=COMPARED_KINDS,
            status__in=Run.FINISHED,
            dry_run=False,
        )
        .select_related("plugin")
        .order_by("-id")[:RUNS_OFFERED]
    )
    return render(
        request,
        "evaluation/comparison_list.html",
        {
            "project": project,
            "runs": runs,
            "comparisons": project.comparisons.all()[:50],
            "error": error,
            "max_runs": MAX_RUNS,
        },
        status=status,
    )


def _order(value: Any) -> tuple[int, int]:
    return (0, value) if isinstance(value, int) else (1, 0)


def _int(value: str) -> Any:
    # Left as given when not a number: the service's check names the field.
    return int(value) if value.isdigit() and len(value) < 12 else value


@require_GET
@login_required
def comparison_detail(
    request: AuthenticatedHttpRequest, comparison_id: int
) -> HttpResponse:
    comparison = get_comparison_for_user(request.user, comparison_id)
    return render(request, "evaluation/comparison_detail.html", _context(comparison))


@require_GET
@login_required
def comparison_progress(
    request: AuthenticatedHttpRequest, comparison_id: int
) -> HttpResponse:
    comparison = get_comparison_for_user(request.user, comparison_id)
    response = render(
        request,
        "evaluation/comparison_detail.html#progress",
        {"comparison": comparison},
    )
    if comparison.state in (Comparison.State.DONE, Comparison.State.FAILED):
        response["HX-Refresh"] = "true"  # the whole page now has its figures
    return response


@require_POST
@login_required
def comparison_retry_view(
    request: AuthenticatedHttpRequest, comparison_id: int
) -> HttpResponse:
    """The Retry button of a failed comparison: computed again from the start."""
    comparison = get_comparison_for_user(request.user, comparison_id)
    try:
        comparison_retry(comparison)
    except ComparisonError as exc:
        return HttpResponse(str(exc), status=409, content_type="text/plain")
    return redirect("evaluation:comparison-detail", comparison.pk)


def _context(comparison: Comparison) -> dict[str, Any]:
    result = comparison.result or {}
    runs = charts.run_colours(result)
    rows = [
        {
            "cls": cls,
            "cells": [
                {**run["classes"].get(cls["schemaId"], {}), "run": run} for run in runs
            ],
        }
        for cls in result.get("classes", [])
    ]
    assets = [
        {**row, "runs": list(zip(runs, row["runs"], strict=False))}
        for row in result.get("assets", [])
    ]
    return {
        "comparison": comparison,
        "project": comparison.project,
        "result": result,
        "runs": runs,
        "rows": rows,
        "charts": charts.class_charts(result),
        "assets": assets,
    }


@require_GET
@login_required
def comparison_asset(
    request: AuthenticatedHttpRequest, comparison_id: int, task_id: int
) -> HttpResponse:
    """One asset on the comparison canvas: the reviewed answer and what each
    compared run wrote there, one colour and layer each (asset_view.py)."""
    comparison = get_comparison_for_user(request.user, comparison_id)
    task = access.get_task_for_user(request.user, task_id, project=comparison.project)
    state = asset_view.asset_state(comparison, task)
    return render(
        request,
        "evaluation/comparison_asset.html",
        {
            "comparison": comparison,
            "project": comparison.project,
            "task": task,
            "state": state,
        },
    )
