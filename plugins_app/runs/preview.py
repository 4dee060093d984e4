"""Dry runs (the Run dialog's Preview): the plugin runs on a few assets and its
answers are checked exactly as a real run's, then kept in PreviewAnswer for the
dialog to draw, never written to a task.

A dry run is an ordinary run of the ledger (durable, listed, cancellable); what
differs is where its answers go. A Model answer arrives through
`responses.item_respond`, which hands a dry run's to `apply_response` here; a
Batch Model plugin's `import_labels` calls are held by `hold_import`. Neither
touches workspace/writes.py, so a dry run has no AnswerWrite row and nothing to
undo, and no task's answer or history changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from plugins_app.answers import unwrap_import_record, validate_answer
from plugins_app.inputs import answer_limits
from plugins_app.plugins.kinds import Outcome, kind_for
from plugins_app.plugins.kinds.model import foreign_external_id
from plugins_app.runs.creation import assets_in_scope
from plugins_app.runs.models import PreviewAnswer, Run, WorkItem
from plugins_app.runs.notify import hub_log
from plugins_app.runs.selectors import DrawnAsset, answer_drawing
from plugins_app.workspace import writes
from plugins_app.workspace.models import Asset

DEFAULT_ASSETS = 3


def apply_response(item: WorkItem, response: Any) -> Outcome:
    """A dry run's Model answer: checked as `_model_apply` checks it, kept with
    its problems; the item is done either way (the problems are the report)."""
    asset = item.asset
    assert asset is not None
    result = validate_answer(
        response,
        ontology=item.run.project.ontology,
        mapping=item.run.class_mapping,
        image_size=(asset.width, asset.height),
        **answer_limits(),
    )
    problems = list(result.problems)
    named = foreign_external_id(asset, response)
    if named is not None:
        problems.insert(
            0,
            f"the answer is for externalId {named[:300]!r}, not {asset.external_id!r}:"
            " a real run would store nothing",
        )
    _keep(item.run, asset, writes.VIA_MODEL, result.answer, problems)
    return Outcome(note=_note(asset, result.answer, problems))


@dataclass
class HeldImport:
    held: int
    outside: list[str]  # external IDs that are not among the preview's assets
    errors: list[dict[str, Any]]


def hold_import(run: Run, records: list[Any]) -> HeldImport:
    """A dry run's `import_labels` call: each record for one of the preview's
    assets is checked and kept; nothing is written. Records naming an asset
    the preview is not about are counted, not kept (a real run over the same
    selection would have its own say about them)."""
    in_scope = {a.external_id: a for a in assets_in_scope(run)}
    report = HeldImport(held=0, outside=[], errors=[])
    for index, record in enumerate(records):
        external_id, raw = unwrap_import_record(record)
        asset = in_scope.get(external_id) if external_id else None
        if asset is None:
            if external_id:
                report.outside.append(external_id)
            else:
                report.errors.append(
                    {"index": index, "problems": ["the record has no externalId"]}
                )
            continue
        result = validate_answer(
            raw,
            ontology=run.project.ontology,
            mapping=run.class_mapping,
            image_size=(asset.width, asset.height),
            **answer_limits(),
        )
        _keep(run, asset, writes.VIA_IMPORT, result.answer, result.problems)
        hub_log(run, _note(asset, result.answer, result.problems))
        report.held += 1
    return report


def _keep(
    run: Run,
    asset: Asset,
    via: str,
    answer: dict[str, Any],
    problems: list[str],
) -> None:
    PreviewAnswer.objects.update_or_create(
        run=run,
        asset=asset,
        defaults={"via": via, "answer": answer, "problems": problems},
    )


def _note(asset: Asset, answer: dict[str, Any], problems: list[str]) -> str:
    objects = len(answer.get("tools", [])) + len(answer.get("classifications", []))
    found = f", {len(problems)} problem(s)" if problems else ""
    return (
        f"Preview of {asset.external_id}: {objects} object(s){found}; "
        "kept for the dialog, nothing was written."
    )


@dataclass(frozen=True)
class PreviewRow:
    """One asset of a preview: what the plugin answered next to what the task
    holds now, and the validation report."""

    asset: Asset
    proposed: DrawnAsset | None  # None: no answer (yet)
    current: DrawnAsset
    problems: list[str]
    waiting: bool
    error: str  # why the plugin gave no answer for it


def preview_assets(run: Run) -> QuerySet[Asset]:
    if kind_for(run.plugin.type).scope == "assets":  # one item per asset
        return Asset.objects.filter(pk__in=run.items.values("asset"))
    return assets_in_scope(run)


def preview_rows(run: Run) -> list[PreviewRow]:
    ontology = run.project.ontology
    kept = {p.asset_id: p for p in run.previews.all()}
    items = {i.asset_id: i for i in run.items.all()}
    rows = []
    assets = preview_assets(run).select_related("task").order_by("external_id")
    for asset in assets[: DEFAULT_ASSETS * 4]:
        held = kept.get(asset.pk)
        item = items.get(asset.pk) or next(iter(items.values()), None)
        failed = item is not None and item.state in (
            WorkItem.State.FAILED,
            WorkItem.State.CANCELLED,
        )
        rows.append(
            PreviewRow(
                asset=asset,
                proposed=DrawnAsset(asset, *answer_drawing(held.answer, ontology))
                if held
                else None,
                current=DrawnAsset(asset, *answer_drawing(asset.task.answer, ontology)),
                problems=list(held.problems) if held else [],
                waiting=held is None and not run.is_finished and not failed,
                error=(item.error if failed and item is not None else "")
                or ("" if held or not run.is_finished else _no_answer(run)),
            )
        )
    return rows


def _no_answer(run: Run) -> str:
    return run.error or "The plugin sent no answer for this asset."
