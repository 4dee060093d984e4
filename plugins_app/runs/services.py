"""Every state change of runs, work items, plugin instances and run logs.

Views, consumers, the Ango-compatible API, Celery tasks and management commands
call these functions; none of them writes those rows itself. Messages to plugins
and browsers are sent after the transaction commits (`_after_commit`).
"""

from __future__ import annotations

import base64
import logging
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from plugins_app import protocol
from plugins_app.inputs import json_loads_bounded, json_trimmed, parse_id
from plugins_app.ops.auth_guard import failures_recorded, heartbeat_failed
from plugins_app.ops.isolation import each_plugin
from plugins_app.plugins.models import (
    INPUT_TYPES,
    Delivery,
    FailedHeartbeat,
    Plugin,
    PluginInstance,
    PluginType,
    Preset,
    lease_ttl,
)
from plugins_app.plugins.presets import preset_problems
from plugins_app.plugins.secrets import new_token, token_hash, token_matches
from plugins_app.plugins.services import connector_secret
from plugins_app.plugins.types import (
    WORKFLOW_TRIGGER,
    check_model_answer,
    kind_of,
    store_model_answer,
)
from plugins_app.runs import connector
from plugins_app.runs.models import (
    PRIORITY_BATCH,
    PRIORITY_INTERACTIVE,
    Run,
    RunApiKey,
    RunLogLine,
    WorkItem,
)
from plugins_app.workspace import events, lifecycle, workflow
from plugins_app.workspace.models import Asset, Batch, Project, Storage, Task, TaskEvent

log = logging.getLogger(__name__)

HUB = "HUB"  # level of the log lines the hub writes itself
TIMEOUT_CAUSES = (
    "Known causes: a Model callback under imerit-ango 1.4.x that returns a plain "
    "dict instead of an AnnotationPayload (the SDK drops the answer without a "
    "word); a callback that is still working or hung; a plugin process that was "
    "killed or lost its connection."
)


class RunActionError(Exception):
    """A cancel or retry that the run's state does not allow."""


