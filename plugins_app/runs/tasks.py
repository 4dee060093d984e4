"""Celery tasks of runs: interfaces that take ids and call the run core.

Their names stay "plugins_app.tasks.<name>" (where they were defined before
runs/ was split): the beat schedule, hosted.tasks.INLINE_FROM and messages
already queued by a running hub name them so. The modules they call are
imported in the task bodies: those modules queue these tasks."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="plugins_app.tasks.sweep_runs")
def sweep_runs() -> dict[str, int]:
    """Time out expired leases and unclaimed jobs; re-dispatch pending work."""
    from plugins_app.runs.sweep import runs_sweep

    return runs_sweep()


@shared_task(name="plugins_app.tasks.dispatch_plugin_work")
def dispatch_plugin_work(plugin_id: int) -> int:
    from plugins_app.runs.dispatch import dispatch_pending

    return dispatch_pending(plugin_id)


# Acknowledged after it ran: a worker that dies mid-task gets it redelivered,
# which run_create_for_event makes harmless (one run per plugin and event).
@shared_task(
    name="plugins_app.tasks.create_event_run",
    acks_late=True,
    reject_on_worker_lost=True,
)
def create_event_run(plugin_id: int, event_id: int) -> int | None:
    """A task event triggered this plugin: create its run (once) and dispatch."""
    from plugins_app.runs.creation import run_create_for_event

    run = run_create_for_event(plugin_id, event_id)
    return run.pk if run is not None else None


@shared_task(name="plugins_app.tasks.workflow_stage_entered")
def workflow_stage_entered(task_id: int, stage_name: str) -> int | None:
    """A task entered a workflow Plugin stage: send it to the stage's plugin."""
    from plugins_app.runs.workflow import workflow_run_create

    run = workflow_run_create(task_id=task_id, stage_name=stage_name)
    return run.pk if run else None


@shared_task(name="plugins_app.tasks.deliver_connector_job")
def deliver_connector_job(item_id: int) -> str:
    """POST one leased job to its plugin's REST connector (runs/connector.py)."""
    from plugins_app.runs.dispatch.rest import connector_deliver

    return connector_deliver(item_id)


@shared_task(name="plugins_app.tasks.probe_connectors")
def probe_connectors() -> int:
    """Probe every REST connector's /heartbeat; returns how many answered."""
    from plugins_app.plugins.models import Delivery, Plugin
    from plugins_app.runs.dispatch.rest import connector_probe

    ids = Plugin.objects.filter(delivery=Delivery.REST).exclude(connector_url="")
    return sum(connector_probe(pk) for pk in ids.values_list("pk", flat=True))


@shared_task(name="plugins_app.tasks.probe_connector")
def probe_connector(plugin_id: int) -> bool:
    from plugins_app.runs.dispatch.rest import connector_probe

    return connector_probe(plugin_id)


@shared_task(name="plugins_app.tasks.retrigger_missed_events")
def retrigger_missed_events() -> int:
    """Beat: create the runs of triggering events whose task never ran."""
    from django.utils import timezone

    from plugins_app.plugins.triggers import missed_triggers
    from plugins_app.runs.creation import run_create_for_event

    missed = missed_triggers(timezone.now())
    for plugin_id, event_id in missed:
        run_create_for_event(plugin_id, event_id)
    return len(missed)
