"""Hosted plugins end to end with a real Celery worker (a separate process, as
in production): the upload is built by the worker, a submitted task's event
run is dispatched to it, the handler runs in its sandbox there and acts through
the client; a runaway handler is killed at its limits while the hub keeps
serving and the worker takes the next event."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plugins_app.hosted.invoices import INVOICE_ONTOLOGY
from plugins_app.hosted.models import HostedCode
from plugins_app.hosted.services import code_upload
from plugins_app.plugins.models import PluginType
from plugins_app.plugins.triggers import plugin_set_triggers
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.models import Run
from plugins_app.workspace import events
from plugins_app.workspace.models import Task
from tests.hosted_support import QA_EXAMPLE, event_run, log_text, submit
from tests.hub import LiveHub, PluginProcess, start_celery_worker, wait_for
from tests.test_hosted import ALLOCATE_WITHOUT_BOUND, LOOP_FOREVER

SECRET_KEY = "worker-secret-key-4242"


@pytest.fixture
def celery_worker(live_hub: LiveHub, tmp_path: Path) -> Iterator[PluginProcess]:
    worker = start_celery_worker(
        tmp_path,
        beat=True,
        env={"HUB_SWEEP_SECONDS": "0.5", "DJANGO_SECRET_KEY": SECRET_KEY},
    )
    yield worker
    worker.stop()


@pytest.fixture
def invoices(workspace: Any) -> Any:
    workspace.project.ontology = INVOICE_ONTOLOGY
    workspace.project.save()
    return workspace


def built(
    plugin: Any, source: bytes, worker: PluginProcess, memory_mb: int = 256
) -> None:
    code = code_upload(
        plugin, filename="main.py", data=source, memory_limit_mb=memory_mb, user=None
    )
    wait_for(
        lambda: HostedCode.objects.get(pk=code.pk).status != HostedCode.Status.BUILDING,
        timeout=60,
        what="the worker to build the code",
    )
    code.refresh_from_db()
    assert code.status == HostedCode.Status.ACTIVE, (code.build_log, worker.log())
    assert "tasks.build_hosted_code[" in worker.log()


def finished(run: Run, worker: PluginProcess, timeout: float = 60) -> Run:
    wait_for(
        lambda: Run.objects.get(pk=run.pk).is_finished,
        timeout=timeout,
        what=f"run {run.pk} to finish\n{worker.log()[-3000:]}",
    )
    run.refresh_from_db()
    return run


def test_submitting_triggers_the_hosted_qa_plugin_on_a_real_worker(
    invoices: Any, make_plugin: Any, celery_worker: PluginProcess
) -> None:
    plugin = make_plugin(type=PluginType.EVENT, max_attempts=1).plugin
    built(plugin, QA_EXAMPLE.read_bytes(), celery_worker)
    plugin_set_triggers(
        plugin, projects=[invoices.project], event_names=[events.LABEL_SUBMITTED]
    )
    # Real submits: the trigger listener hands each event to the worker, which
    # creates the run; its item is leased and run in the sandbox on the worker.
    bad = submit(invoices, "astronaut", iban="DE89370400440532013000", currency="EUR")
    good = submit(invoices, "coins", iban="FR7630006000011234567890189", currency="USD")
    wait_for(
        lambda: Run.objects.filter(plugin=plugin).count() == 2,
        timeout=30,
        what=f"the triggered runs\n{celery_worker.log()[-3000:]}",
    )
    bad_run = Run.objects.get(plugin=plugin, task=bad)
    good_run = Run.objects.get(plugin=plugin, task=good)
    bad_run = finished(bad_run, celery_worker)
    good_run = finished(good_run, celery_worker)
    assert bad_run.status == good_run.status == Run.Status.SUCCEEDED, log_text(bad_run)
    assert bad_run.trigger == events.LABEL_SUBMITTED and bad_run.event is not None
    # Created by the worker's create_event_run, which ran the handler itself.
    assert "tasks.create_event_run[" in celery_worker.log()
    worker_pid = str(celery_worker.proc.pid)
    assert f"Handler started on worker {socket.gethostname()}:{worker_pid}" in (
        log_text(bad_run)
    )
    bad.refresh_from_db()
    good.refresh_from_db()
    assert list(bad.issues.values_list("content", flat=True)) == [
        "IBAN number should start by FR"
    ]
    assert bad.stage == "Label" and bad.status == Task.Status.TODO
    assert bad.metadata == {"accuracy": 50.0}
    assert good.stage == "Review" and good.metadata == {"accuracy": 100.0}
    assert not good.issues.exists()
    assert "[INFO] Label" in log_text(bad_run)


def test_runaway_handlers_are_stopped_while_the_hub_keeps_serving(
    invoices: Any, make_plugin: Any, live_hub: LiveHub, celery_worker: PluginProcess
) -> None:
    looper = make_plugin(
        type=PluginType.EVENT, timeout=3, max_attempts=1, name="L"
    ).plugin
    hog = make_plugin(
        type=PluginType.EVENT, timeout=30, max_attempts=1, name="H"
    ).plugin
    qa = make_plugin(type=PluginType.EVENT, max_attempts=1, name="QA").plugin
    built(looper, LOOP_FOREVER.encode(), celery_worker)
    built(hog, ALLOCATE_WITHOUT_BOUND.encode(), celery_worker, memory_mb=128)
    built(qa, QA_EXAMPLE.read_bytes(), celery_worker)
    task = submit(invoices, "astronaut", iban="FR76", currency="EUR")
    loop_run = event_run(looper, task, events.LABEL_SUBMITTED)
    dispatch_pending(looper.pk)
    wait_for(
        lambda: "looping" in log_text(loop_run), timeout=30, what="the handler to loop"
    )
    # The worker is busy with the loop; the hub answers all the same.
    with urllib.request.urlopen(f"{live_hub.url}/healthz", timeout=5) as response:
        assert response.status == 200
    loop_run = finished(loop_run, celery_worker)
    assert loop_run.status == Run.Status.TIMED_OUT
    assert "time limit of 3 s and was killed" in loop_run.error

    hog_run = event_run(hog, task, events.LABEL_SUBMITTED)
    dispatch_pending(hog.pk)
    hog_run = finished(hog_run, celery_worker)
    assert hog_run.status == Run.Status.FAILED
    assert "memory limit of 128 MB" in hog_run.error

    # The same worker takes the next event normally.
    qa_run = event_run(qa, task, events.LABEL_SUBMITTED)
    dispatch_pending(qa.pk)
    assert finished(qa_run, celery_worker).status == Run.Status.SUCCEEDED
    assert celery_worker.alive()


def test_a_handler_on_the_worker_cannot_read_the_worker_s_secrets(
    invoices: Any, make_plugin: Any, celery_worker: PluginProcess
) -> None:
    source = b"""