class RunRequestError(Exception):
    """Bad input for a run; `errors` maps form field names to messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(m for ms in errors.values() for m in ms))
        self.errors = errors


# --- creating runs ------------------------------------------------------------
@dataclass(frozen=True)
class RunRequest:
    plugin: Plugin
    project: Project
    user: AbstractBaseUser | None
    class_mapping: dict[str, str]  # model class -> ontology schemaId ("" = unmapped)
    config_json: str
    external_ids: list[str]
    batch_ids: list[int]
    # File Explorer and Markdown runs: what the dialog asked for (Run.inputs).
    inputs: dict[str, Any] = field(default_factory=dict)
    # Write over answers people submitted or reviewed (admins only; writes.py).
    replace_submitted: bool = False


def run_create(request: RunRequest, *, dispatch: bool = True) -> Run:
    """Validate a run request, write the run and its work items, then dispatch."""
    errors: dict[str, list[str]] = {}
    mapping = _checked_mapping(request, errors)
    _checked_config(request.config_json, errors)
    assets, batches = _checked_scope(request, errors)
    inputs = checked_inputs(request.plugin, request.project, request.inputs, errors)
    if request.replace_submitted:
        _check_may_replace(request, errors)
    if not errors:
        _check_reachable(request.plugin, errors)
    if errors:
        raise RunRequestError(errors)
    with transaction.atomic():
        run = Run.objects.create(
            organization_id=request.project.organization_id,
            project=request.project,
            plugin=request.plugin,
            created_by=request.user,
            class_mapping=mapping,
            config_json=request.config_json.strip() or "{}",
            batch_ids=[b.pk for b in batches],
            inputs=inputs,
            replace_submitted=request.replace_submitted,
        )
        if request.replace_submitted:
            _hub_log(
                run,
                "Replace submitted answers is on: answers people submitted or "
                "reviewed will be replaced (each one can be undone from this page).",
            )
        if request.plugin.type == PluginType.MODEL:
            # Someone running one asset from the dialog waits for it: go first.
            priority = PRIORITY_INTERACTIVE if len(assets) == 1 else PRIORITY_BATCH
            WorkItem.objects.bulk_create(
                WorkItem(
                    run=run,
                    plugin=run.plugin,
                    asset=a,
                    session=_new_session(),
                    priority=priority,
                )
                for a in assets
            )
        else:
            if request.plugin.type not in INPUT_TYPES:
                run.assets_total = _assets_in_scope(run).count()
                run.save(update_fields=["assets_total"])
            WorkItem.objects.create(run=run, plugin=run.plugin, session=_new_session())
        who = request.user.get_username() if request.user else "the command line"
        _hub_log(run, f"Run created by {who}; waiting for a plugin instance.")
        if dispatch:
            plugin_id = request.plugin.pk
            transaction.on_commit(lambda: dispatch_pending(plugin_id))
    return run


def run_create_for_event(plugin_id: int, event_id: int) -> Run | None:
    """The run of a triggered plugin for one task event: one work item (the
    task's asset), then dispatch. Exactly one run per (plugin, event): a
    redelivered Celery task finds the run already there (and the unique
    constraint settles a race). Returns None if the plugin or event is gone or
    they belong to different organizations."""
    event = (
        TaskEvent.objects.select_related("task__asset", "task__project", "actor")
        .filter(pk=event_id)
        .first()
    )
    plugin = Plugin.objects.filter(pk=plugin_id).first()
    if event is None or plugin is None:
        return None
    task = event.task
    if plugin.organization_id != task.project.organization_id:
        return None
    existing = Run.objects.filter(plugin=plugin, event=event).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            run = Run.objects.create(
                organization_id=plugin.organization_id,
                project=task.project,
                plugin=plugin,
                created_by=event.actor,
                config_json=plugin.default_config.strip() or "{}",
                trigger=event.name,
                task=task,
                event=event,
            )
            WorkItem.objects.create(
                run=run,
                plugin=plugin,
                asset=task.asset,
                session=_new_session(),
                priority=PRIORITY_INTERACTIVE,
            )
            who = event.actor.get_username() if event.actor else event.actor_label
            waits_for = (
                "a hosted worker"
                if plugin.delivery == Delivery.HOSTED
                else "a plugin instance"
            )
            _hub_log(
                run,
                f"Triggered by {event.name} on {task.asset.external_id}"
                f"{f' ({who})' if who else ''}; waiting for {waits_for}.",
            )
            transaction.on_commit(lambda: dispatch_pending(plugin_id))
    except IntegrityError:
        return Run.objects.filter(plugin=plugin, event=event).first()
    return run


def _check_may_replace(request: RunRequest, errors: dict[str, list[str]]) -> None:
    """Replacing people's answers is an admin's explicit choice."""
    if request.plugin.type not in (PluginType.MODEL, PluginType.BATCH_MODEL):
        errors["replace_submitted"] = [
            "Only Model and Batch Model runs write answers; leave it off."
        ]
    elif request.user is None or not lifecycle.is_org_admin(
        request.user, request.project.organization_id
    ):
        errors["replace_submitted"] = [
            "Only admins of this organization can replace submitted answers."
        ]


def _check_reachable(plugin: Plugin, errors: dict[str, list[str]]) -> None:
    """A socket plugin needs a connected instance now. A REST connector is
    called from Celery: a dead URL fails the run visibly, attempt by attempt
    (it may scale to zero and wake on the call)."""
    if plugin.delivery == Delivery.REST:
        if not plugin.connector_url:
            errors.setdefault("__all__", []).append(
                f"“{plugin.name}” is delivered by REST but has no connector URL."
            )
        return
    if not PluginInstance.objects.live().filter(plugin=plugin).exists():
        errors.setdefault("__all__", []).append(
            f"No instance of “{plugin.name}” is connected. Start the plugin "
            "script (it shows as live on the plugins page) and try again."
        )


def _checked_mapping(
    request: RunRequest, errors: dict[str, list[str]]
) -> list[dict[str, str]] | None:
    known = {e.get("schemaId") for e in request.project.ontology_entries()}
    mapping = []
    for model_class, schema_id in request.class_mapping.items():
        if model_class not in request.plugin.class_names:
            errors.setdefault("mapping", []).append(
                f"“{model_class}” is not a class of this plugin."
            )
        elif schema_id and schema_id not in known:
            errors.setdefault("mapping", []).append(
                f"“{schema_id}” is not a label of this project's ontology."
            )
        elif schema_id:
            mapping.append({"schemaId": schema_id, "modelClass": model_class})
    return mapping or None


def _checked_config(config_json: str, errors: dict[str, list[str]]) -> None:
    try:
        json_loads_bounded(config_json or "{}", what="It")
    except ValueError as exc:
        errors.setdefault("config_json", []).append(f"Config JSON is not valid: {exc}")


def _checked_scope(
    request: RunRequest, errors: dict[str, list[str]]
) -> tuple[list[Asset], list[Batch]]:
    project, plugin = request.project, request.plugin
    if not plugin.is_runnable:
        errors.setdefault("__all__", []).append(
            f"{plugin.get_type_display()} plugins cannot be run from a dialog yet."
        )
        return [], []
    if not plugin.projects.filter(pk=project.pk).exists():
        errors.setdefault("__all__", []).append(
            f"“{plugin.name}” is not activated on this project."
        )
    batches = list(project.batches.filter(pk__in=request.batch_ids))
    missing_batches = set(request.batch_ids) - {b.pk for b in batches}
    if missing_batches:
        errors.setdefault("batches", []).append(
            "Unknown batches: " + ", ".join(str(b) for b in sorted(missing_batches))
        )
    if plugin.type != PluginType.MODEL:
        return [], batches
    wanted = list(dict.fromkeys(e.strip() for e in request.external_ids if e.strip()))
    if not wanted:
        errors.setdefault("external_ids", []).append(
            "Give at least one asset external ID."
        )
        return [], batches
    assets = {a.external_id: a for a in project.assets.filter(external_id__in=wanted)}
    unknown = [e for e in wanted if e not in assets]
    if unknown:
        errors.setdefault("external_ids", []).append(
            "Not assets of this project: " + ", ".join(unknown[:20])
        )
    return [assets[e] for e in wanted if e in assets], batches


MAX_CSV_BYTES = 5 * 1024 * 1024


def checked_inputs(
    plugin: Plugin,
    project: Project,
    inputs: dict[str, Any],
    errors: dict[str, list[str]],
) -> dict[str, Any]:
    """What File Explorer and Markdown runs need, checked: the storage must be
    one this project may use (its keys go to the run), the CSV must decode."""
    if plugin.type == PluginType.FILE_EXPLORER:
        return _checked_explorer_inputs(project, inputs, errors)
    if plugin.type == PluginType.MARKDOWN:
        return _checked_markdown_inputs(inputs, errors)
    if plugin.type == PluginType.EXPORT:
        return _checked_export_inputs(project, inputs, errors)
    return {}


def _checked_explorer_inputs(
    project: Project, inputs: dict[str, Any], errors: dict[str, list[str]]
) -> dict[str, Any]:
    storage_pk = parse_id(str(inputs.get("storage_id") or ""))
    storage = (
        Storage.usable_by(project).filter(pk=storage_pk).first()
        if storage_pk is not None
        else None
    )
    if storage is None:
        errors.setdefault("storage", []).append(
            "Choose a storage of this project (admins add them under Storages)."
        )
        return {}
    folder = str(inputs.get("folder") or "").strip().lstrip("/")
    files = [str(f).strip() for f in inputs.get("files") or [] if str(f).strip()]
    if len(folder) > 1000 or len(files) > 10_000:
        errors.setdefault("folder", []).append("The folder or file list is too long.")
    return {
        "storage_id": storage.pk,
        "bucket": storage.bucket,
        "folder": folder,
        "files": files,
        "upload": bool(inputs.get("upload", True)),
    }


def _checked_markdown_inputs(
    inputs: dict[str, Any], errors: dict[str, list[str]]
) -> dict[str, Any]:
    csv_b64 = str(inputs.get("csv_base64") or "")
    template = str(inputs.get("markdown_text") or "")
    try:
        header = base64.b64decode(csv_b64, validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        header = ""
    if not csv_b64 or not header.strip():
        errors.setdefault("csv_file", []).append(
            "Upload a UTF-8 CSV file with a header row and one row per document."
        )
    elif len(csv_b64) * 3 // 4 > MAX_CSV_BYTES:
        errors.setdefault("csv_file", []).append(
            f"The CSV file is over {MAX_CSV_BYTES // (1024 * 1024)} MiB."
        )
    if not template.strip():
        errors.setdefault("markdown_text", []).append(
            "Write the Markdown template; |column| is replaced by each row's value."
        )
    return {
        "csv_name": str(inputs.get("csv_name") or "input.csv")[:200],
        "csv_base64": csv_b64,
        "markdown_text": template,
    }


def _checked_export_inputs(
    project: Project, inputs: dict[str, Any], errors: dict[str, list[str]]
) -> dict[str, Any]:
    """The workflow stages to export (the job's `stage`; [] = every stage)."""
    known = project_stage_names(project)
    wanted = list(dict.fromkeys(str(s) for s in inputs.get("stages") or [] if s))
    unknown = [s for s in wanted if s not in known]
    if unknown:
        errors.setdefault("stages", []).append(
            "Not stages of this project's workflow: " + ", ".join(unknown)
        )
    return {"stages": wanted}


def project_stage_names(project: Project) -> list[str]:
    """The workflow's stage names, then any other stage tasks are in."""
    names = [s.get("name", "") for s in workflow.stages(project.workflow)]
    extra = project.tasks.exclude(stage__in=names).values_list("stage", flat=True)
    return names + sorted(set(extra))


def _assets_in_scope(run: Run):  # noqa: ANN202 - a QuerySet of Asset
    assets = Asset.objects.filter(project=run.project)
    if run.batch_ids:
        assets = assets.filter(batches__in=run.batch_ids).distinct()
    return assets


def _new_session() -> str:
    return uuid.uuid4().hex


# --- dispatching --------------------------------------------------------------
DISPATCH_BATCH = 100  # socket jobs leased in one transaction
# What a job is built from (kind_of(run).build_job), read with the item.
_JOB_RELATIONS = (
    "run__plugin",
    "run__project",
    "run__created_by",
    "run__task",
    "run__event",
    "asset__task",
)
_DISPATCH_LOCK_CLASS = 0x4855  # the first key of the plugin's advisory lock


def dispatch_pending(plugin_id: int) -> int:
    """Lease pending items of a plugin and hand them over: to its live
    instances with free capacity, least loaded first, over the channel layer
    once leased (or to its REST connector, or to hosted workers). Safe to call
    from any process at any time (see `_lease_pending`)."""
    delivery = Plugin.objects.filter(pk=plugin_id).values_list("delivery", flat=True)
    how = delivery.first()
    if how == Delivery.REST:
        return _dispatch_rest(plugin_id)
    if how == Delivery.HOSTED:
        return _dispatch_hosted(plugin_id)
    sent = 0
    while True:
        with transaction.atomic():
            jobs = _lease_pending(plugin_id)
        protocol.deliver_many(jobs)
        sent += len(jobs)
        if len(jobs) < DISPATCH_BATCH:
            return sent


class _FreedSlotDispatches:
    """Dispatches asked for by the plugin socket's events (a job finished, an
    instance came or went), coalesced per plugin in this process: one drains on a
    worker thread while the requests made meanwhile add up to one more pass.

    Every finished job frees a slot, and the dispatches of one plugin take turns
    under its lock. Run inline on the web process's database thread, one per
    answer, they queued all its sockets' work behind that lock: with two queue
    processes a web process fell 9 s behind and leases expired. Elsewhere (Celery,
    the CLI) there is no loop to hand them to, and they run inline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._draining: set[int] = set()
        self._again: set[int] = set()

    def request(self, plugin_id: int) -> None:
        with self._lock:
            if plugin_id in self._draining:
                self._again.add(plugin_id)
                return
            self._draining.add(plugin_id)
        if not protocol.run_later(0, self._drain, plugin_id):
            self._drain(plugin_id)

    def _drain(self, plugin_id: int) -> None:
        more = True
        while more:
            try:
                dispatch_pending(plugin_id)
            finally:
                # Decided under the lock: a request made after this sees the
                # drain over and starts its own.
                with self._lock:
                    more = plugin_id in self._again
                    self._again.discard(plugin_id)
                    if not more:
                        self._draining.discard(plugin_id)


_freed_slots = _FreedSlotDispatches()


def _dispatch_freed_slots_after_commit(plugin_id: int) -> None:
    transaction.on_commit(lambda: _freed_slots.request(plugin_id))


def _next_pending_item(
    plugin_id: int, *, skip_workflow: bool = False
) -> WorkItem | None:
    # A cheap indexed probe first: most calls find nothing waiting.
    pending = WorkItem.objects.filter(plugin_id=plugin_id, state=WorkItem.State.PENDING)
    if skip_workflow:
        pending = pending.exclude(run__trigger=WORKFLOW_TRIGGER)
    first_id = pending.order_by("priority", "id").values_list("id", flat=True).first()
    if first_id is None:
        return None
    return WorkItem.objects.select_related(*_JOB_RELATIONS).filter(pk=first_id).first()


def _lease_pending(plugin_id: int) -> list[protocol.Delivery]:
    """Inside a transaction: lease up to DISPATCH_BATCH pending items of a
    plugin, best priority first, each to the least-loaded live instance with a
    free slot; the jobs go out after the commit, in one hop to the channel
    layer. Returns the jobs to send once the transaction commits.

    A handful of statements whatever the batch size: on PostgreSQL a per-plugin
    advisory lock lets one dispatcher at a time count the instances' free slots
    (two processes could otherwise fill the same slot), and the items are
    locked, so a cancel waits for the lease and then cancels it."""
    # A cheap indexed probe first: most calls find nothing waiting.
    pending = WorkItem.objects.filter(plugin_id=plugin_id, state=WorkItem.State.PENDING)
    waiting = list(
        pending.order_by("priority", "id").values_list("id", flat=True)[:DISPATCH_BATCH]
    )
    if not waiting:
        return []
    _lock_dispatch(plugin_id)
    instances = _instances_with_free_slots(plugin_id)
    free = sum(i.limit - i.in_flight for i in instances)
    if not free:
        return []
    now = timezone.now()
    items = _locked(pending.filter(pk__in=waiting[:free]))
    leased = _allocate(items, instances, now)
    left = free - len(leased)
    if left and len(leased) < len(items):
        # Workflow jobs found every workflow slot taken: other jobs need not
        # wait behind them.
        others = pending.exclude(run__trigger=WORKFLOW_TRIGGER).exclude(
            pk__in=[i.pk for i in items]
        )
        leased += _allocate(_locked(others, limit=left), instances, now)
    return _write_leases(leased, now) if leased else []


def _locked(items: Any, limit: int | None = None) -> list[WorkItem]:
    """Pending items (the first `limit`), locked until the transaction ends,
    with what their jobs are built from."""
    locked = (
        items.select_for_update(of=("self",))
        .select_related(*_JOB_RELATIONS)
        .order_by("priority", "id")
    )
    return list(locked[:limit] if limit else locked)


def _lock_dispatch(plugin_id: int) -> None:
    # SQLite needs nothing: its IMMEDIATE transactions already run one at a time.
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                [_DISPATCH_LOCK_CLASS, plugin_id],
            )


def _instances_with_free_slots(plugin_id: int) -> list[PluginInstance]:
    """Live instances with a free slot, each with its jobs in flight and its
    limit: the smaller of what it declared and the plugin's setting. Counted
    from the plugin's leased items only (an index range), never from all the
    items an instance ever held."""
    counts = {
        row["instance_id"]: row
        for row in WorkItem.objects.filter(
            plugin_id=plugin_id, state=WorkItem.State.LEASED
        )
        .values("instance_id")
        .annotate(
            n=Count("id"),
            workflow=Count("id", filter=Q(run__trigger=WORKFLOW_TRIGGER)),
        )
    }
    rows = (
        PluginInstance.objects.live()
        .filter(plugin_id=plugin_id)
        .order_by("pk")
        .values_list(
            "pk",
            "channel_name",
            "address",
            "capacity",
            "last_dispatch_at",
            "timeouts",
            "plugin__concurrency",
        )
    )
    instances = []
    # Plain rows, not model instances: a fleet has hundreds of instances, and
    # building each one as a model cost more than the query.
    for row in rows:
        pk, channel_name, address, capacity, last_dispatch_at, timeouts = row[:6]
        concurrency = row[6]
        held = counts.get(pk, {})
        limit = min(capacity or concurrency, concurrency)
        if held.get("n", 0) >= limit:
            continue
        instance = PluginInstance(
            pk=pk,
            plugin_id=plugin_id,
            channel_name=channel_name,
            address=address,
            capacity=capacity,
            last_dispatch_at=last_dispatch_at,
            timeouts=timeouts,
        )
        instance.in_flight = held.get("n", 0)
        instance.workflow_in_flight = held.get("workflow", 0)
        instance.limit = limit
        # The SDK runs workflow jobs on `concurrency` slots (1 unless the script
        # says more; declared to the hub as ?concurrency=N in HOST) and answers
        # {"error": true} at once when they are all busy: never send more.
        instance.workflow_limit = min(capacity or 1, limit)
        instances.append(instance)
    return instances


def _allocate(
    items: list[WorkItem], instances: list[PluginInstance], now: Any
) -> list[WorkItem]:
    """Give each item (in order) to the instance with the fewest jobs in flight,
    the one that waited longest for a job first; skip items nobody can take.
    Instances whose last jobs timed out go last: a hung script looks idle (it
    answers pings and its slots free up at each timeout), and would otherwise
    get first pick of the very jobs that timed out on it."""
    leased = []
    for n, item in enumerate(items):
        workflow = item.run.trigger == WORKFLOW_TRIGGER
        fits = [
            i
            for i in instances
            if i.in_flight < i.limit
            and (not workflow or i.workflow_in_flight < i.workflow_limit)
        ]
        if not fits:
            continue
        instance = min(
            fits,
            key=lambda i: (
                i.timeouts > 0,
                i.in_flight,
                i.last_dispatch_at is not None,
                i.last_dispatch_at or now,
            ),
        )
        instance.in_flight += 1
        instance.workflow_in_flight += workflow
        # Later leases of the batch go behind earlier ones among equals.
        instance.last_dispatch_at = now + timedelta(microseconds=n)
        item.instance = instance
        leased.append(item)
    return leased


def _write_leases(items: list[WorkItem], now: Any) -> list[protocol.Delivery]:
    plugin = items[0].run.plugin
    deadline = now + timedelta(seconds=plugin.timeout_seconds)
    for item in items:
        item.state = WorkItem.State.LEASED
        item.leased_at = now
        item.lease_expires_at = now + lease_ttl()
        item.deadline_at = deadline
        item.attempts += 1  # the row is locked (or the database is, on SQLite)
    WorkItem.objects.bulk_update(
        items,
        ["state", "instance", "leased_at", "lease_expires_at", "deadline_at"]
        + ["attempts"],
    )
    api_keys = {item.pk: new_token() for item in items}
    key_expiry = deadline + timedelta(seconds=settings.HUB_API_KEY_GRACE_SECONDS)
    RunApiKey.objects.bulk_create(
        RunApiKey(
            run_id=i.run_id, key_hash=token_hash(api_keys[i.pk]), expires_at=key_expiry
        )
        for i in items
    )
    instances = {item.instance.pk: item.instance for item in items if item.instance}
    PluginInstance.objects.bulk_update(instances.values(), ["last_dispatch_at"])
    runs = {item.run_id: item.run for item in items}
    Run.objects.filter(pk__in=runs, status=Run.Status.QUEUED).update(
        status=Run.Status.RUNNING, started_at=now
    )
    for run in runs.values():
        if run.status == Run.Status.QUEUED:
            run.status, run.started_at = Run.Status.RUNNING, now
    RunLogLine.objects.bulk_create(
        RunLogLine(
            run_id=item.run_id,
            item=item,
            level=HUB,
            message=f"Job sent to instance at {item.instance.address}"
            + (f" for {item.asset.external_id}." if item.asset else "."),
        )
        for item in items
        if item.instance
    )
    for run_id in runs:
        _notify_after_commit(run_id)
    return [
        (
            "send",
            item.instance.channel_name,
            protocol.job_dispatch(
                kind_of(item.run).build_job(item, api_key=api_keys[item.pk])
            ),
        )
        for item in items
        if item.instance
    ]


def _lease(
    item: WorkItem,
    instance: PluginInstance | None,
    *,
    hold: timedelta | None = None,
    seconds: int | None = None,
    note: str = "",
) -> bool:
    """Pending → leased to `instance`, one attempt more, if no one else won it.
    Every delivery leases through here. The lease lasts `hold` unless renewed:
    one ping cycle for sockets (their pongs renew it), the whole deadline for
    REST connectors and hosted workers (nothing renews a synchronous call; the
    deadline sweep covers a lost worker). Hosted items have no instance and a
    longer first deadline (`seconds`): they may wait in Celery's queue."""
    run = item.run
    now = timezone.now()
    deadline = now + timedelta(seconds=seconds or run.plugin.timeout_seconds)
    with transaction.atomic():
        won = WorkItem.objects.filter(pk=item.pk, state=WorkItem.State.PENDING).update(
            state=WorkItem.State.LEASED,
            instance=instance,
            leased_at=now,
            lease_expires_at=now + (hold or lease_ttl()),
            deadline_at=deadline,
            attempts=F("attempts") + 1,
        )
        if won != 1:
            return False
        item.state, item.instance, item.deadline_at = (
            WorkItem.State.LEASED,
            instance,
            deadline,
        )
        if instance is not None:
            PluginInstance.objects.filter(pk=instance.pk).update(last_dispatch_at=now)
        if Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(
            status=Run.Status.RUNNING, started_at=now
        ):
            run.status, run.started_at = Run.Status.RUNNING, now
        what = f" for {item.asset.external_id}" if item.asset else ""
        where = f"instance at {instance.address}" if instance else "a hosted worker"
        _hub_log(run, note or f"Job sent to {where}{what}.", item=item)
        _notify_after_commit(run.pk)
        return True


def _job(item: WorkItem) -> dict[str, Any]:
    """The job of a leased item, with a fresh API key that lasts its deadline."""
    assert item.deadline_at is not None
    api_key = new_token()
    RunApiKey.objects.create(
        run=item.run,
        key_hash=token_hash(api_key),
        expires_at=item.deadline_at
        + timedelta(seconds=settings.HUB_API_KEY_GRACE_SECONDS),
    )
    return kind_of(item.run).build_job(item, api_key=api_key)


# --- REST connectors -------------------------------------------------------------
def connector_instance(plugin: Plugin) -> PluginInstance:
    """The one PluginInstance row that stands for a plugin's REST connector: it
    holds the leases, and the heartbeat probe keeps it live."""
    instance, _ = PluginInstance.objects.get_or_create(
        channel_name=protocol.connector_channel(plugin.pk),
        defaults={
            "plugin": plugin,
            "address": plugin.connector_url,
            # Not live until a probe answers.
            "last_seen_at": timezone.now() - timedelta(days=1),
        },
    )
    return instance


def _dispatch_rest(plugin_id: int) -> int:
    """Lease pending items to the plugin's connector up to its concurrency and
    hand each to a Celery task by id (the HTTP call never runs in a request).
    A connector is not required to be live: a dead URL fails the attempt,
    visibly, and the ledger retries it."""
    from plugins_app.tasks import deliver_connector_job

    sent = 0
    while True:
        item = _next_pending_item(plugin_id)
        if item is None:
            return sent
        plugin = item.run.plugin
        instance = connector_instance(plugin)
        held = WorkItem.objects.filter(instance=instance, state=WorkItem.State.LEASED)
        if held.count() >= plugin.concurrency:
            return sent
        hold = timedelta(seconds=plugin.timeout_seconds + 30)
        with transaction.atomic():
            if _lease(item, instance, hold=hold):
                item_id = item.pk
                transaction.on_commit(lambda i=item_id: deliver_connector_job.delay(i))
                sent += 1


def connector_deliver(item_id: int) -> str:
    """POST a leased item's job to its plugin's connector and settle the attempt
    by the answer: applied like a socket response; unreachable → retried while
    attempts remain; refused → failed, saying why. Returns a word for the log."""
    item = (
        WorkItem.objects.select_related(
            "run__plugin", "run__project", "run__created_by", "asset__task", "instance"
        )
        .filter(pk=item_id, state=WorkItem.State.LEASED)
        .first()
    )
    if item is None or item.instance is None:
        return "stale"
    plugin = item.run.plugin
    url = plugin.connector_url
    secret = connector_secret(plugin)
    if not url or secret is None:
        _item_fail(item, WorkItem.Failure.ERROR, _NO_CONNECTOR.format(url=url or "—"))
        return "refused"
    with transaction.atomic():
        job = _job(item)
    remaining = (item.deadline_at - timezone.now()).total_seconds()
    reply = connector.post_job(url, secret, job, timeout=max(1.0, remaining))
    return _connector_settle(item, reply)


_NO_CONNECTOR = (
    "The hub cannot call this plugin's REST connector (URL {url}): it needs a URL "
    "and a copy of the secret, kept only for secrets created or rotated while the "
    "plugin's delivery is REST. Rotate the secret on the plugin's page."
)


def _connector_settle(item: WorkItem, reply: connector.Reply) -> str:
    channel = item.instance.channel_name if item.instance else ""
    url = item.run.plugin.connector_url.rstrip("/") + "/plugin"
    if reply.status == 200 and reply.body is None and not reply.error:
        _hub_log(
            item.run,
            f"{url} accepted the job; its result comes on /v2/pluginResponse.",
            item=item,
        )
        return "accepted"
    if (
        reply.status == 200
        and isinstance(reply.body, dict)
        # The SDK echoes the job's session: any other JSON is not a plugin's
        # answer, and is not applied or quoted (it could be any service's).
        and reply.body.get("session") == item.session
    ):
        return item_respond(
            session=item.session, payload=reply.body, channel_name=channel
        )
    if reply.status == 500:
        # The SDK answers 500 when the callback raised (its log says why).
        payload = {"error": True, "session": item.session}
        return item_respond(session=item.session, payload=payload, channel_name=channel)
    if reply.status == 0 and "no answer within" in reply.error:
        _item_time_out(item, timezone.now())
        return "timeout"
    if reply.refused:
        _item_fail(
            item, WorkItem.Failure.ERROR, f"The hub does not call {url}: {reply.error}."
        )
        return "refused"
    if reply.unreachable:
        return _connector_unreachable(item, f"{url}: {reply.reason}")
    why = {
        401: "refused the hub's Secret header (HTTP 401): start the connector with "
        "the plugin's current secret in PLUGIN_SECRET",
        404: "has no /plugin endpoint (HTTP 404): is it an imerit-ango plugin "
        "started with CONNECTOR=REST?",
    }.get(reply.status, f"answered {_not_an_answer(reply)}")
    _item_fail(item, WorkItem.Failure.ERROR, f"The REST connector at {url} {why}.")
    return "refused"


def _not_an_answer(reply: connector.Reply) -> str:
    if reply.status == 200 and not reply.error:
        return "HTTP 200 (not a plugin's answer)"  # JSON, but not the SDK's
    return reply.reason


def _connector_unreachable(item: WorkItem, error: str) -> str:
    plugin = item.run.plugin
    outcome = _retry_or_fail(
        item,
        WorkItem.Failure.ERROR,
        final=f"The plugin's REST connector could not be reached after "
        f"{item.attempts} attempt(s): {error}. Check that it runs and that the "
        "hub can reach its URL (the plugin page shows its last heartbeat probe).",
        retry=f"Could not reach the REST connector (attempt {item.attempts} of "
        f"{plugin.max_attempts}): {error}; the job goes back to the queue.",
        level="WARNING",
    )
    if outcome == "retry":
        dispatch_pending(plugin.pk)
    return outcome


def connector_probe(plugin_id: int) -> bool:
    """GET <url>/heartbeat with the Secret header: an "ok" keeps the connector
    live on the plugins page; a failure marks it down (recorded for admins once
    per outage, not once per probe)."""
    plugin = Plugin.objects.filter(pk=plugin_id, delivery=Delivery.REST).first()
    if plugin is None or not plugin.connector_url:
        return False
    secret = connector_secret(plugin)
    instance = connector_instance(plugin)
    reply = (
        connector.probe(
            plugin.connector_url, secret, timeout=settings.HUB_CONNECTOR_PROBE_TIMEOUT
        )
        if secret is not None
        else connector.Reply(0, error="no copy of the secret: rotate it")
    )
    now = timezone.now()
    if reply.status == 200 and reply.body == "ok":
        PluginInstance.objects.filter(pk=instance.pk).update(
            address=plugin.connector_url,
            last_heartbeat=now,
            last_seen_at=now,
            disconnected_at=None,
        )
        return True
    was_up = PluginInstance.objects.filter(
        pk=instance.pk, disconnected_at__isnull=True
    ).update(disconnected_at=now)
    if was_up:
        reason = (
            'HTTP 200 (not the SDK\'s "ok")'
            if reply.status == 200 and not reply.error
            else reply.reason
        )
        FailedHeartbeat.objects.create(
            plugin=plugin,
            claimed_id=plugin.public_id,
            address=plugin.connector_url[:100],
            reason=f"heartbeat probe failed: {reason}"[:200],
        )
    return False


def connector_logs_ingest(run: Run, data: Any) -> bool:
    """A `POST /v2/pluginLog` record (the SDK's REST logger): stored like a
    socket `log` event, if its session is an item of the key's run."""
    record = parse_log_event(data)
    if record is None or not run.items.filter(session=record.session).exists():
        return False
    logs_ingest([record], channel_name=protocol.connector_channel(run.plugin_id))
    return True


def connector_respond(run: Run, data: Any) -> str:
    """A `POST /v2/pluginResponse` (export results, or errors the SDK reports
    there): applied like a socket response, once, if the session is the run's."""
    session = data.get("session") if isinstance(data, dict) else None
    if not isinstance(session, str) or not run.items.filter(session=session).exists():
        return "unknown-session"
    channel = protocol.connector_channel(run.plugin_id)
    return item_respond(session=session, payload=data, channel_name=channel)


# --- hosted delivery ------------------------------------------------------------
# The handler starts when a Celery worker picks the job up, which may be a while
# after the lease: the worker restamps the deadline then (hosted_item_started).
HOSTED_QUEUE_GRACE_SECONDS = 60
# The worker kills the sandbox at the plugin's timeout; the sweep's deadline
# comes a little later, so the worker's precise reason wins.
HOSTED_KILL_GRACE_SECONDS = 10


def _dispatch_hosted(plugin_id: int) -> int:
    """Hosted plugins: lease waiting items, up to the plugin's concurrency across
    all workers, and hand each to a Celery worker that runs the uploaded handler
    in a sandbox (plugins_app/hosted/). Items wait while the code builds and
    fail, saying why, when there is no working build."""
    from plugins_app.hosted.models import HostedCode
    from plugins_app.hosted.tasks import hand_off

    plugin = Plugin.objects.get(pk=plugin_id)
    code = HostedCode.objects.filter(plugin_id=plugin_id).first()
    if code is None or code.status == HostedCode.Status.FAILED:
        why = "has no uploaded code" if code is None else "failed to build"
        _fail_pending(plugin_id, f"The hosted plugin {why}; see its page.")
        return 0
    if code.status != HostedCode.Status.ACTIVE:
        return 0  # building: dispatched again when the build ends
    leased: list[int] = []
    in_flight = WorkItem.objects.filter(
        plugin_id=plugin_id, state=WorkItem.State.LEASED
    ).count()
    while in_flight + len(leased) < plugin.concurrency:
        item = _next_pending_item(plugin_id)
        if item is None:
            break
        wait = plugin.timeout_seconds + HOSTED_QUEUE_GRACE_SECONDS
        if _lease(item, None, hold=timedelta(seconds=wait), seconds=wait):
            leased.append(item.pk)
    hand_off(leased)
    return len(leased)


def _fail_pending(plugin_id: int, error: str) -> int:
    failed = 0
    for item in WorkItem.objects.filter(
        plugin_id=plugin_id, state=WorkItem.State.PENDING
    ).select_related("run"):
        with transaction.atomic():
            if WorkItem.objects.filter(pk=item.pk, state=WorkItem.State.PENDING).update(
                state=WorkItem.State.FAILED,
                failure=WorkItem.Failure.ERROR,
                error=error,
                finished_at=timezone.now(),
            ):
                _hub_log(item.run, error, item=item, level="ERROR")
                _run_settle(item.run_id)
                failed += 1
    return failed


def hosted_item_started(item_id: int, *, worker: str) -> WorkItem | None:
    """A worker starts the handler: the attempt's deadline counts from now.
    None when the item is no longer leased (cancelled, or timed out waiting)."""
    item = (
        WorkItem.objects.select_related(
            "run__plugin",
            "run__project",
            "run__task",
            "run__event__actor",
            "asset__task",
        )
        .filter(pk=item_id, state=WorkItem.State.LEASED, instance__isnull=True)
        .first()
    )
    if item is None:
        return None
    until = timezone.now() + timedelta(
        seconds=item.run.plugin.timeout_seconds + HOSTED_KILL_GRACE_SECONDS
    )
    WorkItem.objects.filter(pk=item.pk, state=WorkItem.State.LEASED).update(
        deadline_at=until, lease_expires_at=until
    )
    _hub_log(item.run, f"Handler started on worker {worker}.", item=item)
    return item


def hosted_item_finish(
    item: WorkItem,
    *,
    note: str = "",
    error: str = "",
    failure: str = WorkItem.Failure.ERROR,
) -> None:
    """The sandboxed handler returned (note) or failed, was killed at a limit,
    or crashed (error, with its failure kind). A no-op if the item was
    cancelled meanwhile."""
    if error:
        _item_fail(item, failure, error)
    else:
        _item_done(item, note)


def item_is_open(item_id: int) -> bool:
    return WorkItem.objects.filter(pk=item_id, state=WorkItem.State.LEASED).exists()


# --- plugin instances ---------------------------------------------------------
def instance_heartbeat(
    *,
    channel_name: str,
    plugin_public_id: Any,
    secret: Any,
    address: str,
    capacity: int | None = None,
) -> PluginInstance | None:
    """Authenticate a `heartbeat` event. A bad id or secret is recorded for the
    admins and returns None: the socket stays open but never gets work. The
    right secret always authenticates; failures are limited per address and
    plugin (unknown ids share one key), and over the limit they are no longer
    recorded (ops/auth_guard.py)."""
    plugin = (
        Plugin.objects.filter(public_id=plugin_public_id).first()
        if isinstance(plugin_public_id, str)
        else None
    )
    if plugin is None:
        return _heartbeat_failed(None, plugin_public_id, address, "unknown plugin id")
    if not isinstance(secret, str) or not token_matches(secret, plugin.secret_hash):
        return _heartbeat_failed(plugin, plugin_public_id, address, "wrong secret")
    now = timezone.now()
    instance, created = PluginInstance.objects.update_or_create(
        channel_name=channel_name,
        defaults={
            "plugin": plugin,
            "address": address,
            "last_heartbeat": now,
            "last_seen_at": now,
            "capacity": capacity,
            "disconnected_at": None,
        },
    )
    if created:
        log.info("plugin %s connected from %s", plugin.public_id, address)
        _dispatch_freed_slots_after_commit(plugin.pk)
    return instance


def _heartbeat_failed(
    plugin: Plugin | None, claimed_id: Any, address: str, reason: str
) -> None:
    key = plugin.public_id if plugin else None
    if not failures_recorded(address, key):
        return None  # over the limit: one alert was sent, the table stays small
    log.warning(
        "heartbeat refused from %s for plugin id %r: %s", address, claimed_id, reason
    )
    FailedHeartbeat.objects.create(
        plugin=plugin, claimed_id=str(claimed_id)[:200], address=address, reason=reason
    )
    heartbeat_failed(address, key)
    return None


def instances_seen(channel_names: Iterable[str]) -> int:
    """These sockets answered a ping: their instances are alive, and so are the
    leases they hold. Two UPDATEs for any number of them (a web process saves
    the pongs of all its sockets together); returns the leases renewed."""
    names = list(channel_names)
    now = timezone.now()
    PluginInstance.objects.filter(
        channel_name__in=names, disconnected_at__isnull=True
    ).update(last_seen_at=now)
    return WorkItem.objects.filter(
        state=WorkItem.State.LEASED,
        instance__channel_name__in=names,
        instance__disconnected_at__isnull=True,
    ).update(lease_expires_at=now + lease_ttl())


def instance_disconnect(*, channel_name: str) -> None:
    """The socket closed: give its leased items back so another instance (or this
    one, reconnected) takes them; a job that has already cost this many
    connections fails instead (a frame the server cannot take would loop)."""
    instance = PluginInstance.objects.filter(channel_name=channel_name).first()
    if instance is None:
        return
    now = timezone.now()
    with transaction.atomic():
        PluginInstance.objects.filter(pk=instance.pk).update(disconnected_at=now)
        leased = WorkItem.objects.filter(
            instance=instance, state=WorkItem.State.LEASED
        ).select_related("run__plugin")
        for item in leased:
            if item.attempts >= item.run.plugin.max_attempts:
                _item_fail(
                    item,
                    WorkItem.Failure.ERROR,
                    f"The plugin's connection dropped while holding this job "
                    f"{item.attempts} times; giving up.",
                )
                continue
            _hub_log(
                item.run,
                f"Instance at {instance.address} disconnected; the job goes back "
                "to the queue.",
                item=item,
            )
            _requeue(item, now)
    _dispatch_freed_slots_after_commit(instance.plugin_id)


def instances_forget_all() -> int:
    """At the start of the only ASGI process (embedded mode): every socket of the
    previous process is gone, so its instances are not live and their jobs go
    back to the queue for the plugins to pick up when they reconnect. REST
    connectors have no socket here: their calls run in Celery and go on."""
    channel_names = list(
        PluginInstance.objects.filter(disconnected_at__isnull=True)
        .exclude(channel_name__startswith=protocol.CONNECTOR_PREFIX)
        .values_list("channel_name", flat=True)
    )
    for channel_name in channel_names:
        instance_disconnect(channel_name=channel_name)
    return len(channel_names)


# --- logs -----------------------------------------------------------------------
@dataclass(frozen=True)
class PluginLogRecord:
    session: str
    level: str
    message: str
    extra: dict[str, Any]


MAX_LOG_MESSAGE = 20_000
LOG_FIELDS = {"level", "msg", "organization", "pluginId", "runBy", "session"}


def parse_log_event(data: Any) -> PluginLogRecord | None:
    """Read a `log` event; 1.4.x merges `extra` into the top level, 1.3.x nests it."""
    if not isinstance(data, dict) or not isinstance(data.get("session"), str):
        return None
    extra = {k: v for k, v in data.items() if k not in LOG_FIELDS and k != "extra"}
    if isinstance(data.get("extra"), dict):
        extra.update(data["extra"])
    return PluginLogRecord(
        session=data["session"],
        level=str(data.get("level") or "INFO")[:20],
        message=str(data.get("msg", ""))[:MAX_LOG_MESSAGE],
        extra=extra,
    )


def logs_ingest(records: Iterable[PluginLogRecord], *, channel_name: str) -> int:
    """Store a batch of plugin log lines, update progress, push them to watchers.
    Lines for sessions this instance does not hold are dropped (and counted)."""
    records = list(records)
    items = WorkItem.objects.filter(
        session__in={r.session for r in records},
        instance__channel_name=channel_name,
    )
    return _logs_store(records, items)


def logs_ingest_hosted(records: Iterable[PluginLogRecord], *, item_id: int) -> int:
    """The same for a hosted handler's lines, sent by the worker running it
    (which holds the item without an instance) while the item is leased."""
    items = WorkItem.objects.filter(pk=item_id, state=WorkItem.State.LEASED)
    return _logs_store(list(records), items)


def _logs_store(records: list[PluginLogRecord], held: Iterable[WorkItem]) -> int:
    items = {i.session: i for i in held}
    # One line's extra must not cost the batch (NaN fails SQLite's JSON_VALID
    # and would roll back every line with it) nor the run page (a value nested
    # ~1,000 deep recursed past Python's limit on every render).
    records = [replace(r, extra=bounded_log_extra(r.extra)) for r in records]
    lines = [
        RunLogLine(
            run_id=items[r.session].run_id,
            item=items[r.session],
            level=r.level,
            message=r.message,
            extra=r.extra,
        )
        for r in records
        if r.session in items
    ]
    with transaction.atomic():
        created = RunLogLine.objects.bulk_create(lines)
        for run_id, (done, total) in _reported_progress(records, items).items():
            Run.objects.filter(pk=run_id).update(
                reported_progress=done, reported_total=total
            )
    # Progress only comes with stored lines: one notification per run covers both.
    for run_id in {line.run_id for line in created}:
        _notify_after_commit(run_id)
    return len(records) - len(lines)


def bounded_log_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """What of a log line's extra is kept: HUB_MAX_JSON_DEPTH levels and about
    HUB_MAX_LOG_EXTRA_BYTES of JSON; NaN/Infinity as strings. Anything cut is
    marked in place ("…(cut)") and by a `hub_truncated` key."""
    kept, cut = json_trimmed(
        extra,
        max_depth=settings.HUB_MAX_JSON_DEPTH,
        max_chars=settings.HUB_MAX_LOG_EXTRA_BYTES,
    )
    if cut and isinstance(kept, dict):
        kept["hub_truncated"] = (
            "Parts of this extra were cut: over HUB_MAX_JSON_DEPTH levels or "
            "HUB_MAX_LOG_EXTRA_BYTES of JSON."
        )
    return kept


def _reported_progress(
    records: list[PluginLogRecord], items: dict[str, WorkItem]
) -> dict[int, tuple[int, int]]:
    progress: dict[int, tuple[int, int]] = {}
    for r in records:
        done, total = r.extra.get("progress"), r.extra.get("total")
        if r.session in items and _is_count(done) and _is_count(total):
            progress[items[r.session].run_id] = (int(done), int(total))
    return progress


def _is_count(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and 0 <= value < 2**31
    )


# --- responses ----------------------------------------------------------------
def item_respond(*, session: Any, payload: dict[str, Any], channel_name: str) -> str:
    """Apply a plugin's `response`. Returns a word for the consumer's log."""
    item = (
        WorkItem.objects.filter(session=session)
        .select_related("run__plugin", "run__project", "asset", "instance")
        .first()
        if isinstance(session, str)
        else None
    )
    if item is None:
        log.warning("response for unknown session %r ignored", session)
        return "unknown-session"
    if item.state != WorkItem.State.LEASED or (
        item.instance is None or item.instance.channel_name != channel_name
    ):
        return _ignore_stale(item, channel_name)
    if item.instance.timeouts:  # it answers again: back in line with the others
        PluginInstance.objects.filter(pk=item.instance_id).update(timeouts=0)
    if payload.get("error") and _workflow_bounced(item):
        return "busy"
    if payload.get("error"):
        _item_fail(item, WorkItem.Failure.ERROR, _plugin_error_text(item))
        return "error"
    if item.run.trigger == WORKFLOW_TRIGGER:
        # Success of a workflow job is its POST /v2/annotate, never a response.
        _hub_log(item.run, "Ignored a socket response to a workflow job.", item=item)
        return "ignored"
    with transaction.atomic():
        # Hold the lease's row while the answer is written: a sweep that
        # requeues it meanwhile waits, then finds it done. Without the lock a
        # pre-label could be written, the job requeued, and written again.
        held = WorkItem.objects.select_for_update().filter(
            pk=item.pk, state=WorkItem.State.LEASED, instance_id=item.instance_id
        )
        if not held.exists():
            item.refresh_from_db(fields=["state"])
            return _ignore_stale(item, channel_name)
        outcome = kind_of(item.run).apply_response(item, payload.get("response"))
        if outcome.problems:
            text = "The plugin's answer was rejected:\n" + "\n".join(
                f"• {p}" for p in outcome.problems
            )
            _item_fail(item, WorkItem.Failure.INVALID, text)
            return "invalid"
        if outcome.skipped:
            _item_skip(item, outcome.skipped)
            return "skipped"
        _item_done(item, outcome.note)
    return "done"


def _ignore_stale(item: WorkItem, channel_name: str) -> str:
    log.info(
        "stale response for item %s (%s) from %s ignored",
        item.pk,
        item.state,
        channel_name,
    )
    _hub_log(
        item.run,
        f"Ignored a response for a job that is already {item.get_state_display()}"
        " or held by another instance.",
        item=item,
    )
    return "stale"


def item_fail_oversized(*, session: str, channel_name: str, size: int) -> bool:
    """Fail the job `session` (held by this channel) whose answer frame was
    refused; False when the session is none of its leased jobs."""
    item = WorkItem.objects.filter(
        session=session,
        state=WorkItem.State.LEASED,
        instance__channel_name=channel_name,
    ).first()
    if item is not None:
        limit = settings.HUB_MAX_FRAME_BYTES
        _item_fail(
            item,
            WorkItem.Failure.INVALID,
            f"The plugin's response is {size:,} bytes, over the hub's limit of "
            f"{limit:,} bytes (HUB_MAX_FRAME_BYTES); nothing was stored.",
        )
    return item is not None


def _plugin_error_text(item: WorkItem) -> str:
    # 1.4.x adds its own "Plugin callback failed: …" after the plugin's own error
    # line, so the last few lines say more than the last one.
    errors = list(
        RunLogLine.objects.filter(item=item, level__in=["ERROR", "CRITICAL"])
        .order_by("-id")
        .values_list("message", flat=True)[:3]
    )
    if errors:
        return "The plugin reported an error: " + "\n".join(reversed(errors))
    return (
        "The plugin reported an error without logging why (its callback raised; "
        "the SDK sends no message)."
    )


def _item_done(item: WorkItem, note: str) -> None:
    with transaction.atomic():
        if not _finish_item(item, WorkItem.State.DONE):
            return
        _hub_log(item.run, note or "Job done.", item=item)
        _run_settle(item.run_id)


def _item_skip(item: WorkItem, reason: str) -> None:
    """Answered, but the task holds a person's work: kept, and the run goes on."""
    with transaction.atomic():
        if not _finish_item(item, WorkItem.State.SKIPPED, error=reason):
            return
        _hub_log(item.run, f"Skipped: {reason}.", item=item)
        _run_settle(item.run_id)


def _item_fail(item: WorkItem, failure: str, error: str) -> None:
    with transaction.atomic():
        if not _finish_item(item, WorkItem.State.FAILED, failure=failure, error=error):
            return
        _hub_log(item.run, error, item=item, level="ERROR")
        _run_settle(item.run_id)


def _finish_item(item: WorkItem, state: str, **fields: Any) -> bool:
    """Leased → final, exactly once even if two processes race."""
    return (
        WorkItem.objects.filter(pk=item.pk, state=WorkItem.State.LEASED).update(
            state=state, finished_at=timezone.now(), **fields
        )
        == 1
    )


def _run_settle(run_id: int, *, dispatch: bool = True) -> None:
    """Finish the run once no item is pending or leased. The finished item freed
    a slot on its instance: hand out the next waiting job at once (unless the
    caller schedules that itself)."""
    run = Run.objects.select_for_update().get(pk=run_id)
    if dispatch:
        _dispatch_freed_slots_after_commit(run.plugin_id)
    rows = list(run.items.values_list("state", "failure").distinct())
    states = {state for state, _ in rows}
    if WorkItem.State.PENDING in states or WorkItem.State.LEASED in states:
        _notify_after_commit(run.pk)
        return
    if run.is_finished:
        return
    failures = {failure for state, failure in rows if state == WorkItem.State.FAILED}
    if not failures:
        status, error = Run.Status.SUCCEEDED, ""
    elif failures == {WorkItem.Failure.TIMEOUT}:
        status = Run.Status.TIMED_OUT
        error = _first_item_error(run)
    else:
        status = Run.Status.FAILED
        error = _first_item_error(run)
    _run_close(run, status, error)


def _first_item_error(run: Run) -> str:
    failed = run.items.filter(state=WorkItem.State.FAILED).exclude(error="")
    first = failed.order_by("id").first()
    count = failed.count()
    if first is None:
        return ""
    more = f"\n(and {count - 1} more failed item(s))" if count > 1 else ""
    return first.error + more


def _run_close(run: Run, status: str, error: str) -> None:
    now = timezone.now()
    Run.objects.filter(pk=run.pk).update(status=status, error=error, finished_at=now)
    RunApiKey.objects.filter(run=run, revoked_at__isnull=True).update(revoked_at=now)
    _hub_log(run, f"Run {Run.Status(status).label.lower()}.")
    _notify_after_commit(run.pk)
    if run.task_id is not None:
        _record_on_task(run, status, error)


def _record_on_task(run: Run, status: str, error: str) -> None:
    """A run about a task ended: say so in the task's history."""
    task = Task.objects.filter(pk=run.task_id).first()
    if task is None:
        return
    name = events.RUN_SUCCEEDED if status == Run.Status.SUCCEEDED else events.RUN_FAILED
    events.emit(
        task,
        name,
        actor_label=f"plugin {run.plugin.name}",
        data={
            "run": run.pk,
            "plugin": run.plugin.name,
            "trigger": run.trigger,
            "status": status,
            "error": error[:500],
        },
    )


# --- cancel and retry -----------------------------------------------------------
def run_cancel(run: Run, *, by: AbstractBaseUser | None) -> Run:
    """Stop a run: its waiting and in-flight items are cancelled (a late answer
    for one is stale and ignored), its API keys revoked. A finished run is left
    as it is."""
    who = by.get_username() if by else "the command line"
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if run.is_finished:
            return run
        now = timezone.now()
        open_items = run.items.filter(
            state__in=[WorkItem.State.PENDING, WorkItem.State.LEASED]
        )
        held = list(
            open_items.filter(state=WorkItem.State.LEASED).select_related("instance")
        )
        open_items.update(
            state=WorkItem.State.CANCELLED,
            failure=WorkItem.Failure.CANCELLED,
            error=f"Cancelled by {who}.",
            lease_expires_at=None,
            deadline_at=None,
            finished_at=now,
        )
        for item in held:
            where = item.instance.address if item.instance else "an instance"
            _hub_log(
                run,
                f"Cancelled while the instance at {where} held it; its answer "
                "will be ignored.",
                item=item,
            )
        _hub_log(run, f"{who} cancelled the run.")
        _run_close(run, Run.Status.CANCELLED, f"Cancelled by {who}.")
        # The cancelled jobs freed slots on their instances.
        plugin_id = run.plugin_id
        transaction.on_commit(lambda: dispatch_pending(plugin_id))
    run.refresh_from_db()
    return run


def run_retry(run: Run, *, by: AbstractBaseUser | None) -> Run:
    """Send the failed items of a finished run again (their attempts kept)."""
    who = by.get_username() if by else "the command line"
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if not run.is_finished:
            raise RunActionError(
                f"Only a finished run can be retried; this one is "
                f"{run.get_status_display().lower()}."
            )
        now = timezone.now()
        count = run.items.filter(state=WorkItem.State.FAILED).update(
            state=WorkItem.State.PENDING,
            failure="",
            error="",
            lease_expires_at=None,
            deadline_at=None,
            finished_at=None,
            queued_at=now,
        )
        if not count:
            raise RunActionError("This run has no failed item to retry.")
        Run.objects.filter(pk=run.pk).update(
            status=Run.Status.QUEUED, error="", finished_at=None
        )
        _hub_log(run, f"{who} retried {count} failed item(s).")
        plugin_id = run.plugin_id
        transaction.on_commit(lambda: dispatch_pending(plugin_id))
    run.refresh_from_db()
    return run


# --- Batch Model progress (from /v2/import/labels) ----------------------------
def run_count_labeled(run: Run, count: int) -> None:
    """After an import: count the assets that carry this run's pre-label (an
    asset imported twice counts once)."""
    labeled = Task.objects.filter(prelabel_run=run).count()
    Run.objects.filter(pk=run.pk).update(assets_labeled=labeled)
    _hub_log(run, f"Imported pre-labels for {count} asset(s).")
    _notify_after_commit(run.pk)


def run_log_import_errors(
    run: Run, errors: list[dict[str, Any]], *, total: int
) -> None:
    """Show a refused import in the run log: which records, and why."""
    lines = [
        f"records[{e['index']}] ({e.get('externalId')}): " + "; ".join(e["problems"])
        for e in errors[:20]
    ]
    more = f"\n… and {len(errors) - 20} more" if len(errors) > 20 else ""
    _hub_log(
        run,
        f"Refused an import of {total} record(s); nothing was written:\n"
        + "\n".join(lines)
        + more,
        level="ERROR",
    )


def run_log_import_skips(run: Run, skipped: list[dict[str, Any]]) -> None:
    """Show which imported records were kept from their tasks, and why."""
    lines = [f"{s['externalId']}: {s['reason']}" for s in skipped[:20]]
    more = f"\n… and {len(skipped) - 20} more" if len(skipped) > 20 else ""
    _hub_log(
        run,
        f"Skipped {len(skipped)} record(s) whose task holds a person's work "
        "(the others were written):\n" + "\n".join(lines) + more,
    )


def run_note(run: Run, message: str, *, error: bool = False) -> None:
    """A line of the hub's own in the run log (what a plugin did over REST)."""
    _hub_log(run, message, level="ERROR" if error else HUB)


# --- the periodic sweep ---------------------------------------------------------
def runs_sweep() -> dict[str, int]:
    """Time out attempts past their deadline (retrying while attempts remain),
    give back the jobs of holders that stopped answering pings, fail queued items
    that no instance took within the plugin's timeout; re-dispatch what waits."""
    now = timezone.now()
    timed_out = requeued = dispatched = 0
    # Every step is per item or per plugin under `each_plugin`: one plugin's bad
    # data is logged, naming it, and the others are still swept.
    past_deadline = WorkItem.objects.filter(
        state=WorkItem.State.LEASED, deadline_at__lt=now
    ).select_related("run__plugin", "instance")
    for item in past_deadline:
        with each_plugin("sweep: time-out", item.run.plugin.public_id):
            if _item_time_out(item, now):
                timed_out += 1
            else:
                requeued += 1
    lost = WorkItem.objects.filter(
        state=WorkItem.State.LEASED, lease_expires_at__lt=now
    ).select_related("run__plugin", "instance")
    for item in lost:
        with each_plugin("sweep: lost lease", item.run.plugin.public_id):
            requeued += _item_lease_lost(item, now)
    with each_plugin("sweep: unclaimed jobs", "(any)"):
        timed_out += _time_out_unclaimed(now)
    waiting = (
        WorkItem.objects.filter(state=WorkItem.State.PENDING)
        .order_by()
        .values_list("plugin_id", "plugin__public_id")
        .distinct()
    )
    for plugin_id, public_id in waiting:
        with each_plugin("sweep: dispatch", public_id):
            dispatched += dispatch_pending(plugin_id)
    return {"timed_out": timed_out, "requeued": requeued, "dispatched": dispatched}


def _item_time_out(item: WorkItem, now: Any) -> bool:
    """An attempt ran past the plugin's timeout: queue it again while attempts
    remain, else fail it. Returns True when it failed."""
    plugin = item.run.plugin
    if item.instance_id is not None:
        PluginInstance.objects.filter(pk=item.instance_id).update(
            timeouts=F("timeouts") + 1
        )
    outcome = _retry_or_fail(
        item,
        WorkItem.Failure.TIMEOUT,
        final=f"No answer from the plugin within {plugin.timeout_seconds} s. "
        f"Timed out after {item.attempts} attempt(s). " + TIMEOUT_CAUSES,
        retry=f"No answer within {plugin.timeout_seconds} s (attempt "
        f"{item.attempts} of {plugin.max_attempts}); the job goes back to "
        "the queue.",
        now=now,
    )
    return outcome == "failed"


def _item_lease_lost(item: WorkItem, now: Any) -> int:
    """The holder stopped answering pings (its process died without closing its
    socket): the job goes back to the queue, the attempt counted."""
    where = item.instance.address if item.instance else "an instance"
    outcome = _retry_or_fail(
        item,
        WorkItem.Failure.ERROR,
        final=f"The instance at {where} went silent while holding this job; "
        f"{item.attempts} attempt(s) made, giving up.",
        retry=f"Instance at {where} stopped answering pings; the job goes back to "
        "the queue.",
        now=now,
    )
    return int(outcome == "retry")


def _retry_or_fail(
    item: WorkItem,
    failure: str,
    *,
    final: str,
    retry: str,
    now: Any = None,
    level: str = HUB,
) -> str:
    """One more attempt while the plugin allows it (back to the queue, `retry`
    logged), else fail the item with `final`. Returns "failed", "retry", or
    "settled" when another process already moved the item on."""
    if item.attempts >= item.run.plugin.max_attempts:
        _item_fail(item, failure, final)
        return "failed"
    with transaction.atomic():
        if not _requeue(item, now or timezone.now()):
            return "settled"
        _hub_log(item.run, retry, item=item, level=level)
    return "retry"


def _requeue(item: WorkItem, now: Any) -> bool:
    """Leased → pending, only if still leased to the same instance."""
    return (
        WorkItem.objects.filter(
            pk=item.pk, state=WorkItem.State.LEASED, instance_id=item.instance_id
        ).update(
            state=WorkItem.State.PENDING,
            lease_expires_at=None,
            deadline_at=None,
            queued_at=now,
        )
        == 1
    )


def _time_out_unclaimed(now: Any) -> int:
    """Fail jobs that waited past the plugin's timeout with no live instance at
    all; a job queued behind busy live instances keeps waiting for a slot."""
    count = 0
    live_plugins = PluginInstance.objects.live().values("plugin_id")
    waiting = (
        WorkItem.objects.filter(state=WorkItem.State.PENDING)
        .exclude(run__plugin_id__in=live_plugins)
        .exclude(plugin__delivery=Delivery.HOSTED)
        .select_related("run__plugin")
    )
    for item in waiting:
        timeout = item.run.plugin.timeout_seconds
        if (now - item.queued_at).total_seconds() <= timeout:
            continue
        with (
            each_plugin("sweep: unclaimed job", item.run.plugin.public_id),
            transaction.atomic(),
        ):
            claimed = WorkItem.objects.filter(
                pk=item.pk, state=WorkItem.State.PENDING
            ).update(
                state=WorkItem.State.FAILED,
                failure=WorkItem.Failure.TIMEOUT,
                finished_at=now,
                error=f"No instance of the plugin was connected to take this job "
                f"for {timeout} s.",
            )
            if claimed:
                _hub_log(item.run, "No instance took the job in time.", item=item)
                _run_settle(item.run_id)
                count += 1
    return count


# --- helpers ------------------------------------------------------------------
def _hub_log(
    run: Run, message: str, *, item: WorkItem | None = None, level: str = HUB
) -> RunLogLine:
    line = RunLogLine.objects.create(run=run, item=item, level=level, message=message)
    _notify_after_commit(run.pk)
    return line


def _notify_after_commit(run_id: int) -> None:
    """Tell the run's watchers; they read what is new themselves and coalesce
    bursts, so a notification is a tiny message, whatever changed: one per run
    is enough for the changes made in one (sub)transaction."""
    connection = transaction.get_connection()
    scope = set(connection.savepoint_ids)
    if connection.in_atomic_block and any(
        sids == scope and getattr(func, "notifies_run", None) == run_id
        for sids, func, *_robust in connection.run_on_commit
    ):
        return

    def notify() -> None:
        protocol.group_send(protocol.run_group(run_id), protocol.run_changed(run_id))

    notify.notifies_run = run_id  # type: ignore[attr-defined]
    transaction.on_commit(notify)


# --- workflow Plugin stages -------------------------------------------------------
OPEN_RUN = (Run.Status.QUEUED, Run.Status.RUNNING)
WORKFLOW_SLOT_GRACE_SECONDS = 0.05
MAX_WORKFLOW_BOUNCES = 5
BUSY_NOTE = "The instance's workflow slots were all busy (it refused the job at once);"


class WorkflowAnswerError(Exception):
    """A POST /v2/annotate the hub refuses; `status` is the HTTP status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class StageSettings:
    """What a Plugin stage runs: its plugin, mapping and config, or why not."""

    plugin: Plugin | None
    mapping: list[dict[str, str]] | None
    config_json: str
    problems: list[str]


def stage_settings(project: Project, stage: dict[str, Any]) -> StageSettings:
    """Resolve a stage's plugin and preset now: a preset edited since the stage
    was set up applies, and one broken by an ontology change stops the run."""
    plugin = Plugin.objects.filter(
        pk=stage.get("plugin"), organization_id=project.organization_id
    ).first()
    if plugin is None:
        return StageSettings(None, None, "{}", ["The stage's plugin no longer exists."])
    problems = []
    if plugin.type != PluginType.MODEL:
        problems.append(f"“{plugin.name}” is not a Model plugin.")
    if not plugin.projects.filter(pk=project.pk).exists():
        problems.append(f"“{plugin.name}” is not activated on this project.")
    mapping: dict[str, str] = stage.get("class_mapping") or {}
    config = stage.get("config_json") or plugin.default_config or "{}"
    if stage.get("preset"):
        preset = Preset.objects.filter(
            pk=stage["preset"], project=project, plugin=plugin
        ).first()
        if preset is None:
            problems.append("The stage's preset was deleted: choose another one.")
        else:
            problems += [
                f"Preset “{preset.name}”: {p}" for p in preset_problems(preset, project)
            ]
            mapping, config = preset.class_mapping, preset.config_json
    pairs = [{"schemaId": sid, "modelClass": mc} for mc, sid in mapping.items() if sid]
    return StageSettings(plugin, pairs or None, config, problems)


def workflow_run_create(*, task_id: int, stage_name: str) -> Run | None:
    """A task entered (or is retried in) a Plugin stage: one run for it, sent to
    the stage's Model plugin. None when the task has moved on, or already has a
    run in flight (a duplicate event must not handle it twice)."""
    with transaction.atomic():
        task = (
            Task.objects.select_for_update()
            .select_related("project", "asset")
            .filter(pk=task_id)
            .first()
        )
        if task is None or task.stage != stage_name:
            return None
        stage = workflow.stage_named(task.project.workflow, stage_name)
        if stage is None or stage.get("type") != workflow.PLUGIN:
            return None
        if Run.objects.filter(
            task=task, trigger=WORKFLOW_TRIGGER, status__in=OPEN_RUN
        ).exists():
            return None
        settings_ = stage_settings(task.project, stage)
        if settings_.plugin is None:
            log.warning("task %s in stage %s: %s", task.pk, stage_name, "no plugin")
            return None
        run = Run.objects.create(
            organization_id=task.project.organization_id,
            project=task.project,
            plugin=settings_.plugin,
            class_mapping=settings_.mapping,
            config_json=settings_.config_json.strip() or "{}",
            trigger=WORKFLOW_TRIGGER,
            task=task,
        )
        what = f"Task of {task.asset.external_id} entered the stage “{stage_name}”"
        if settings_.problems:
            _hub_log(run, f"{what}; it cannot be sent:", level="ERROR")
            _run_close(run, Run.Status.FAILED, "\n".join(settings_.problems))
            return run
        WorkItem.objects.create(
            run=run, plugin=run.plugin, asset=task.asset, session=_new_session()
        )
        _hub_log(run, f"{what}; waiting for a plugin instance.")
        plugin_id = run.plugin_id
        transaction.on_commit(lambda: dispatch_pending(plugin_id))
    return run


def workflow_stage_retry(
    project: Project,
    stage_name: str,
    *,
    task_ids: Iterable[int] | None = None,
    only_failed: bool = True,
) -> int:
    """Send the stage's tasks again: the failed ones (or one of them), or every
    task sitting in the stage with no run in flight (Ango's stage Re-Run).
    Returns how many runs were created."""
    stage = workflow.stage_named(project.workflow, stage_name)
    if stage is None or stage.get("type") != workflow.PLUGIN:
        raise RunActionError(f"“{stage_name}” is not a Plugin stage of this project.")
    tasks = project.tasks.filter(stage=stage_name)
    if task_ids is not None:
        tasks = tasks.filter(pk__in=list(task_ids))
    created = 0
    for task_id in tasks.values_list("pk", flat=True):
        latest = (
            Run.objects.filter(task_id=task_id, trigger=WORKFLOW_TRIGGER)
            .order_by("-created_at", "-id")
            .values_list("status", flat=True)
            .first()
        )
        if only_failed and latest not in (
            Run.Status.FAILED,
            Run.Status.TIMED_OUT,
            Run.Status.CANCELLED,
        ):
            continue
        if workflow_run_create(task_id=task_id, stage_name=stage_name) is not None:
            created += 1
    return created


def workflow_answer(
    *, run: Run, task: Task, body: Any, next_stage: bool = True
) -> dict[str, Any]:
    """A plugin's POST /v2/annotate/{taskId} for its workflow job: check the
    answer like a Model answer, store it, end the job, and move the task to the
    next stage. Applied once: a duplicate or late post is refused (409)."""
    if run.trigger != WORKFLOW_TRIGGER or run.task_id != task.pk:
        raise WorkflowAnswerError(
            "This apikey is not for a workflow job of that task.", 403
        )
    item = run.items.select_related("asset", "run__plugin").first()
    if item is None or item.state != WorkItem.State.LEASED:
        state = item.get_state_display().lower() if item else "unknown"
        raise WorkflowAnswerError(
            f"This job is already {state}; the answer was not applied.", 409
        )
    assert item.asset is not None
    answer = body.get("answer") if isinstance(body, dict) else None
    if not isinstance(answer, dict):
        problem = "The plugin posted no answer (its callback failed or returned None)."
        _item_fail(item, WorkItem.Failure.INVALID, problem)
        raise WorkflowAnswerError(problem, 400)
    result = check_model_answer(run, item.asset, answer)
    if not result.ok:
        text = "The plugin's answer was rejected:\n" + "\n".join(
            f"• {p}" for p in result.problems
        )
        _item_fail(item, WorkItem.Failure.INVALID, text)
        raise WorkflowAnswerError(text, 400)
    with transaction.atomic():
        if not _finish_item(item, WorkItem.State.DONE):
            raise WorkflowAnswerError("This job was answered already.", 409)
        note = store_model_answer(run, item.asset, result.answer).note
        task.refresh_from_db()
        moved_to = _workflow_move_on(task, run) if next_stage else None
        where = f"; the task moved to “{moved_to}”" if moved_to else ""
        _hub_log(run, note + where, item=item)
        _run_settle(run.pk, dispatch=False)
        _dispatch_soon(run.plugin_id)
    return {"task": str(task.pk), "stage": moved_to or task.stage}


def _dispatch_soon(plugin_id: int) -> None:
    """Hand out the next job once the instance freed its workflow slot: the SDK
    frees it only after reading this very HTTP reply, so a job sent at once
    would find the slot still taken. In the ASGI process a timer does it (a
    Celery round trip would cost far more than the wait); elsewhere Celery."""
    from plugins_app.tasks import dispatch_plugin_work

    def later() -> None:
        grace = WORKFLOW_SLOT_GRACE_SECONDS
        if not protocol.run_later(grace, _freed_slots.request, plugin_id):
            dispatch_plugin_work.apply_async((plugin_id,), countdown=grace)

    transaction.on_commit(later)


def _workflow_bounced(item: WorkItem) -> bool:
    """1.4.x answers a workflow job {"error": true} at once, without running the
    callback (so without one log line), when all its `concurrency` slots are
    taken. That is no failure of the job: it goes back to the queue, its attempt
    not counted, a few times at most."""
    if item.run.trigger != WORKFLOW_TRIGGER or item.leased_at is None:
        return False
    quick = timezone.now() - item.leased_at < timedelta(seconds=2)
    logged = RunLogLine.objects.filter(item=item).exclude(level=HUB)
    bounces = RunLogLine.objects.filter(item=item, message__startswith=BUSY_NOTE)
    if not quick or logged.exists() or bounces.count() >= MAX_WORKFLOW_BOUNCES:
        return False
    with transaction.atomic():
        if not _requeue(item, timezone.now()):
            return False
        WorkItem.objects.filter(pk=item.pk).update(attempts=F("attempts") - 1)
        _hub_log(item.run, BUSY_NOTE + " the job goes back to the queue.", item=item)
        _dispatch_soon(item.run.plugin_id)
    return True


def _workflow_move_on(task: Task, run: Run) -> str | None:
    current = workflow.stage_named(task.project.workflow, task.stage)
    if current is None or current.get("type") != workflow.PLUGIN:
        return None  # moved by hand meanwhile: the answer is kept, the task stays
    following = workflow.next_stage(task.project.workflow, task.stage)
    if following is None:
        return None
    lifecycle.task_move(
        task,
        to_stage=following["name"],
        actor_label=f"plugin {run.plugin.name}",
        # The answer it leaves the stage with, for the export's stageHistory.
        data={"run": run.pk, "answer": task.answer},
    )
    return following["name"]
