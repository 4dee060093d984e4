"""A comparison of finished runs against the reviewed labels, kept with its
figures so the page and the API read them without recomputing."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from plugins_app.workspace.models import Organization, Project


class Comparison(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="comparisons"
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="comparisons"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # In the order chosen: the table's columns and the chart's colours follow it.
    # Ids, not a relation: a deleted run's figures stay readable here.
    run_ids = models.JSONField(default=list)
    iou_threshold = models.FloatField(default=0.5)
    state = models.CharField(max_length=20, choices=State, default=State.PENDING)
    progress = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # The heartbeat: set when queued, claimed and at every progress step. A
    # comparison pending or running with no beat for a while lost its worker
    # (recovery.py re-queues it, or fails it with the reason).
    updated_at = models.DateTimeField(default=timezone.now)
    # How many times a worker took it; a worker writes only while the row
    # still carries its own attempt (a re-queued comparison's old worker, if
    # alive after all, no longer writes).
    attempt = models.PositiveSmallIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"comparison #{self.pk} of runs {self.run_ids}"
