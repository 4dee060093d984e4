"""Running one event through a hosted handler (in a Celery worker): the item
was leased by runs.services._dispatch_hosted; this starts the sandbox, serves
the handler's client calls through client_api, streams its log lines to the
run page and settles the item with a clear reason."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from plugins_app.hosted import client_api, sandbox
from plugins_app.hosted.labels import handler_label
from plugins_app.hosted.models import HostedCode
from plugins_app.hosted.session import Outcome, Session
from plugins_app.runs import services as runs
from plugins_app.runs.models import WorkItem
from plugins_app.workspace import events
from plugins_app.workspace.models import TaskEvent

EVENT_METHODS = {
    events.LABEL_SUBMITTED: "on_submit",
    events.LABEL_REVIEWED: "on_review",
    events.TASK_SENT_BACK: "on_send_back_to_queue",
}
WORKER = f"{socket.gethostname()}:{os.getpid()}"


_state = threading.local()


def busy() -> bool:
    """This thread is running a handler (a settle inside it must not start
    the next one inline: the chain would nest)."""
    return getattr(_state, "busy", False)


def run_item(item_id: int) -> str:
    _state.busy = True
    try:
        return _run_item(item_id)
    finally:
        _state.busy = False


def _run_item(item_id: int) -> str:
    item = runs.hosted_item_started(item_id, worker=WORKER)
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
        ),
        wall_seconds=plugin.timeout_seconds,
        on_logs=lambda lines: _store_logs(item, lines),
        on_call=lambda m, p: client_api.call(scope, m, p),
        still_wanted=lambda: runs.item_is_open(item.pk),
    )
    try:
        outcome = session.run("run", job)
    except (sandbox.SandboxUnavailable, OSError) as exc:
        # bwrap missing, the code's folder gone, no user namespaces: say so.
        return _fail(item, f"The sandbox cannot start on this worker: {exc}")
    return _settle(item, outcome, code=code, method=method)


def _settle(item: WorkItem, outcome: Outcome, *, code: HostedCode, method: str) -> str:
    plugin = item.run.plugin
    took = f"{outcome.seconds * 1000:.0f} ms, {outcome.calls} call(s) to the hub"
    if outcome.kind == "done":
        runs.hosted_item_finish(
            item, note=f"{code.handler_name}.{method} returned ({took})."
        )
    elif outcome.kind == "timeout":
        runs.hosted_item_finish(
            item,
            failure=WorkItem.Failure.TIMEOUT,
            error=f"The handler ran past the plugin's time limit of "
            f"{plugin.timeout_seconds} s and was killed "
            f"({outcome.calls} call(s) made).",
        )
    elif outcome.kind == "memory" or _looks_out_of_memory(item):
        runs.hosted_item_finish(
            item,
            error=f"The handler went over the plugin's memory limit of "
            f"{code.memory_limit_mb} MB and was stopped.",
        )
    elif outcome.kind == "cancelled":
        pass  # run_cancel settled it already
    elif outcome.kind == "error":
        trace = outcome.detail.get("traceback", "")
        runs.hosted_item_finish(
            item,
            error=f"{code.handler_name}.{method} raised {outcome.message}\n"
            f"{trace}".rstrip(),
        )
    else:
        runs.hosted_item_finish(item, error=f"The handler failed: {outcome.message}.")
    return outcome.kind


def _looks_out_of_memory(item: WorkItem) -> bool:
    from plugins_app.runs.models import RunLogLine

    return RunLogLine.objects.filter(
        item=item, level="ERROR", message__contains="MemoryError"
    ).exists()


def _fail(item: WorkItem, error: str) -> str:
    runs.hosted_item_finish(item, error=error)
    return "failed"


def _store_logs(item: WorkItem, lines: list[tuple[str, str]]) -> None:
    runs.logs_ingest_hosted(
        [
            runs.PluginLogRecord(
                session=item.session,
                level=level,
                message=message[: runs.MAX_LOG_MESSAGE],
                extra={},
            )
            for level, message in lines
        ],
        item_id=item.pk,
    )
