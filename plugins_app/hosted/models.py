"""Code uploaded to the hub for a hosted plugin, and the state of its build."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from plugins_app.plugins.models import Plugin
from plugins_app.runs.transitions import TransitionQuerySet


class HostedCodeQuerySet(TransitionQuerySet["HostedCode"]):
    state_field = "status"


class HostedCode(models.Model):
    """The current code of a hosted plugin: one per plugin, replaced by each
    upload (`version` goes up, so a stale build never overwrites a newer one)."""

    class Status(models.TextChoices):
        BUILDING = "building", "Building"
        ACTIVE = "active", "Active"
        FAILED = "failed", "Failed"

    plugin = models.OneToOneField(
        Plugin, on_delete=models.CASCADE, related_name="hosted_code"
    )
    version = models.PositiveIntegerField(default=1)
    filename = models.CharField(max_length=200)
    # The upload as sent: a main.py, or a zip with main.py (+ requirements.txt).
    archive = models.BinaryField()
    requirements = models.TextField(blank=True)
    status = models.CharField(
        max_length=20, choices=Status, default=Status.BUILDING, db_index=True
    )
    build_log = models.TextField(blank=True)
    # The handler class the build found in main.py.
    handler_name = models.CharField(max_length=200, blank=True)
    # Where the build put the code and (with requirements) its virtual environment.
    code_path = models.CharField(max_length=500, blank=True)
    env_path = models.CharField(max_length=500, blank=True)
    memory_limit_mb = models.PositiveIntegerField(
        default=512,
        validators=[MinValueValidator(64), MaxValueValidator(16384)],
        help_text="Address-space limit of each handler run (RLIMIT_AS).",
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    uploaded_at = models.DateTimeField(default=timezone.now)
    build_started_at = models.DateTimeField(null=True, blank=True)
    built_at = models.DateTimeField(null=True, blank=True)

    objects = HostedCodeQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.filename} v{self.version} of {self.plugin}"

    @property
    def build_seconds(self) -> float | None:
        if self.built_at and self.build_started_at:
            return (self.built_at - self.build_started_at).total_seconds()
        return None
