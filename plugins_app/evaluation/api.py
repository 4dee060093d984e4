"""`/api/comparisons`: the comparisons of the JSON API, a router mounted on the
hub's NinjaAPI (plugins_app/urls.py), with its authentication."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Router, Schema, Status
from ninja.errors import HttpError

from plugins_app.evaluation.models import Comparison
from plugins_app.evaluation.recovery import comparison_retry
from plugins_app.evaluation.services import (
    ComparisonError,
    ComparisonNotFound,
    comparison_create,
)
from plugins_app.evaluation.views import get_comparison_for_user, visible_comparisons
from plugins_app.web.api import DbId
from plugins_app.web.request_types import AuthenticatedHttpRequest

router = Router(tags=["comparisons"])


class ComparisonIn(Schema):
    runs: list[DbId]
    iou_threshold: float = 0.5


class ComparisonOut(Schema):
    id: int
    project: int
    runs: list[int]
    iou_threshold: float
    state: str
    progress: int
    total: int
    error: str
    created_at: datetime
    finished_at: datetime | None
    # The figures once done (see docs/evaluation.md for each key); {} before.
    result: dict[str, Any]


def comparison_out(comparison: Comparison) -> dict[str, Any]:
    return {
        "id": comparison.pk,
        "project": comparison.project_id,
        "runs": comparison.run_ids,
        "iou_threshold": comparison.iou_threshold,
        "state": comparison.state,
        "progress": comparison.progress,
        "total": comparison.total,
        "error": comparison.error,
        "created_at": comparison.created_at,
        "finished_at": comparison.finished_at,
        "result": comparison.result,
    }


@router.get("", response=list[ComparisonOut])
def list_comparisons(
    request: AuthenticatedHttpRequest, project: DbId | None = None
) -> list[dict[str, Any]]:
    found = visible_comparisons(request.user)
    if project is not None:
        found = found.filter(project_id=project)
    return [comparison_out(c) for c in found[:100]]


@router.post("", response={202: ComparisonOut})
def create_comparison(
    request: AuthenticatedHttpRequest, payload: ComparisonIn
) -> Status[dict[str, Any]]:
    try:
        comparison = comparison_create(
            user=request.user, run_ids=payload.runs, iou_threshold=payload.iou_threshold
        )
    except ComparisonNotFound as exc:
        raise HttpError(404, str(exc)) from None
    except ComparisonError as exc:
        raise HttpError(400, str(exc)) from None
    comparison.refresh_from_db()  # eager Celery may have computed it already
    return Status(202, comparison_out(comparison))


@router.post("/{comparison_id}/retry", response={202: ComparisonOut})
def retry_comparison(
    request: AuthenticatedHttpRequest, comparison_id: DbId
) -> Status[dict[str, Any]]:
    """A failed comparison computed again from the start."""
    comparison = get_comparison_for_user(request.user, comparison_id)
    try:
        comparison_retry(comparison)
    except ComparisonError as exc:
        raise HttpError(409, str(exc)) from None
    comparison.refresh_from_db()
    return Status(202, comparison_out(comparison))


@router.get("/{comparison_id}", response=ComparisonOut)
def get_comparison(
    request: AuthenticatedHttpRequest, comparison_id: DbId
) -> dict[str, Any]:
    return comparison_out(get_comparison_for_user(request.user, comparison_id))
