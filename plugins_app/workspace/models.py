"""Organizations, their members and the labeling data plugins work on."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from plugins_app.workspace.workflow import default_workflow


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        REVIEWER = "reviewer", "Reviewer"  # labels too, and accepts or rejects
        ANNOTATOR = "annotator", "Annotator"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ANNOTATOR)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="one_role")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class Project(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="projects"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # Ango `categorySchema`: {"tools": [...], "classifications": [...], "relations": []}
    ontology = models.JSONField(default=dict, blank=True)
    # The stages a task goes through, in order (see workspace/workflow.py).
    workflow = models.JSONField(default=default_workflow, blank=True)
    # Consensus: how many labelers submit each asset before it moves on.
    labels_per_asset = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def ontology_entries(self) -> list[dict[str, Any]]:
        """Tools then classifications: what a model class can be mapped to."""
        ontology = self.ontology or {}
        return list(ontology.get("tools", [])) + list(
            ontology.get("classifications", [])
        )


class Batch(models.Model):
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="batches"
    )
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="batch_name")
        ]

    def __str__(self) -> str:
        return self.name


class Storage(models.Model):
    """A cloud storage (bucket) of an organization, optionally limited to one
    project. Its credentials are stored encrypted (workspace/crypto.py) and are
    handed only to runs of a project allowed to use it (`usable_by`)."""

    class Provider(models.TextChoices):
        AWS = "aws", "AWS S3"
        S3_COMPATIBLE = "s3", "S3-compatible (endpoint URL)"
        GCP = "gcp", "Google Cloud Storage"
        AZURE = "azure", "Azure Blob Storage"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="storages"
    )
    # Empty: every project of the organization may use it.
    project = models.ForeignKey(
        Project,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="storages",
        help_text="Leave empty to share it with every project of the organization.",
    )
    name = models.CharField(max_length=200)
    provider = models.CharField(max_length=20, choices=Provider, default=Provider.AWS)
    bucket = models.CharField(max_length=255)
    region = models.CharField(max_length=100, blank=True)
    endpoint_url = models.URLField(blank=True, help_text="S3-compatible storages only.")
    # Fernet token of {"publicKey", "privateKey"}; never stored in clear.
    credentials_encrypted = models.TextField(editable=False, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def set_credentials(self, public_key: str, private_key: str) -> None:
        from plugins_app.workspace.crypto import encrypt_json

        self.credentials_encrypted = encrypt_json(
            {"publicKey": public_key, "privateKey": private_key}
        )

    def credentials(self) -> dict[str, str]:
        from plugins_app.workspace.crypto import decrypt_json

        return decrypt_json(self.credentials_encrypted)

    @classmethod
    def usable_by(cls, project: Project) -> models.QuerySet[Storage]:
        return cls.objects.filter(organization_id=project.organization_id).filter(
            models.Q(project__isnull=True) | models.Q(project=project)
        )


class Asset(models.Model):
    class Kind(models.TextChoices):
        IMAGE = "image", "Image file"
        MARKDOWN = "markdown", "Markdown"
        URL = "url", "Cloud or URL record"

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="assets"
    )
    external_id = models.CharField(max_length=300)
    kind = models.CharField(max_length=20, choices=Kind, default=Kind.IMAGE)
    # Path below MEDIA_ROOT; served to browsers by the web UI and to plugins
    # through signed links (the SDK fetches dataURL without credentials).
    file = models.CharField(max_length=500, blank=True)
    # Kind.URL: where the data lives (a bucket object's URL); Kind.MARKDOWN: the
    # markdown text itself (rendered escaped on the asset page).
    url = models.URLField(max_length=2000, blank=True)
    content = models.TextField(blank=True)
    storage = models.ForeignKey(
        Storage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Image size in pixels; 0 when unknown (cloud records, markdown).
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    batches = models.ManyToManyField(Batch, related_name="assets", blank=True)
    # The plugin run that created it (File Explorer, Markdown), if any.
    created_by_run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["external_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"], name="asset_external_id"
            )
        ]

    def __str__(self) -> str:
        return self.external_id


class Task(models.Model):
    """The labeling task of an asset; `answer` holds its current labels."""

    class Status(models.TextChoices):
        TODO = "TODO", "To-Do"
        SUBMITTED = "SUBMITTED", "Submitted"
        REVIEWED = "REVIEWED", "Reviewed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tasks")
    asset = models.OneToOneField(Asset, on_delete=models.CASCADE, related_name="task")
    stage = models.CharField(max_length=100, default="Label")
    status = models.CharField(max_length=20, choices=Status, default=Status.TODO)
    # {"tools": [...], "classifications": [...], "relations": [...]} (Ango naming)
    answer = models.JSONField(default=dict, blank=True)
    # Free-form key/values set by people and plugins (e.g. a QA bot's accuracy).
    metadata = models.JSONField(default=dict, blank=True)
    # The run that wrote the current pre-label, if any.
    prelabel_run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"task of {self.asset}"


class LabelingJob(models.Model):
    """Parallel labeling (workspace/jobs.py): a part of the project's ontology
    (some tools and classifications) labeled by its own members. A project with
    jobs has each task labeled once per job; when every job is in, the hub
    raises `task.jobs_complete` for a merging plugin."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="jobs")
    name = models.CharField(max_length=100)
    position = models.PositiveSmallIntegerField(default=0)
    # Ontology schemaIds (tools, classifications); each in at most one job.
    tools = models.JSONField(default=list, blank=True)
    classifications = models.JSONField(default=list, blank=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="labeling_jobs", blank=True
    )

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="job_name")
        ]

    def __str__(self) -> str:
        return self.name


