"""Creating runs: a run request's checks, the run and its work items, then dispatch."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from plugins_app.plugins.kinds import Kind, checks, kind_for
from plugins_app.plugins.models import (
    Delivery,
    Plugin,
)
from plugins_app.plugins.versions import current_version, version_of
from plugins_app.runs import create_reads
from plugins_app.runs.models import (
    PRIORITY_BATCH,
    PRIORITY_INTERACTIVE,
    Run,
    WorkItem,
)
from plugins_app.runs.notify import dashboard_wake, notify_after_commit
from plugins_app.runs.run_insert import insert_run
from plugins_app.runs.wakeup import dispatch_created
from plugins_app.workspace import lifecycle, selection
from plugins_app.workspace.models import Asset, Batch, Project, TaskEvent

# A preview runs the plugin on a few assets; a person looks at each one.
PREVIEW_MAX_ASSETS = 10


class RunRequestError(Exception):
    """Bad input for a run; `errors` maps form field names to messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(m for ms in errors.values() for m in ms))
        self.errors = errors


@dataclass(frozen=True)
class RunRequest:
    plugin: Plugin
    project: Project
    user: User | None
    class_mapping: dict[str, str]  # model class -> ontology schemaId ("" = unmapped)
    config_json: str
    external_ids: list[str]
    batch_ids: list[int]
    # File Explorer and Markdown runs: what the dialog asked for (Run.inputs).
    inputs: dict[str, Any] = field(default_factory=dict)
    # Write over answers people submitted or reviewed (admins only; writes.py).
    replace_submitted: bool = False
    # Try a job again after a timeout (runs/ledger.py item_time_out; off: the
    # first timeout fails the job, explained). Kept in Run.inputs.
    retry_timeouts: bool = False
    # The asset table's saved filter (workspace/selection.py) instead of
    # external_ids / batch_ids; None: not given.
    selection: dict[str, Any] | None = None
    # Preview: run on the first `preview_limit` assets of the scope and keep
    # the answers in PreviewAnswer instead of writing them (runs/preview.py).
    dry_run: bool = False
    preview_limit: int = 3


def run_create(request: RunRequest, *, dispatch: bool = True) -> Run:
    """Validate a run request, write the run and its work items, then dispatch."""
    return run_create_items(request, dispatch=dispatch)[0]


def run_create_items(
    request: RunRequest, *, dispatch: bool = True
) -> tuple[Run, list[WorkItem]]:
    """run_create, and the work items as written (the API's 201 body is built
    from them instead of reading them back)."""
    errors: dict[str, list[str]] = {}
    mapping = _checked_mapping(request, errors)
    _checked_config(request.config_json, errors)
    assets, batches, chosen, live = _checked_scope(request, errors)
    inputs = checked_inputs(request.plugin, request.project, request.inputs, errors)
    if request.replace_submitted:
        _check_may_replace(request, errors)
    live_versions = None if errors else _check_reachable(request.plugin, live, errors)
    if errors:
        raise RunRequestError(errors)
    run = Run(
        organization_id=request.project.organization_id,
        project=request.project,
        plugin=request.plugin,
        created_by=request.user,
        class_mapping=mapping,
        config_json=request.config_json.strip() or "{}",
        batch_ids=[b.pk for b in batches],
        inputs=inputs | ({"retry_timeouts": True} if request.retry_timeouts else {}),
        replace_submitted=request.replace_submitted,
        selection=chosen,
        dry_run=request.dry_run,
    )
    lines = []
    if request.replace_submitted:
        lines.append(
            "Replace submitted answers is on: answers people submitted or "
            "reviewed will be replaced (each one can be undone from this page)."
        )
    who = request.user.get_username() if request.user else "the command line"
    lines.append(f"Run created by {who}; waiting for a plugin instance.")
    kind = kind_for(request.plugin.type)
    if kind.scope == "assets":
        # Someone running one asset from the dialog waits for it: go first.
        priority = PRIORITY_INTERACTIVE if len(assets) == 1 else PRIORITY_BATCH
        scope: list[Asset | None] = list(assets)
    else:
        if kind.scope == "batches":
            run.assets_total = assets_in_scope(run).count()
        priority, scope = PRIORITY_BATCH, [None]
    if live_versions is not None:
        run.plugin_version = version_of(request.plugin, live_versions)
    with transaction.atomic():
        items = run_write(
            run,
            scope,
            priority=priority,
            lines=lines,
            dispatch=dispatch,
            version_known=live_versions is not None,
        )
    return run, items


