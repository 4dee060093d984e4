"""Celery tasks: interfaces that take ids and call services."""

from __future__ import annotations

from celery import shared_task


@shared_task
def sweep_runs() -> dict[str, int]:
    """Time out expired leases and unclaimed jobs; re-dispatch pending work."""
    from plugins_app.runs.services import runs_sweep

    return runs_sweep()


@shared_task
def dispatch_plugin_work(plugin_id: int) -> int:
    from plugins_app.runs.services import dispatch_pending

    return dispatch_pending(plugin_id)
