"""The demo workspace `make run` starts with: one organization, an admin, a
reviewer and an annotator, a project of real images in two batches (two of its
tasks already labeled and accepted), a consensus project, an invoice project, a
parallel-labeling project with a labeler per job (demo/parallel.py) and the
example plugins registered."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from plugins_app.plugins.models import Plugin, PluginType
from plugins_app.plugins.services import (
    MODEL_TYPES,
    plugin_create,
    plugin_rotate_secret,
)
from plugins_app.plugins.triggers import plugin_set_triggers
from plugins_app.workspace.events import LABEL_SUBMITTED, TASK_JOBS_COMPLETE
from plugins_app.workspace.models import (
    Asset,
    Batch,
    Membership,
    Organization,
    Project,
    Task,
)

DEMO_PASSWORD = "plugin-hub"
# The demo's users, one per role (all with DEMO_PASSWORD).
DEMO_LOGINS = {
    "admin": Membership.Role.ADMIN,
    "reviewer": Membership.Role.REVIEWER,
    "annotator": Membership.Role.ANNOTATOR,
    # The parallel-labeling project's two jobs, one labeler each.
    "vehicles": Membership.Role.ANNOTATOR,
    "scene": Membership.Role.ANNOTATOR,
}
DEMO_ONTOLOGY = {
    "tools": [
        {
            "schemaId": "face-box",
            "tool": "bounding-box",
            "title": "Face",
            "color": "#e8590c",
            "required": False,
            "classifications": [],
        },
        {
            "schemaId": "coin-box",
            "tool": "bounding-box",
            "title": "Coin",
            "color": "#2f9e44",
            "required": False,
            "classifications": [],
        },
        {
            "schemaId": "object-box",
            "tool": "bounding-box",
            "title": "Object",
            "color": "#1971c2",
            "required": False,
            "classifications": [],
        },
        {
            "schemaId": "region-poly",
            "tool": "polygon",
            "title": "Region",
            "color": "#ae3ec9",
            "required": False,
            "classifications": [],
        },
    ],
    "classifications": [
        {
            "schemaId": "scene",
            "tool": "radio",
            "title": "Scene",
            "required": False,
            "options": [
                {"value": v, "schemaId": f"scene-{v}"}
                for v in ("photo", "microscopy", "astronomy", "document")
            ],
            "classifications": [],
        },
    ],
    "relations": [],
}
# The detector's own defaults, shown so the Run dialog says what can be tuned
# (examples/detector.py lists every key).
DETECTOR_CONFIG = json.dumps({"max_detections": 50, "min_votes": 0.35}, indent=2)


QA_CONFIG = json.dumps({"min_objects": 1, "min_box_size": 8}, indent=2)
CONSENSUS_CONFIG = json.dumps({"iou_threshold": 0.5}, indent=2)


@dataclass(frozen=True)
class DemoCredentials:
    model_plugin: dict[str, str]
    batch_plugin: dict[str, str]
    qa_plugin: dict[str, str]
    consensus_plugin: dict[str, str]
    export_plugin: dict[str, str]
    merge_plugin: dict[str, str]


def seed_demo() -> DemoCredentials:
    """Idempotent. Plugin secrets are rotated on every call (they are stored
    hashed) and written to var/demo-plugins.json for the bundled example."""
    from plugins_app.demo import parallel
    from plugins_app.demo.images import generate_demo_images
    from plugins_app.demo.reviewed import seed_reviewed

    with transaction.atomic():
        org, _ = Organization.objects.get_or_create(
            slug="demo", defaults={"name": "Demo Labs"}
        )
        for username, role in DEMO_LOGINS.items():
            _user(org, username, role, staff=role == Membership.Role.ADMIN)
        project, _ = Project.objects.update_or_create(
            organization=org,
            name="Street & Science Images",
            defaults={
                "ontology": DEMO_ONTOLOGY,
                "description": "Real images bundled with scikit-image, and tiles "
                "cut from them.",
            },
        )
        consensus_project, _ = Project.objects.update_or_create(
            organization=org,
            name="Consensus: 2 labels per asset",
            defaults={
                "ontology": DEMO_ONTOLOGY,
                "labels_per_asset": 2,
                "description": "admin and annotator both label each image; the "
                "consensus plugin merges their boxes for review.",
            },
        )
        images = generate_demo_images(Path(settings.MEDIA_ROOT) / "demo")
        for target in (project, consensus_project):
            _assets(target, images)
        seed_reviewed(project)
        jobs_project = parallel.parallel_project(org)
        _assets(jobs_project, [i for i in images if i.external_id in parallel.IMAGES])
        parallel.parallel_jobs(jobs_project)
    # Triggers are read when a submit commits: the plugins come in a second
    # transaction, so the seeded submits above start no QA bot run.
    with transaction.atomic():
        model = _plugin(org, project, "Face & coin detector", PluginType.MODEL)
        batch = _plugin(
            org, project, "Face & coin detector (batch)", PluginType.BATCH_MODEL
        )
        qa = _plugin(
            org,
            project,
            "QA bot",
            PluginType.EVENT,
            description="examples/qa_event_plugin.py: on each submit, issues for "
            "an empty answer or a box under 8 px, and the task sent back.",
            default_config=QA_CONFIG,
        )
        consensus = _plugin(
            org,
            consensus_project,
            "Consensus merger",
            PluginType.EVENT,
            description="examples/consensus_plugin.py: merges the labelers' boxes "
            "by IoU into one pre-label for review.",
            default_config=CONSENSUS_CONFIG,
        )
        merge = _plugin(
            org,
            jobs_project,
            "Job merger",
            PluginType.EVENT,
            description="examples/merge_jobs_plugin.py: when every labeling job "
            "of a task is in, merges their parts into the answer for review.",
            default_config="{}",
            event_names=[TASK_JOBS_COMPLETE],
        )
        _hosted_qa_demo(org)
        export = _plugin(
            org,
            project,
            "Box CSV export",
            PluginType.EXPORT,
            description="examples/export_plugin.py: the boxes of the chosen stages "
            "and batches as a CSV (and a summary), to download from the run page.",
            default_config='{"separator": ","}',
        )
    credentials = DemoCredentials(
        model_plugin=model,
        batch_plugin=batch,
        qa_plugin=qa,
        consensus_plugin=consensus,
        export_plugin=export,
        merge_plugin=merge,
    )
    path = settings.VAR_DIR / "demo-plugins.json"
    path.write_text(json.dumps(credentials.__dict__, indent=2))
    path.chmod(0o600)
    return credentials


HOSTED_QA_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hosted_qa"


def _hosted_qa_demo(org: Organization) -> None:
    """An invoice project of generated invoices whose tasks hold labels ready
    to submit, and the QA bot of examples/hosted_qa/ uploaded as a hosted
    plugin triggered by submits (built by the Celery worker; uploaded again
    only if it changed)."""
    from plugins_app.demo.invoices import generate_invoices
    from plugins_app.hosted.invoices import INVOICE_ONTOLOGY
    from plugins_app.hosted.models import HostedCode
    from plugins_app.hosted.services import code_upload

    invoices, _ = Project.objects.update_or_create(
        organization=org,
        name="Invoices (hosted QA bot)",
        defaults={
            "ontology": INVOICE_ONTOLOGY,
            "description": "Open a task and Submit: the hosted QA bot checks the "
            "IBAN (FR…) and the currency (EUR or USD).",
        },
    )
    drawn = generate_invoices(Path(settings.MEDIA_ROOT) / "demo")
    _assets(invoices, [invoice.image for invoice in drawn])
    for invoice in drawn:
        task = invoices.tasks.get(asset__external_id=invoice.image.external_id)
        if not task.answer and task.stage == "Label":
            task.answer = invoice.answer
            task.save(update_fields=["answer", "updated_at"])
    # Demos seeded before the invoices were drawn used photos here: those
    # nobody submitted or otherwise touched (no history) go.
    invoices.assets.exclude(
        external_id__in=[invoice.image.external_id for invoice in drawn]
    ).filter(task__submissions__isnull=True, task__events__isnull=True).delete()
    plugin = Plugin.objects.filter(organization=org, name="Invoice QA (hosted)").first()
    if plugin is None:
        plugin = plugin_create(
            organization=org,
            name="Invoice QA (hosted)",
            type=PluginType.EVENT,
            description="examples/hosted_qa/main.py, running on the hub in a "
            "sandbox: issues, back to the queue and accuracy for a bad invoice.",
            timeout_seconds=30,
            projects=[invoices],
        ).plugin
    plugin_set_triggers(plugin, projects=[invoices], event_names=[LABEL_SUBMITTED])
    source = (HOSTED_QA_EXAMPLE / "main.py").read_bytes()
    code = HostedCode.objects.filter(plugin=plugin).first()
    if code is None or bytes(code.archive) != source:
        code_upload(
            plugin, filename="main.py", data=source, memory_limit_mb=256, user=None
        )


def _user(org: Organization, username: str, role: str, staff: bool = False) -> None:
    user, created = get_user_model().objects.get_or_create(
        username=username, defaults={"email": f"{username}@demo.local"}
    )
    if created:
        user.set_password(DEMO_PASSWORD)
        user.is_staff = user.is_superuser = staff
        user.save()
    Membership.objects.update_or_create(
        user=user, organization=org, defaults={"role": role}
    )


def _assets(project: Project, images: list[Any]) -> None:
    for image in images:
        batch, _ = Batch.objects.get_or_create(project=project, name=image.batch)
        asset, _ = Asset.objects.update_or_create(
            project=project,
            external_id=image.external_id,
            defaults={
                "file": f"demo/{image.filename}",
                "width": image.width,
                "height": image.height,
            },
        )
        asset.batches.set([batch])
        Task.objects.get_or_create(asset=asset, defaults={"project": project})


def _plugin(
    org: Organization,
    project: Project,
    name: str,
    type: str,
    *,
    description: str = "The bundled example (examples/): scikit-image's LBP face "
    "cascade for faces, the circular Hough transform for coins.",
    default_config: str = DETECTOR_CONFIG,
    event_names: list[str] | None = None,
) -> dict[str, str]:
    """A bundled example plugin, active on `project`; an Event plugin runs on
    `event_names` there (`label.submitted` unless told)."""
    plugin = Plugin.objects.filter(organization=org, name=name).first()
    if plugin is None:
        credentials = plugin_create(
            organization=org,
            name=name,
            type=type,
            description=description,
            class_names=["face", "coin"] if type in MODEL_TYPES else [],
            default_config=default_config,
            timeout_seconds=120,
            projects=[project],
        )
    else:
        credentials = plugin_rotate_secret(plugin=plugin)
    if type == PluginType.EVENT:
        plugin_set_triggers(
            credentials.plugin,
            projects=[project],
            event_names=event_names or [LABEL_SUBMITTED],
        )
    return credentials.as_dict()