def run_write(
    run: Run,
    assets: Sequence[Asset | None],
    *,
    priority: int = PRIORITY_BATCH,
    lines: Sequence[str] = (),
    dispatch: bool = True,
    version_known: bool = False,
) -> list[WorkItem]:
    """The one way a run is written, whoever asks (the Run dialog and the API,
    task events, workflow stages): inside the caller's transaction, the unsaved
    `run`, one work item per asset (None: one item without an asset), its first
    log lines, then the dispatch. A socket plugin's free instances lease the new
    items in this same transaction (runs.dispatch.dispatch_created).
    `version_known`: run.plugin_version is already the current version (run
    creation read the live instances once for both checks), even if empty."""
    if not version_known:
        run.plugin_version = run.plugin_version or current_version(run.plugin)
    items = [
        WorkItem(
            run=run,
            plugin=run.plugin,
            asset=asset,
            session=new_session(),
            priority=priority,
        )
        for asset in assets
    ]
    # Raw, as save() and bulk_create would write them (runs/run_insert.py).
    insert_run(run, items, lines, timezone.now())
    notify_after_commit(run.pk)
    plugin_id = run.plugin_id
    # A new run is a figure of the plugin's dashboard (at most one wake-up a
    # second per plugin: notify.dashboard_wake).
    transaction.on_commit(lambda: dashboard_wake(plugin_id))
    if dispatch and items:
        dispatch_created(run.plugin, items)
    return items


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
    run = Run(
        organization_id=plugin.organization_id,
        project=task.project,
        plugin=plugin,
        created_by=event.actor,
        config_json=plugin.default_config.strip() or "{}",
        trigger=event.name,
        task=task,
        event=event,
    )
    who = event.actor.get_username() if event.actor else event.actor_label
    waits_for = (
        "a hosted worker" if plugin.delivery == Delivery.HOSTED else "a plugin instance"
    )
    line = (
        f"Triggered by {event.name} on {task.asset.external_id}"
        f"{f' ({who})' if who else ''}; waiting for {waits_for}."
    )
    try:
        with transaction.atomic():
            run_write(run, [task.asset], priority=PRIORITY_INTERACTIVE, lines=[line])
    except IntegrityError:
        return Run.objects.filter(plugin=plugin, event=event).first()
    return run


def _check_may_replace(request: RunRequest, errors: dict[str, list[str]]) -> None:
    """Replacing people's answers is an admin's explicit choice."""
    if not kind_for(request.plugin.type).writes_answers:
        errors["replace_submitted"] = [
            "Only Model and Batch Model runs write answers; leave it off."
        ]
    elif request.user is None or not lifecycle.is_org_admin(
        request.user, request.project.organization_id
    ):
        errors["replace_submitted"] = [
            "Only admins of this organization can replace submitted answers."
        ]


def _check_reachable(
    plugin: Plugin, live: list[str] | None, errors: dict[str, list[str]]
) -> list[str] | None:
    """A socket plugin needs a connected instance now. A REST connector is
    called from Celery: a dead URL fails the run visibly, attempt by attempt
    (it may scale to zero and wake on the call). `live`: the versions its live
    instances declare, as the scope check read them with the activation
    (None: not read). Returns them (None: not read), which the run records:
    one read for both."""
    if plugin.delivery == Delivery.REST:
        if not plugin.connector_url:
            errors.setdefault("__all__", []).append(
                f"“{plugin.name}” is delivered by REST but has no connector URL."
            )
        return None
    versions = live if live is not None else create_reads.live_versions(plugin.pk)
    if not versions:
        errors.setdefault("__all__", []).append(
            f"No instance of “{plugin.name}” is connected. Start the plugin "
            "script (it shows as live on the plugins page) and try again."
        )
        return None
    return versions


def _checked_mapping(
    request: RunRequest, errors: dict[str, list[str]]
) -> list[dict[str, str]] | None:
    """The one mapping check (plugins/kinds/checks.py), as presets and workflow
    stages run it too."""
    problems = checks.mapping_problems(
        request.plugin, request.project, request.class_mapping
    )
    if problems:
        errors.setdefault("mapping", []).extend(problems)
    return checks.mapping_pairs(request.class_mapping)


def _checked_config(config_json: str, errors: dict[str, list[str]]) -> None:
    if problems := checks.config_problems(config_json):
        errors.setdefault("config_json", []).extend(problems)


class _Scope(NamedTuple):
    assets: list[Asset]
    batches: list[Batch]
    selection: dict[str, Any] | None
    # The versions the plugin's live instances declare, read with the
    # activation (None: not read: a REST plugin, or the kind is not runnable).
    live: list[str] | None = None


def _checked_scope(request: RunRequest, errors: dict[str, list[str]]) -> _Scope:
    """The run's assets (Model), batches, and saved selection as stored on the
    run (Run.selection). A preview keeps only its first few assets."""
    project, plugin = request.project, request.plugin
    kind = kind_for(plugin.type)
    if not kind.runnable:
        errors.setdefault("__all__", []).append(
            f"{kind.label} plugins are not started by hand: a plugin of this "
            f"kind {kind.not_runnable_reason}."
        )
        return _Scope([], [], None)
    activated, live = create_reads.activation(
        plugin.pk, project.pk, live=plugin.delivery != Delivery.REST
    )
    if not activated:
        errors.setdefault("__all__", []).append(
            f"“{plugin.name}” is not activated on this project."
        )
    return _Scope(*_checked_assets(request, kind, errors), live=live)