import os
from pluginhub.plugins import PluginCore

class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        self.logger.info("ENV " + repr(dict(os.environ)))
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    self.logger.info(pid + " " + open(f"/proc/{pid}/environ").read())
                except OSError as exc:
                    self.logger.info(pid + " refused " + type(exc).__name__)
"""
    plugin = make_plugin(type=PluginType.EVENT, max_attempts=1).plugin
    built(plugin, source, celery_worker)
    run = event_run(
        plugin,
        submit(invoices, "astronaut", iban="FR", currency="EUR"),
        events.LABEL_SUBMITTED,
    )
    dispatch_pending(plugin.pk)
    run = finished(run, celery_worker)
    text = log_text(run)
    assert run.status == Run.Status.SUCCEEDED, text
    assert "ENV {" in text
    assert SECRET_KEY not in text and "DATABASE_URL" not in text
    assert "sqlite" not in text and "HUB_VAR_DIR" not in text


def test_cancelling_a_run_kills_its_handler_and_frees_the_worker(
    invoices: Any, make_plugin: Any, celery_worker: PluginProcess
) -> None:
    from plugins_app.runs.ledger import run_cancel
    from tests.test_hosted import _sandboxes_left

    looper = make_plugin(type=PluginType.EVENT, timeout=120, max_attempts=1).plugin
    built(looper, LOOP_FOREVER.encode(), celery_worker)
    task = submit(invoices, "astronaut", iban="FR76", currency="EUR")
    run = event_run(looper, task, events.LABEL_SUBMITTED)
    wait_for(lambda: "looping" in log_text(run), timeout=30, what="the loop")
    run_cancel(run, by=invoices.admin)
    wait_for(lambda: not _sandboxes_left(), timeout=10, what="the sandbox to die")
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED
    # The worker is free again long before the 120 s limit.
    qa = make_plugin(type=PluginType.EVENT, max_attempts=1, name="QA").plugin
    built(qa, QA_EXAMPLE.read_bytes(), celery_worker)
    qa_run = event_run(qa, task, events.LABEL_SUBMITTED)
    assert finished(qa_run, celery_worker, timeout=30).status == Run.Status.SUCCEEDED
