"""The run ledger: runs, their work items, log lines and per-run API keys.

Every state change goes through the modules of `plugins_app.runs`; nothing else writes
these rows.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from plugins_app.plugins.models import VERSION_LENGTH, Plugin, PluginInstance
from plugins_app.runs.transitions import TransitionQuerySet
from plugins_app.workspace.models import Asset, Organization, Project


class RunQuerySet(TransitionQuerySet["Run"]):
    state_field = "status"


class WorkItemQuerySet(TransitionQuerySet["WorkItem"]):
    state_field = "state"


class Run(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        TIMED_OUT = "timed_out", "Timed out"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.TIMED_OUT, Status.CANCELLED)
    OPEN = (Status.QUEUED, Status.RUNNING)

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="runs"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="runs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=20, choices=Status, default=Status.QUEUED, db_index=True
    )
    # The job's `categorySchema`: [{"schemaId", "modelClass"}] or None when unmapped.
    class_mapping = models.JSONField(null=True, blank=True)
    config_json = models.TextField(default="{}")
    batch_ids = models.JSONField(default=list, blank=True)
    # What the Run dialog asked for beyond mapping and config, per plugin type:
    # File Explorer {"storage_id", "folder", "files", "upload"}; Markdown
    # {"csv_name", "csv_base64", "markdown_text"} (plugins/types.py reads them).
    inputs = models.JSONField(default=dict, blank=True)
    # What started the run: "" (a person or the API), an event name from
    # workspace/events.py, or "workflow" (a task entered a Plugin stage).
    trigger = models.CharField(max_length=50, blank=True, db_index=True)
    # The task an event-triggered or workflow run is about.
    task = models.ForeignKey(
        "workspace.Task",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
    )
    # The event that triggered the run: at most one run per (plugin, event),
    # however often the Celery task that creates it is delivered.
    event = models.ForeignKey(
        "workspace.TaskEvent",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
    )
    error = models.TextField(blank=True)
    # Progress reported by the plugin's log records (`progress`/`total` extras).
    reported_progress = models.PositiveIntegerField(null=True, blank=True)
    reported_total = models.PositiveIntegerField(null=True, blank=True)
    # Batch Model runs: assets in scope and assets labeled through /v2/import/labels.
    assets_total = models.PositiveIntegerField(default=0)
    assets_labeled = models.PositiveIntegerField(default=0)
    # An admin's explicit choice: write even over answers people submitted or
    # reviewed (workspace/writes.py); off, such tasks are kept and skipped.
    replace_submitted = models.BooleanField(default=False)
    # The asset table's saved filter the run was started on (workspace/
    # selection.py), None for runs scoped by external IDs or batches. A plugin's
    # get_assets sees only these assets (Batch Model runs).
    selection = models.JSONField(null=True, blank=True)
    # A Preview (runs/preview.py): the plugin runs on a few assets and what it
    # answers is kept in PreviewAnswer, never written to a task. db_default so
    # raw INSERTs that do not name the column still get False.
    dry_run = models.BooleanField(default=False, db_default=False)
    # When and by whom the run's writes were undone (runs/undo.py).
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The plugin's version when the run was created (plugins/versions.py); each
    # item keeps the version that actually answered it.
    plugin_version = models.CharField(max_length=VERSION_LENGTH, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The dashboard's runs by status in a window, one plugin's only.
            models.Index(fields=["plugin", "created_at"], name="run_plugin_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["plugin", "event"],
                condition=models.Q(event__isnull=False),
                name="one_run_per_plugin_event",
            )
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.plugin}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def duration_seconds(self) -> float | None:
        if not self.started_at:
            return None
        end = self.finished_at or timezone.now()
        return (end - self.started_at).total_seconds()


PRIORITY_INTERACTIVE = 0
PRIORITY_BATCH = 10


class WorkItem(models.Model):
    """One job sent to one plugin instance: an asset of a Model run, or a whole
    Batch Model run. The lease names the instance that holds it."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        LEASED = "leased", "Leased"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        # Answered, but the task holds a person's work: the answer was not
        # written (the reason is in `error`); not a failure of the run.
        SKIPPED = "skipped", "Skipped"

    class Failure(models.TextChoices):
        ERROR = "error", "Plugin reported an error"
        INVALID = "invalid", "Invalid response"
        TIMEOUT = "timeout", "Timed out"
        CANCELLED = "cancelled", "Cancelled"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="items")
    # The run's plugin, copied here so the dispatcher finds the next job with one
    # indexed lookup instead of a join sorted across every run.
    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="+")
    asset = models.ForeignKey(
        Asset, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    # The job's `session`: how logs and responses find their item.
    session = models.CharField(max_length=64, unique=True)
    state = models.CharField(
        max_length=20, choices=State, default=State.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    # Lower goes first: a one-asset Model run is someone waiting in the dialog.
    priority = models.PositiveSmallIntegerField(default=PRIORITY_BATCH)
    instance = models.ForeignKey(
        PluginInstance,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="items",
    )
    # When it (last) started waiting for an instance: at creation or re-queue.
    queued_at = models.DateTimeField(default=timezone.now)
    leased_at = models.DateTimeField(null=True, blank=True)
    # Renewed while the holding instance answers pings; past it, the holder is
    # gone and the job goes back to the queue.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # leased_at + the plugin's timeout: past it, the attempt timed out.
    deadline_at = models.DateTimeField(null=True, blank=True)
    failure = models.CharField(max_length=20, choices=Failure, blank=True)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The version of the plugin that answered it (its instance's declared one,
    # the hosted code's hash, or the admin's), written when it ends.
    plugin_version = models.CharField(max_length=VERSION_LENGTH, blank=True)

    objects = WorkItemQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["plugin", "state", "priority", "id"], name="next_job"),
            # The dashboard's figures: a plugin's items that ended in a window
            # (dashboard/figures.py), read without its older items.
            models.Index(fields=["plugin", "finished_at"], name="item_plugin_finished"),
        ]

    def __str__(self) -> str:
        return f"item {self.pk} ({self.state})"


class RunLogLine(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="log_lines")
    item = models.ForeignKey(
        WorkItem, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    # "HUB" marks lines the hub itself wrote (dispatch, validation, timeouts).
    level = models.CharField(max_length=20)
    message = models.TextField()
    extra = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"[{self.level}] {self.message[:60]}"


class RunApiKey(models.Model):
    """The `apiKey` of a job: scoped to the run's project, expiring with the run."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="api_keys")
    key_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"API key of run {self.run_id}"

    def is_valid(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and self.expires_at > now


class PreviewAnswer(models.Model):
    """What a dry run's plugin answered for one asset, checked but not written:
    the objects that passed validation, and the problems of those that did not
    (runs/preview.py). A Model answer or a held Batch import record."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="previews")
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="+")
    via = models.CharField(max_length=30)
    answer = models.JSONField(default=dict, blank=True)
    problems = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "asset"], name="one_preview_per_asset"
            )
        ]

    def __str__(self) -> str:
        return f"preview of {self.asset_id} in run {self.run_id}"
