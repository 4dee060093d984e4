"""Small builders shared by test modules: a connected instance without a
socket, and a run created the way the Run dialog creates it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from plugins_app.plugins.models import Plugin, PluginInstance
from plugins_app.runs.creation import RunRequest, run_create
from plugins_app.runs.models import Run, WorkItem

CHANNEL = "test!instance"


def connect_instance(
    plugin: Plugin, channel: str = CHANNEL, address: str = ""
) -> PluginInstance:
    """A live instance (fresh heartbeat) with no socket behind it: jobs sent to
    it land in the outbox when no ASGI loop runs in the test process."""
    instance, _ = PluginInstance.objects.get_or_create(
        channel_name=channel,
        defaults={"plugin": plugin, "address": address or f"{channel}:1"},
    )
    return instance


def new_run(
    workspace: Any,
    plugin: Plugin,
    *external_ids: str,
    user: Any = None,
    dispatch: bool = False,
    mapping: dict[str, str] | None = None,
) -> Run:
    return run_create(
        RunRequest(
            plugin=plugin,
            project=workspace.project,
            user=user or workspace.annotator,
            class_mapping={"face": "face-box"} if mapping is None else mapping,
            config_json="{}",
            external_ids=list(external_ids) or ["astronaut"],
            batch_ids=[],
        ),
        dispatch=dispatch,
    )


def pass_deadline(*items: WorkItem | Run) -> None:
    """Move the deadline of these items (or of every item of these runs) into
    the past, as if the plugin's timeout had run out."""
    past = timezone.now() - timedelta(seconds=1)
    for target in items:
        scope = {"run": target} if isinstance(target, Run) else {"pk": target.pk}
        WorkItem.objects.filter(**scope).update(deadline_at=past)


def bulk_assets(project: Any, count: int, *, prefix: str = "bulk") -> list[str]:
    """`count` assets (100 x 80 images, no file behind them) with their tasks,
    written in bulk; returns their external IDs in order."""
    from plugins_app.workspace.models import Asset, Task

    external_ids = [f"{prefix}-{i:05d}" for i in range(count)]
    assets = Asset.objects.bulk_create(
        Asset(project=project, external_id=e, file="none.png", width=100, height=80)
        for e in external_ids
    )
    Task.objects.bulk_create(Task(project=project, asset=a) for a in assets)
    return external_ids


def leased_project_run(
    workspace: Any, plugin: Plugin, *, stages: list[str] | None = None
) -> tuple[Run, dict[str, Any]]:
    """A Batch Model or Export run over the whole project whose job went out to
    a socketless instance; returns the run and the job (with its apiKey)."""
    from plugins_app.runs.dispatch import dispatch_pending
    from plugins_app.wire.models import OutboxMessage

    connect_instance(plugin, f"{CHANNEL}-{plugin.pk}")
    run = run_create(
        RunRequest(
            plugin=plugin,
            project=workspace.project,
            user=workspace.annotator,
            class_mapping={"face": "face-box", "coin": "coin-box"},
            config_json="{}",
            external_ids=[],
            batch_ids=[],
            inputs={"stages": stages or []},
        ),
        dispatch=False,
    )
    assert dispatch_pending(plugin.pk) == 1
    session = run.items.get().session
    for row in OutboxMessage.objects.filter(method="send"):
        if row.message["job"]["session"] == session:
            return run, row.message["job"]
    raise AssertionError("no job sent for this run")


def leased_per_instance() -> dict[str, int]:
    """How many jobs each instance (by channel name) holds now."""
    counts: dict[str, int] = {}
    for item in WorkItem.objects.filter(state=WorkItem.State.LEASED):
        name = item.instance.channel_name
        counts[name] = counts.get(name, 0) + 1
    return counts
