"""Celery task of comparisons: takes the id, the service does the work."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="plugins_app.evaluation.compute_comparison")
def compute_comparison(comparison_id: int) -> None:
    """Compute a comparison's figures (progress kept on the row as it goes)."""
    from plugins_app.evaluation.services import comparison_compute

    comparison_compute(comparison_id)


@shared_task(name="plugins_app.evaluation.sweep_comparisons")
def sweep_comparisons() -> dict[str, int]:
    """Beat: re-queue (or fail) comparisons whose worker stopped beating."""
    from plugins_app.evaluation.recovery import comparisons_sweep

    return comparisons_sweep()
