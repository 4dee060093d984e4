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


# Acknowledged after it ran: a worker that dies mid-task gets it redelivered,
# which run_create_for_event makes harmless (one run per plugin and event).
@shared_task(acks_late=True, reject_on_worker_lost=True)
def create_event_run(plugin_id: int, event_id: int) -> int | None:
    """A task event triggered this plugin: create its run (once) and dispatch."""
    from plugins_app.runs.services import run_create_for_event

    run = run_create_for_event(plugin_id, event_id)
    return run.pk if run is not None else None


@shared_task
def workflow_stage_entered(task_id: int, stage_name: str) -> int | None:
    """A task entered a workflow Plugin stage: send it to the stage's plugin."""
    from plugins_app.runs.services import workflow_run_create

    run = workflow_run_create(task_id=task_id, stage_name=stage_name)
    return run.pk if run else None


@shared_task
def deliver_connector_job(item_id: int) -> str:
    """POST one leased job to its plugin's REST connector (runs/connector.py)."""
    from plugins_app.runs.services import connector_deliver

    return connector_deliver(item_id)


@shared_task
def probe_connectors() -> int:
    """Probe every REST connector's /heartbeat; returns how many answered."""
    from plugins_app.plugins.models import Delivery, Plugin
    from plugins_app.runs.services import connector_probe

    ids = Plugin.objects.filter(delivery=Delivery.REST).exclude(connector_url="")
    return sum(connector_probe(pk) for pk in ids.values_list("pk", flat=True))


@shared_task
def probe_connector(plugin_id: int) -> bool:
    from plugins_app.runs.services import connector_probe

    return connector_probe(plugin_id)


@shared_task
def retrigger_missed_events() -> int:
    """Beat: create the runs of triggering events whose task never ran."""
    from django.utils import timezone

    from plugins_app.plugins.triggers import missed_triggers
    from plugins_app.runs.services import run_create_for_event

    missed = missed_triggers(timezone.now())
    for plugin_id, event_id in missed:
        run_create_for_event(plugin_id, event_id)
    return len(missed)


@shared_task
def build_export(snapshot_id: int) -> None:
    """Write the v3 NDJSON export of an Export run (streamed to storage)."""
    from plugins_app.exports.services import snapshot_build

    snapshot_build(snapshot_id)


@shared_task
def expire_export_snapshots() -> int:
    """Beat: delete the files of exports whose link expired (the plugins' own
    uploads stay: they are what users download)."""
    from plugins_app.exports.services import snapshots_expire

    return snapshots_expire()
