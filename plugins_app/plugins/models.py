"""Registered plugins, the projects they are active on, and their live instances."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from plugins_app.ops.egress import registration_problem
from plugins_app.workspace.models import Organization, Project

if TYPE_CHECKING:
    from plugins_app.plugins.kinds.base import Kind


class PluginType(models.TextChoices):
    MODEL = "model", "Model"
    BATCH_MODEL = "batch_model", "Batch Model"
    EXPORT = "export", "Export"
    FILE_EXPLORER = "file_explorer", "File Explorer"
    MARKDOWN = "markdown", "Markdown"
    EVENT = "event", "Event-triggered"


# Bounds of a plugin's numbers (docs/input-limits.md): a deadline is now +
# timeout (timedelta overflows past ~10^9 days, PostgreSQL's integer at 2^31),
# and neither a script's jobs in flight nor a job's attempts need thousands.
MAX_TIMEOUT_SECONDS = 24 * 3600
MAX_CONCURRENCY = 1000
MAX_ATTEMPTS = 100
# A plugin version as declared, set or hashed (plugins/versions.py).
VERSION_LENGTH = 100


class Delivery(models.TextChoices):
    """How the hub hands a job to the plugin."""

    SOCKET = "socket", "Connected script (Socket.IO)"
    HOSTED = "hosted", "Hosted on the hub (uploaded code)"
    REST = "rest", "REST connector (the hub POSTs jobs to a URL)"


class Plugin(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="plugins"
    )
    # What plugin scripts put in PLUGIN_ID; a random hex string like Ango's ids.
    public_id = models.CharField(max_length=32, unique=True, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    type = models.CharField(max_length=20, choices=PluginType, default=PluginType.MODEL)
    delivery = models.CharField(
        max_length=20, choices=Delivery, default=Delivery.SOCKET
    )
    # Delivery.REST: jobs are POSTed to `<connector_url>/plugin`.
    connector_url = models.URLField(blank=True)
    class_names = models.JSONField(default=list, blank=True)
    default_config = models.TextField(default="{}", blank=True)
    # sha256 of the secret; the secret itself is shown once (see plugins/secrets.py).
    secret_hash = models.CharField(max_length=64, editable=False)
    # Delivery.REST only: the hub must send the secret itself (the connector's
    # `Secret` header), so it keeps a Fernet-encrypted copy (workspace/crypto.py),
    # written when the secret is created or rotated. Socket plugins keep none.
    secret_encrypted = models.TextField(blank=True, editable=False)
    secret_rotated_at = models.DateTimeField(default=timezone.now, editable=False)
    timeout_seconds = models.PositiveIntegerField(
        default=300,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TIMEOUT_SECONDS)],
    )
    concurrency = models.PositiveIntegerField(
        default=settings.HUB_DEFAULT_CONCURRENCY,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_CONCURRENCY)],
        help_text="Jobs one connected instance is sent at a time.",
    )
    max_attempts = models.PositiveIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_ATTEMPTS)],
        help_text="Times a job is sent before it fails (timeouts, lost instances).",
    )
    projects = models.ManyToManyField(
        Project, related_name="plugins", blank=True, help_text="Active on these."
    )
    # The version an admin gives the plugin; used when nothing running declares
    # one (plugins/versions.py: a script's declared version and hosted code's
    # hash say what actually answered, so they come first).
    version = models.CharField(
        max_length=VERSION_LENGTH,
        blank=True,
        help_text="Used when the script declares none (HOST ?version= or its "
        "heartbeat) and the plugin is not hosted.",
    )
    # Hosted delivery: "sha256:<12 hex>" of the uploaded code, written with each
    # upload (hosted/services.py), so the run core reads it without importing
    # hosted/.
    code_version = models.CharField(max_length=VERSION_LENGTH, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # Here rather than in a form, so every way a plugin is saved (the
        # dialog, the JSON API, plugin_create) refuses a connector URL the hub
        # would not call; every call checks again (ops/egress.py).
        if self.connector_url and (problem := registration_problem(self.connector_url)):
            raise ValidationError({"connector_url": f"This URL {problem}."})

    @property
    def kind(self) -> Kind:
        """This plugin's type's home (plugins/kinds/)."""
        # Imported here: the kinds import this module's PluginType.
        from plugins_app.plugins.kinds import kind_for

        return kind_for(self.type)

    @property
    def is_runnable(self) -> bool:
        """Started from a Run dialog (event plugins run on task events)."""
        return self.kind.runnable


class PluginTrigger(models.Model):
    """The plugin runs on `project` whenever one of `events` happens to a task
    (names from workspace/events.py TRIGGER_EVENTS)."""

    plugin = models.ForeignKey(
        Plugin, on_delete=models.CASCADE, related_name="triggers"
    )
    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="plugin_triggers"
    )
    events = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["plugin", "project"], name="one_trigger_per_plugin_project"
            )
        ]

    def __str__(self) -> str:
        return f"{self.plugin} on {self.project}: {', '.join(self.events)}"


def lease_ttl() -> timedelta:
    """How long an instance counts as alive after it was last seen (a pong or a
    heartbeat), and how far each sighting extends the leases it holds: one ping
    cycle, its pong deadline, and a margin."""
    ping = settings.HUB_PING_INTERVAL_MS + settings.HUB_PING_TIMEOUT_MS
    return timedelta(seconds=ping / 1000 + 5)


def live_cutoffs(now: datetime) -> tuple[datetime, datetime]:
    """An instance is live when connected, with a heartbeat and a sighting no
    older than these (last_heartbeat, last_seen_at). Also read by the socket
    dispatcher's raw query (runs/dispatch/socket.py)."""
    heartbeat = now - timedelta(seconds=settings.HUB_LIVE_HEARTBEAT_SECONDS)
    return heartbeat, now - lease_ttl()


