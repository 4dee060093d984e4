"""Celery task of comparisons: takes the id, the service does the work."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="plugins_app.evaluation.compute_comparison")
def compute_comparison(comparison_id: int) -> None:
    """Compute a comparison's figures (progress kept on the row as it goes)."""
    from plugins_app.evaluation.services import comparison_compute

    comparison_compute(comparison_id)
