"""Running one event through a hosted handler (in a Celery worker): the item
was leased by hosted.dispatch.dispatch_hosted; this starts the sandbox, serves
the handler's client calls through client_api, streams its log lines to the
run page and settles the item with a clear reason.

A sandbox that cannot start (fork or bwrap failing: EAGAIN, no namespaces)
never ran the plugin's code, so it is neither the plugin's failure nor a
pass: the worker tries again, HUB_HOSTED_START_ATTEMPTS times in all with a
growing pause, on the same lease, then fails the run saying so."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from django.conf import settings

from plugins_app.hosted import client_api, sandbox
from plugins_app.hosted.dispatch import (
    hosted_item_finish,
    hosted_item_started,
    item_is_open,
)
from plugins_app.hosted.labels import handler_label
from plugins_app.hosted.models import HostedCode
from plugins_app.hosted.session import Outcome, Session
from plugins_app.runs.logs import MAX_LOG_MESSAGE, PluginLogRecord, logs_ingest_hosted
from plugins_app.runs.models import WorkItem
from plugins_app.workspace import events
from plugins_app.workspace.models import TaskEvent

EVENT_METHODS = {
    events.LABEL_SUBMITTED: "on_submit",
    events.LABEL_REVIEWED: "on_review",
    events.TASK_SENT_BACK: "on_send_back_to_queue",
}
WORKER = f"{socket.gethostname()}:{os.getpid()}"
# The pause before the 2nd start attempt; it doubles for each further one, up to
# the cap, which the item's lease (the plugin's timeout + 10 s, restamped at each
# start) always covers.
START_RETRY_SECONDS = 1.0
START_RETRY_MAX_SECONDS = 8.0


_state = threading.local()


def busy() -> bool:
    """This thread is running a handler (a settle inside it must not start
    the next one inline: the chain would nest)."""
    return getattr(_state, "busy", False)


def run_item(item_id: int, start_attempt: int = 1) -> str:
    _state.busy = True
    try:
        result = _run_item(item_id, start_attempt)
    finally:
        _state.busy = False
    if result == "unstarted":
        # Through the broker (eager in tests), after this handler's state is
        # reset: any worker may take the next attempt.
        from plugins_app.hosted.tasks import run_hosted_item

        run_hosted_item.apply_async(
            (item_id,),
            {"start_attempt": start_attempt + 1},
            countdown=_pause(start_attempt),
        )
    return result


def _run_item(item_id: int, start_attempt: int) -> str:
    item = hosted_item_started(item_id, worker=WORKER)
    if item is None:
        return "not leased"
    run, plugin = item.run, item.run.plugin
    code = HostedCode.objects.filter(plugin=plugin).first()
    task = run.task or (item.asset.task if item.asset else None)
    if code is None or code.status != HostedCode.Status.ACTIVE or not code.code_path:
        return _fail(item, "The plugin's code is not built (see the plugin's page).")
    if task is None:
        return _fail(item, "This run is about no task, so no handler can be called.")
    event = run.event or (
        TaskEvent.objects.filter(task=task, name=run.trigger).last()
        if run.trigger
        else None
    )
    method = EVENT_METHODS.get(run.trigger, "on_event")
    job = {
        "method": method,
        "event": run.trigger,
        "label": handler_label(task, event=event),
        "asset_id": str(task.asset_id),
        "project_id": str(run.project_id),
    }
    scope = client_api.Scope(run=run, task=task, plugin=plugin)
    session = Session(
        sandbox.Spec(
            code_dir=Path(code.code_path),
            env_dir=Path(code.env_path) if code.env_path else None,
            limits=sandbox.Limits(
                memory_mb=code.memory_limit_mb,
                cpu_seconds=plugin.timeout_seconds + 1,
            ),
            plugin_id=plugin.pk,
        ),
        wall_seconds=plugin.timeout_seconds,
        on_logs=lambda lines: _store_logs(item, lines),
        on_call=lambda m, p: client_api.call(scope, m, p),
        still_wanted=lambda: item_is_open(item.pk),
    )
    try:
        outcome = session.run("run", job)
    except (sandbox.SandboxUnavailable, OSError) as exc:
        # bwrap missing, the code's folder gone, fork failing (EAGAIN).
        outcome = Outcome("unstarted", f"the sandbox could not start: {exc}")
    if outcome.kind == "unstarted":
        return _start_failed(item, outcome.message, start_attempt)
    return _settle(item, outcome, code=code, method=method)


def _start_failed(item: WorkItem, why: str, attempt: int) -> str:
    """Returns "unstarted" when run_item is to try again, else fails the item
    (never settles it as done: the plugin's code did not run)."""
    attempts = settings.HUB_HOSTED_START_ATTEMPTS
    if attempt >= attempts:
        return _fail(
            item,
            f"The handler never ran: {why} (worker {WORKER}, {attempt} "
            f"attempt(s)). Retry the run once the worker is healthy.",
        )
    pause = _pause(attempt)
    _store_logs(
        item,
        [
            (
                "WARNING",
                f"The handler never ran: {why} (attempt {attempt} of {attempts}); "
                f"trying again in {pause:g} s.",
            )
        ],
    )
    return "unstarted"


def _pause(attempt: int) -> float:
    return min(START_RETRY_SECONDS * 2 ** (attempt - 1), START_RETRY_MAX_SECONDS)


def _settle(item: WorkItem, outcome: Outcome, *, code: HostedCode, method: str) -> str:
    plugin = item.run.plugin
    took = f"{outcome.seconds * 1000:.0f} ms, {outcome.calls} call(s) to the hub"
    if outcome.kind == "done":
        hosted_item_finish(
            item, note=f"{code.handler_name}.{method} returned ({took})."
        )
    elif outcome.kind == "timeout":
        hosted_item_finish(
            item,
            failure=WorkItem.Failure.TIMEOUT,
            error=f"The handler ran past the plugin's time limit of "
            f"{plugin.timeout_seconds} s and was killed "
            f"({outcome.calls} call(s) made).",
        )
    elif outcome.kind == "memory" or _looks_out_of_memory(item):
        hosted_item_finish(
            item,
            error=f"The handler went over the plugin's memory limit of "
            f"{code.memory_limit_mb} MB and was stopped.",
        )
    elif outcome.kind == "cancelled":
        pass  # run_cancel settled it already
    elif outcome.kind == "error":
        trace = outcome.detail.get("traceback", "")
        hosted_item_finish(
            item,
            error=f"{code.handler_name}.{method} raised {outcome.message}\n"
            f"{trace}".rstrip(),
        )
    else:
        hosted_item_finish(item, error=f"The handler failed: {outcome.message}.")
    return outcome.kind


def _looks_out_of_memory(item: WorkItem) -> bool:
    from plugins_app.runs.models import RunLogLine

    return RunLogLine.objects.filter(
        item=item, level="ERROR", message__contains="MemoryError"
    ).exists()


def _fail(item: WorkItem, error: str) -> str:
    hosted_item_finish(item, error=error)
    return "failed"


def _store_logs(item: WorkItem, lines: list[tuple[str, str]]) -> None:
    logs_ingest_hosted(
        [
            PluginLogRecord(
                session=item.session,
                level=level,
                message=message[:MAX_LOG_MESSAGE],
                extra={},
            )
            for level, message in lines
        ],
        item_id=item.pk,
    )
