"""Event triggers: which plugins a task event starts, and the runs they
missed (runs/listeners.py hands each event to Celery once its transaction has
committed: the labeler's click never waits for a plugin)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from plugins_app.plugins.models import Plugin, PluginTrigger, PluginType
from plugins_app.workspace import events
from plugins_app.workspace.models import Project, TaskEvent


def triggered_plugin_ids(project_id: int, event_name: str) -> list[int]:
    rows = PluginTrigger.objects.filter(project_id=project_id).values_list(
        "plugin_id", "events"
    )
    # A few triggers per project at most: filtering the JSON list here works
    # the same on SQLite and PostgreSQL.
    return [plugin_id for plugin_id, names in rows if event_name in (names or [])]


# An event younger than this is still on its way through the broker.
RECOVERY_GRACE = timedelta(seconds=20)


def missed_triggers(now: datetime) -> list[tuple[int, int]]:
    """(plugin id, event id) of recent triggering events that have no run of
    a plugin triggered by them: their Celery task was never queued or lost.
    Only events after the trigger was set count, and only complete ones."""
    since = now - timedelta(seconds=settings.HUB_TRIGGER_RECOVERY_WINDOW_SECONDS)
    missed: list[tuple[int, int]] = []
    for trigger in PluginTrigger.objects.all():
        if not trigger.events:
            continue
        candidates = TaskEvent.objects.filter(
            task__project_id=trigger.project_id,
            name__in=trigger.events,
            created_at__gte=max(since, trigger.created_at),
            created_at__lt=now - RECOVERY_GRACE,
        ).exclude(runs__plugin_id=trigger.plugin_id)
        for event_id, data in candidates.values_list("pk", "data"):
            if (data or {}).get("complete") is not False:
                missed.append((trigger.plugin_id, event_id))
    return missed


def plugin_set_triggers(
    plugin: Plugin, *, projects: list[Project], event_names: list[str]
) -> None:
    """The plugin runs on these projects for these events (and on no other)."""
    unknown = set(event_names) - set(events.TRIGGER_EVENTS)
    if unknown:
        raise ValueError(f"Not trigger events: {', '.join(sorted(unknown))}")
    if event_names and plugin.type != PluginType.EVENT:
        raise ValueError("Only Event-triggered plugins can be triggered by events.")
    wanted = [p for p in projects if p.organization_id == plugin.organization_id]
    with transaction.atomic():
        if not event_names:
            PluginTrigger.objects.filter(plugin=plugin).delete()
            return
        PluginTrigger.objects.filter(plugin=plugin).exclude(project__in=wanted).delete()
        for project in wanted:
            PluginTrigger.objects.update_or_create(
                plugin=plugin, project=project, defaults={"events": list(event_names)}
            )


def plugin_trigger_events(plugin: Plugin) -> list[str]:
    """The events the plugin is triggered by (the same on each of its projects
    when set through the dialog or the API)."""
    names: list[str] = []
    for trigger in plugin.triggers.all():
        names += [n for n in trigger.events if n not in names]
    return [n for n in events.TRIGGER_EVENTS if n in names]
