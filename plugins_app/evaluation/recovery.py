"""Comparisons whose worker died: a comparison pending or running whose
heartbeat (`updated_at`, set at every progress step) is older than
HUB_COMPARISON_STALE_SECONDS lost its worker, or its Celery message. Celery
beat's sweep (`sweep_comparisons`) queues it again, once: computing is
idempotent (the figures are recomputed from the stored history, and a worker
writes only under its own attempt). A comparison whose worker was lost again
is failed with the reason; its page offers Retry, which queues it afresh."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from plugins_app.evaluation.models import Comparison
from plugins_app.evaluation.services import ComparisonError, comparison_queue

# The first attempt and one re-queue by the sweep; then the user decides.
MAX_ATTEMPTS = 2


def comparisons_sweep() -> dict[str, int]:
    """Re-queue or fail the comparisons without a heartbeat."""
    now = timezone.now()
    quiet = float(settings.HUB_COMPARISON_STALE_SECONDS)
    stale = Comparison.objects.filter(
        state__in=(Comparison.State.PENDING, Comparison.State.RUNNING),
        updated_at__lt=now - timedelta(seconds=quiet),
    ).values_list("pk", "state", "attempt", "updated_at")
    requeued = failed = 0
    for pk, state, attempt, beat in stale:
        # Only if nothing moved it since it was read (a worker's beat, a retry).
        unchanged = Comparison.objects.filter(
            pk=pk, state=state, attempt=attempt, updated_at=beat
        )
        if attempt >= MAX_ATTEMPTS:
            failed += unchanged.update(
                state=Comparison.State.FAILED,
                finished_at=now,
                updated_at=now,
                error=(
                    f"The worker computing it stopped {attempt} times (no "
                    f"progress for {quiet:g} s each time): the hub gave up. "
                    "Retry to compute it again."
                ),
            )
            continue
        with transaction.atomic():
            if unchanged.update(state=Comparison.State.PENDING, updated_at=now):
                comparison_queue(pk)
                requeued += 1
    return {"requeued": requeued, "failed": failed}


def comparison_retry(comparison: Comparison) -> None:
    """A failed comparison computed again from the start (the Retry button)."""
    if not Comparison.objects.filter(
        pk=comparison.pk, state=Comparison.State.FAILED
    ).update(
        state=Comparison.State.PENDING,
        attempt=0,
        progress=0,
        error="",
        result={},
        finished_at=None,
        updated_at=timezone.now(),
    ):
        raise ComparisonError("Only a failed comparison can be retried.")
    comparison_queue(comparison.pk)
