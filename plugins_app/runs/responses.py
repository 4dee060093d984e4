"""A plugin's answer to a job: checked, applied by its plugin kind, and the item
finished by it."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from plugins_app.plugins.kinds import (
    WORKFLOW_TRIGGER,
    kind_of,
)
from plugins_app.plugins.kinds.model import (
    check_answer,
    foreign_external_id_of,
    foreign_problem,
    store_answer,
)
from plugins_app.plugins.models import (
    PluginInstance,
)
from plugins_app.plugins.versions import served_version
from plugins_app.runs import preview
from plugins_app.runs.answer_row import AnswerRow, claim_answer
from plugins_app.runs.ledger import LogLine, item_fail, item_finished, run_settle
from plugins_app.runs.models import (
    Run,
    RunLogLine,
    WorkItem,
)
from plugins_app.runs.notify import HUB, hub_log
from plugins_app.runs.prepared import PreparedQuery
from plugins_app.runs.workflow import workflow_bounced

log = logging.getLogger(__name__)


# The item a `response` names, with what applying it reads: one prepared
# SELECT (runs/prepared.py) instead of the ORM building it anew per answer.
_by_session: PreparedQuery[WorkItem] = PreparedQuery(
    lambda session: WorkItem.objects.select_related(
        "run__plugin", "run__project", "asset", "instance"
    ).filter(session=session)
)


def item_respond(*, session: Any, payload: dict[str, Any], channel_name: str) -> str:
    """Apply a plugin's `response`. Returns a word for the consumer's log.

    The common case, a Model answer stored, is one transaction: the item
    claimed with what applying it reads (leased to this socket → done, one
    UPDATE … RETURNING: runs/answer_row.py), the answer checked and written
    through workspace/prelabel.py (task, history, ledger), the run settled
    (closed when it was its last item)."""
    if isinstance(session, str) and not payload.get("error"):
        outcome = _model_answer(session, payload.get("response"), channel_name)
        if outcome is not None:
            return outcome
    # Anything else (stale, an error, a workflow job, a preview, other kinds)
    # the general way, from the item read through the ORM.
    return _respond_with_item(session, payload, channel_name)


def _model_answer(session: str, response: Any, channel_name: str) -> str | None:
    """A Model answer to a job leased to this socket: claimed and read in one
    statement, checked against the ontology, then the pre-label and the
    settle, all in one transaction. None (nothing changed) when the session
    is no such job."""
    with transaction.atomic():
        # Claimed first, in the transaction that writes the answer: a sweep
        # that requeues the job meanwhile finds it done (or, first, makes this
        # claim fail); without it a pre-label could be written, the job
        # requeued, and written again.
        row = claim_answer(session, channel_name, timezone.now())
        if row is None:
            return None
        if row.timeouts:  # it answers again: back in line with the others
            PluginInstance.objects.filter(pk=row.instance_id).update(timeouts=0)
        # Checked in the transaction, after the claim that read what it is
        # checked against: a refused answer (rare) ends the item failed with
        # one more UPDATE, nothing written.
        answer, problems = _checked(row, response)
        if problems:
            failed = _refused(problems)
            WorkItem.objects.transition(
                row.item_id,
                WorkItem.State.DONE,
                WorkItem.State.FAILED,
                failure=WorkItem.Failure.INVALID,
                error=failed,
            )
            _settle(row, [(row.item_id, "ERROR", failed)])
            return "invalid"
        outcome = store_answer(
            row.writer(),
            row.asset_id,
            row.external_id,
            answer,
            workflow=False,
            version=row.version,
            load_run=lambda: Run.objects.select_related("plugin", "project").get(
                pk=row.run_id
            ),
        )
        if outcome.skipped:
            WorkItem.objects.transition(
                row.item_id,
                WorkItem.State.DONE,
                WorkItem.State.SKIPPED,
                failure="",
                error=outcome.skipped,
            )
            _settle(row, [(row.item_id, HUB, f"Skipped: {outcome.skipped}.")])
            return "skipped"
        _settle(row, [(row.item_id, HUB, outcome.note or "Job done.")])
    return "done"


def _checked(row: AnswerRow, response: Any) -> tuple[dict[str, Any], list[str]]:
    """The answer to store and why it is refused, if it is: the ontology's,
    the class mapping's and the image's checks, and an answer naming another
    asset."""
    named = foreign_external_id_of(row.asset_id, row.external_id, response)
    if named is not None:
        return {}, [foreign_problem(named, row.asset_id, row.external_id)]
    result = check_answer(
        response,
        ontology=row.ontology,
        mapping=row.mapping,
        image_size=row.image_size,
    )
    return result.answer, result.problems


def _refused(problems: list[str]) -> str:
    return "The plugin's answer was rejected:\n" + "\n".join(f"• {p}" for p in problems)


def _settle(row: AnswerRow, lines: list[LogLine]) -> None:
    run_settle(row.run_id, plugin_id=row.plugin_id, lines=lines)


def _respond_with_item(session: str, payload: dict[str, Any], channel_name: str) -> str:
    item = _by_session.first(session) if isinstance(session, str) else None
    if item is None:
        log.warning("response for unknown session %r ignored", session)
        return "unknown-session"
    if item.state != WorkItem.State.LEASED or (
        item.instance is None or item.instance.channel_name != channel_name
    ):
        return _ignore_stale(item, channel_name)
    if item.instance.timeouts:  # it answers again: back in line with the others
        PluginInstance.objects.filter(pk=item.instance.pk).update(timeouts=0)
    if payload.get("error") and workflow_bounced(item):
        return "busy"
    if payload.get("error"):
        item_fail(item, WorkItem.Failure.ERROR, _plugin_error_text(item))
        return "error"
    if item.run.trigger == WORKFLOW_TRIGGER:
        # Success of a workflow job is its POST /v2/annotate, never a response.
        hub_log(item.run, "Ignored a socket response to a workflow job.", item=item)
        return "ignored"
    with transaction.atomic():
        # Claimed first, in the transaction that writes the answer: a sweep
        # that requeues the job meanwhile finds it done (or, first, makes this
        # claim fail); without it a pre-label could be written, the job
        # requeued, and written again.
        item.plugin_version = served_version(item.run.plugin, item.instance)
        if not WorkItem.objects.transition(
            item.pk,
            WorkItem.State.LEASED,
            WorkItem.State.DONE,
            where={"instance_id": item.instance_id},
            finished_at=timezone.now(),
            plugin_version=item.plugin_version,
        ):
            item.refresh_from_db(fields=["state"])
            return _ignore_stale(item, channel_name)
        # A dry run's Model answer is checked and kept for the Preview, never
        # written (a Batch Model's answer is a message; its imports are held).
        apply = (
            preview.apply_response
            if item.run.dry_run and item.asset_id is not None
            else kind_of(item.run).apply_response
        )
        outcome = apply(item, payload.get("response"))
        if outcome.problems:
            text = _refused(outcome.problems)
            _answered(
                item,
                WorkItem.State.FAILED,
                text,
                error=text,
                failure=WorkItem.Failure.INVALID,
            )
            return "invalid"
        if outcome.skipped:
            line = f"Skipped: {outcome.skipped}."
            _answered(item, WorkItem.State.SKIPPED, line, error=outcome.skipped)
            return "skipped"
        item_finished(item, outcome.note or "Job done.")
    return "done"


def _answered(
    item: WorkItem, state: str, line: str, *, error: str, failure: str = ""
) -> None:
    """The claimed item ends otherwise than done: the answer was refused, or
    kept off a task holding a person's work."""
    WorkItem.objects.transition(
        item.pk, WorkItem.State.DONE, state, failure=failure, error=error
    )
    item_finished(item, line, level="ERROR" if failure else HUB)


def _ignore_stale(item: WorkItem, channel_name: str) -> str:
    log.info(
        "stale response for item %s (%s) from %s ignored",
        item.pk,
        item.state,
        channel_name,
    )
    hub_log(
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
        item_fail(
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
