"""Files of Export runs: the v3 NDJSON export the hub builds for a plugin, and
the file the plugin uploads back for the user.

Both are reached through capability tokens (stored as their SHA-256): the SDK
fetches the export link and PUTs the upload without its apikey.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from plugins_app.runs.models import Run
from plugins_app.runs.transitions import TransitionQuerySet


class ExportSnapshotQuerySet(TransitionQuerySet["ExportSnapshot"]):
    state_field = "state"


class ExportSnapshot(models.Model):
    """One `GET /v2/export` call: the tasks of the chosen stages and batches of
    the run's project, written by a Celery task as a zip holding one NDJSON file."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        BUILDING = "building", "Building"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="snapshots")
    token_hash = models.CharField(max_length=64, unique=True)
    stages = models.JSONField(default=list, blank=True)  # [] = every stage
    batch_ids = models.JSONField(default=list, blank=True)  # [] = every batch
    # Where the SDK will fetch the assets' images (the hub's URL it called).
    base_url = models.CharField(max_length=500)
    state = models.CharField(max_length=20, choices=State, default=State.PENDING)
    file = models.CharField(max_length=500, blank=True)  # name in the storage
    size = models.PositiveBigIntegerField(default=0)
    lines = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    objects = ExportSnapshotQuerySet.as_manager()

    def __str__(self) -> str:
        return f"export of run {self.run_id} ({self.state})"


class ExportUpload(models.Model):
    """A `getUploadUrl` grant and, once PUT, the plugin's export file."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="uploads")
    token_hash = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=255)
    expires_at = models.DateTimeField()
    file = models.CharField(max_length=500, blank=True)  # name in the storage
    size = models.PositiveBigIntegerField(default=0)
    uploaded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} of run {self.run_id}"