def _checked_assets(
    request: RunRequest, kind: Kind, errors: dict[str, list[str]]
) -> tuple[list[Asset], list[Batch], dict[str, Any] | None]:
    """_checked_scope past the kind and activation checks."""
    project = request.project
    if request.dry_run and not kind.writes_answers:
        errors.setdefault("__all__", []).append(
            "Preview is for Model and Batch Model plugins: other kinds write no "
            "answers to preview."
        )
        return [], [], None
    if request.dry_run and not 1 <= request.preview_limit <= PREVIEW_MAX_ASSETS:
        errors.setdefault("preview_limit", []).append(
            f"Preview runs on 1 to {PREVIEW_MAX_ASSETS} assets."
        )
        return [], [], None
    # No batches named (most runs): no query to build for an empty IN.
    batches = (
        list(project.batches.filter(pk__in=request.batch_ids))
        if request.batch_ids
        else []
    )
    missing_batches = set(request.batch_ids) - {b.pk for b in batches}
    if missing_batches:
        errors.setdefault("batches", []).append(
            "Unknown batches: " + ", ".join(str(b) for b in sorted(missing_batches))
        )
    wanted = list(dict.fromkeys(e.strip() for e in request.external_ids if e.strip()))
    if request.selection is not None:
        return _selected_scope(request, wanted, batches, errors)
    if kind.scope != "assets":
        if request.dry_run:
            # A Batch Model preview sees only its first few assets: as ids, so
            # get_assets and import_labels of the run know them.
            scope = Asset.objects.filter(project=project).order_by("external_id")
            if batches:
                scope = scope.filter(batches__in=batches).distinct()
            ids = list(scope.values_list("pk", flat=True)[: request.preview_limit])
            return [], batches, selection.Selection(ids=tuple(ids)).as_json()
        return [], batches, None
    if not wanted:
        errors.setdefault("external_ids", []).append(
            "Give at least one asset external ID."
        )
        return [], batches, None
    assets = {a.external_id: a for a in create_reads.assets(project, wanted)}
    unknown = [e for e in wanted if e not in assets]
    if unknown:
        errors.setdefault("external_ids", []).append(
            "Not assets of this project: " + ", ".join(unknown[:20])
        )
    found = [assets[e] for e in wanted if e in assets]
    return found[: request.preview_limit] if request.dry_run else found, batches, None


def _selected_scope(
    request: RunRequest,
    external_ids: list[str],
    batches: list[Batch],
    errors: dict[str, list[str]],
) -> tuple[list[Asset], list[Batch], dict[str, Any] | None]:
    """A run on the asset table's saved filter: the filter is stored on the run
    (not the ids it matches); a preview stores the ids of its few assets."""
    kind = kind_for(request.plugin.type)
    if not kind.writes_answers:
        errors.setdefault("selection", []).append(
            "A selection scopes Model and Batch Model runs only."
        )
        return [], batches, None
    if external_ids or batches:
        errors.setdefault("selection", []).append(
            "Give either a selection or external IDs / batches, not both."
        )
        return [], batches, None
    try:
        chosen = selection.parse(request.selection, request.project)
    except selection.SelectionError as exc:
        errors.setdefault("selection", []).append(f"Bad selection: {exc}")
        return [], batches, None
    matched = selection.assets(request.project, chosen)
    if request.dry_run:
        ids = list(matched.values_list("pk", flat=True)[: request.preview_limit])
        chosen = chosen.with_ids(ids)
        matched = matched.filter(pk__in=ids)
    # Each with its task, which its job names: the lease then reads none
    # (create_reads.assets does the same for named assets).
    found = list(matched.select_related("task")) if kind.scope == "assets" else []
    if not (found or matched.exists()):
        errors.setdefault("selection", []).append(
            "The selection matches no asset of this project."
        )
    return found, batches, chosen.as_json()


def checked_inputs(
    plugin: Plugin,
    project: Project,
    inputs: dict[str, Any],
    errors: dict[str, list[str]],
) -> dict[str, Any]:
    """What the plugin's kind needs besides scope, mapping and config (a File
    Explorer's storage, a Markdown CSV, an export's stages), checked by the
    kind (plugins/kinds/)."""
    return kind_for(plugin.type).check_inputs(plugin, project, inputs, errors)


def assets_in_scope(run: Run) -> QuerySet[Asset]:
    """The assets a run is about: its saved selection (a preview's few ids),
    then its batches; the whole project when it has neither."""
    assets = Asset.objects.filter(project=run.project)
    if run.selection is not None:
        try:
            chosen = selection.parse(run.selection, run.project)
        except selection.SelectionError:
            # Checked at creation; a batch deleted since matches nothing.
            return Asset.objects.none()
        assets = selection.assets(run.project, chosen)
    if run.batch_ids:
        assets = assets.filter(batches__in=run.batch_ids).distinct()
    return assets


def new_session() -> str:
    return uuid.uuid4().hex