class PluginInstanceQuerySet(models.QuerySet["PluginInstance"]):
    def live(self) -> PluginInstanceQuerySet:
        heartbeat, seen = live_cutoffs(timezone.now())
        return self.filter(
            disconnected_at__isnull=True,
            last_heartbeat__gte=heartbeat,
            last_seen_at__gte=seen,
        )


class PluginInstance(models.Model):
    """One authenticated socket of a plugin script (several may run at once)."""

    plugin = models.ForeignKey(
        Plugin, on_delete=models.CASCADE, related_name="instances"
    )
    channel_name = models.CharField(max_length=200, unique=True)
    address = models.CharField(max_length=100, blank=True)
    connected_at = models.DateTimeField(default=timezone.now)
    last_heartbeat = models.DateTimeField(default=timezone.now)
    # Renewed by the socket on pongs: an instance whose ASGI process died stops
    # being seen even though nothing marked it disconnected.
    last_seen_at = models.DateTimeField(default=timezone.now)
    # Jobs the script said it takes at once (`?concurrency=` in HOST); None: the
    # plugin's concurrency. The dispatcher uses the smaller of the two.
    capacity = models.PositiveIntegerField(null=True, blank=True)
    last_dispatch_at = models.DateTimeField(null=True, blank=True)
    # Jobs that timed out on this instance since it last answered one: a hung
    # script still answers pings, so this is the only sign; it goes last in line.
    timeouts = models.PositiveIntegerField(default=0)
    disconnected_at = models.DateTimeField(null=True, blank=True)
    # The version the script declared (`?version=` in HOST, or a `version` key
    # in its heartbeat); "" when it declared none.
    version = models.CharField(max_length=VERSION_LENGTH, blank=True)

    objects = PluginInstanceQuerySet.as_manager()

    class Meta:
        ordering = ["connected_at"]

    def __str__(self) -> str:
        return f"{self.plugin} @ {self.address}"


class FailedHeartbeat(models.Model):
    """A heartbeat whose id or secret did not match: shown to admins."""

    plugin = models.ForeignKey(
        Plugin, null=True, blank=True, on_delete=models.CASCADE, related_name="failures"
    )
    claimed_id = models.CharField(max_length=200, blank=True)
    address = models.CharField(max_length=100, blank=True)
    reason = models.CharField(max_length=200)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.reason} from {self.address}"


class Preset(models.Model):
    """A named class mapping + config of a Run dialog, per (project, plugin);
    loaded in the Run dialog and in workflow Plugin stages (Ango's plugin
    setting presets)."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="plugin_presets"
    )
    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="presets")
    name = models.CharField(max_length=100)
    # {model class: ontology schemaId}; a class left out is unmapped.
    class_mapping = models.JSONField(default=dict, blank=True)
    config_json = models.TextField(default="{}", blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "plugin", "name"], name="preset_name"
            )
        ]

    def __str__(self) -> str:
        return self.name