class Submission(models.Model):
    """One labeler's answer for a task. With consensus (`labels_per_asset` N),
    the task moves on when N different labelers have an active submission;
    with labeling jobs, when every job has one (its part of the answer only).
    Sending the task back retires them (`active=False`), keeping the history."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="submissions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    # Parallel labeling: the job this is the part of (None without jobs). A job
    # with submissions cannot be deleted alone (they are people's work); RESTRICT,
    # not PROTECT, so that deleting the whole project still deletes both.
    job = models.ForeignKey(
        LabelingJob,
        null=True,
        blank=True,
        on_delete=models.RESTRICT,
        related_name="submissions",
    )
    answer = models.JSONField(default=dict, blank=True)
    active = models.BooleanField(default=True)
    submitted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # A labeler counts once towards a task's consensus.
            models.UniqueConstraint(
                fields=["task", "user"],
                condition=models.Q(active=True, job__isnull=True),
                name="one_active_submission_per_labeler",
            ),
            # Parallel labeling: each job labels a task once per round.
            models.UniqueConstraint(
                fields=["task", "job"],
                condition=models.Q(active=True, job__isnull=False),
                name="one_active_submission_per_job",
            ),
        ]

    def __str__(self) -> str:
        return f"submission of {self.task} by {self.user}"


class TaskEvent(models.Model):
    """The task's history: every labeling event (names in workspace/events.py)."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=50, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Who acted when it was not a person: "plugin <name>", "hub".
    actor_label = models.CharField(max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} on {self.task}"


class AnswerWrite(models.Model):
    """The ledger of what plugin runs did to task answers (workspace/writes.py):
    one row per task a run wrote or was kept from writing, with the answer it
    replaced, so that the whole run can be undone (runs/undo.py)."""

    class Outcome(models.TextChoices):
        WRITTEN = "written", "Written"
        SKIPPED = "skipped", "Skipped"  # a person's work was there: kept
        UNDONE = "undone", "Undone"
        KEPT = "kept", "Not undone"  # changed since by someone else

    run = models.ForeignKey(
        "runs.Run", on_delete=models.CASCADE, related_name="answer_writes"
    )
    task = models.ForeignKey(
        Task, on_delete=models.CASCADE, related_name="answer_writes"
    )
    outcome = models.CharField(max_length=20, choices=Outcome)
    # Why it was skipped, replaced anyway, or not undone (shown to people).
    reason = models.TextField(blank=True)
    # What the task held before the write, for undo.
    previous_answer = models.JSONField(null=True, blank=True)
    previous_status = models.CharField(max_length=20, blank=True)
    previous_prelabel_run = models.ForeignKey(
        "runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The status the write left; undo gives the old one back only if unchanged.
    written_status = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "outcome"], name="answer_write_run")]

    def __str__(self) -> str:
        return f"{self.outcome} by run {self.run_id} on task {self.task_id}"


class Issue(models.Model):
    """A problem pointed out on a task, by a reviewer or a QA plugin."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="issues")
    content = models.TextField()
    # Ango's issue position/pageNumber/objectId, kept as sent.
    position = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=Status, default=Status.OPEN)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_by_label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.content[:60]


class ApiToken(models.Model):
    """A personal token for the JSON API and scripts (stored as its sha256)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, default="cli")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} of {self.user}"
