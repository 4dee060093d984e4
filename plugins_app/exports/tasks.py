"""Celery tasks of exports. Their names stay "plugins_app.tasks.<name>" (the
beat schedule and queued messages name them so)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="plugins_app.tasks.build_export")
def build_export(snapshot_id: int) -> None:
    """Write the v3 NDJSON export of an Export run (streamed to storage)."""
    from plugins_app.exports.services import snapshot_build

    snapshot_build(snapshot_id)


@shared_task(name="plugins_app.tasks.expire_export_snapshots")
def expire_export_snapshots() -> int:
    """Beat: delete the files of exports whose link expired (the plugins' own
    uploads stay: they are what users download)."""
    from plugins_app.exports.services import snapshots_expire

    return snapshots_expire()
