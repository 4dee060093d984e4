"""Hosted plugins in one process: uploads and builds, the Kili-style QA example
on submit, the client's scope, the sandbox's limits and what it hides. Each
handler really runs under bubblewrap (Celery tasks run eagerly here; the
end-to-end tests with a real worker are in test_hosted_celery.py)."""

from __future__ import annotations

import io
import os
import subprocess
import zipfile
from typing import Any

import pytest

from plugins_app.hosted.archive import ArchiveError
from plugins_app.hosted.invoices import INVOICE_ONTOLOGY
from plugins_app.hosted.models import HostedCode
from plugins_app.plugins.models import Delivery, PluginType
from plugins_app.runs.dispatch import dispatch_pending
from plugins_app.runs.models import Run, WorkItem
from plugins_app.workspace import events
from plugins_app.workspace.models import Task
from tests.hosted_support import (
    QA_EXAMPLE,
    event_run,
    log_text,
    submit,
    upload_and_build,
)

pytestmark = pytest.mark.usefixtures("eager_celery")

LOOP_FOREVER = """
from pluginhub.plugins import PluginCore

class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        self.logger.info("looping")
        while True:
            pass
"""

ALLOCATE_WITHOUT_BOUND = """
from pluginhub.plugins import PluginCore

class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        self.logger.info("allocating")
        hoard = []
        while True:
            hoard.append(bytearray(10 * 1024 * 1024))
"""

SNOOP = r"""
import glob, os, socket, sys
from pluginhub.plugins import PluginCore

def attempt(what, fn):
    try:
        return f"{what}: {fn()!r}"
    except BaseException as exc:
        return f"{what}: refused {type(exc).__name__}"

def parent_environ():
    return open(f"/proc/{os.getppid()}/environ").read()

class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        log = self.logger.info
        log("ENV " + repr(dict(os.environ)))
        log(attempt("pid1-environ", lambda: open("/proc/1/environ").read()))
        log(attempt("parent-environ", parent_environ))
        log(attempt("settings", lambda: __import__("plugins_app.settings")))
        log(attempt("django", lambda: __import__("django")))
        log("FILES " + repr(sorted(glob.glob("/*")) + sorted(glob.glob("/etc/*"))))
        for path in TARGETS:
            log(attempt("read " + path, lambda: open(path, "rb").read(64)))
        log(attempt("tcp", lambda: socket.create_connection(("127.0.0.1", PORT), 1)))
        log(attempt("dns", lambda: socket.getaddrinfo("pypi.org", 443)))
        log(attempt("write", lambda: open("/code/x", "w")))
        log(attempt("uid", lambda: (os.getuid(), os.geteuid())))
"""


@pytest.fixture
def invoices(workspace: Any) -> Any:
    workspace.project.ontology = INVOICE_ONTOLOGY
    workspace.project.save()
    return workspace


def hosted_plugin(
    make_plugin: Any, source: str, *, timeout: int = 30, memory_mb: int = 256
) -> Any:
    plugin = make_plugin(type=PluginType.EVENT, timeout=timeout, max_attempts=1).plugin
    code = upload_and_build(plugin, source, memory_mb=memory_mb)
    assert code.status == HostedCode.Status.ACTIVE, code.build_log
    plugin.refresh_from_db()
    return plugin


def trigger(plugin: Any, task: Task, event: str = events.LABEL_SUBMITTED) -> Run:
    run = event_run(plugin, task, event)
    dispatch_pending(plugin.pk)
    run.refresh_from_db()
    return run


# --- upload and build ---------------------------------------------------------
def test_a_main_py_builds_in_the_sandbox_and_makes_the_plugin_hosted(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.EVENT).plugin
    code = upload_and_build(plugin, QA_EXAMPLE.read_text())
    plugin.refresh_from_db()
    assert plugin.delivery == Delivery.HOSTED
    assert code.status == HostedCode.Status.ACTIVE, code.build_log
    assert code.handler_name == "PluginHandler"
    assert "on_submit, on_review" in code.build_log
    assert code.env_path == "" and code.built_at is not None


def test_bad_uploads_are_refused_with_the_reason(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.EVENT).plugin
    with pytest.raises(ArchiveError, match="line 2"):
        upload_and_build(plugin, "x = 1\ndef broken(:\n")
    with pytest.raises(ArchiveError, match="damaged or not a zip"):
        upload_and_build(plugin, b"PK\x03\x04 not really", filename="code.zip")
    with pytest.raises(ArchiveError, match="no main.py"):
        upload_and_build(plugin, _zip({"other.py": "x = 1"}), filename="code.zip")
    with pytest.raises(ArchiveError, match="Unsafe path"):
        upload_and_build(
            plugin, _zip({"main.py": "", "../evil.py": ""}), filename="c.zip"
        )
    assert not HostedCode.objects.filter(plugin=plugin).exists()


def test_a_build_that_cannot_import_its_handler_fails_with_the_log(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.EVENT).plugin
    code = upload_and_build(plugin, "import not_installed_anywhere\n")
    assert code.status == HostedCode.Status.FAILED
    assert "ModuleNotFoundError" in code.build_log
    code = upload_and_build(plugin, "print('hello from main')\n")
    assert code.status == HostedCode.Status.FAILED and code.version == 2
    assert "defines no handler" in code.build_log
    assert "hello from main" in code.build_log


def test_runs_of_a_plugin_whose_build_failed_fail_saying_why(
    invoices: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.EVENT).plugin
    upload_and_build(plugin, "raise SystemExit(3)\n")
    task = submit(invoices, "astronaut", iban="FR76", currency="EUR")
    run = trigger(plugin, task)
    assert run.status == Run.Status.FAILED
    assert "failed to build" in run.error


def test_requirements_go_into_a_per_plugin_virtual_environment(
    invoices: Any, make_plugin: Any
) -> None:
    source = """
from stdnum import iban
from pluginhub.plugins import PluginCore

class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        for a in label["jsonResponse"]["JOB_0"]["annotations"]:
            if a["categories"][0]["name"] == "IBAN":
                text = a["children"]["TRANSCRIPTION_JOB"]["text"]
                self.kili.set_metadata({"iban_valid": iban.is_valid(text)})
"""
    plugin = make_plugin(type=PluginType.EVENT, max_attempts=1).plugin
    code = upload_and_build(
        plugin,
        _zip({"main.py": source, "requirements.txt": "python-stdnum>=1.20\n"}),
        filename="iban.zip",
    )
    assert code.status == HostedCode.Status.ACTIVE, code.build_log
    assert code.env_path and "Successfully installed python-stdnum" in code.build_log
    good = submit(
        invoices, "astronaut", iban="FR1420041010050500013M02606", currency="EUR"
    )
    assert trigger(plugin, good).status == Run.Status.SUCCEEDED
    good.refresh_from_db()
    assert good.metadata == {"iban_valid": True}


# --- the QA example ---------------------------------------------------------------
def test_the_qa_example_opens_issues_sends_back_and_records_accuracy(
    invoices: Any, make_plugin: Any
) -> None:
    plugin = hosted_plugin(make_plugin, QA_EXAMPLE.read_text())
    task = submit(invoices, "astronaut", iban="DE89370400440532013000", currency="GBP")
    run = trigger(plugin, task)
    assert run.status == Run.Status.SUCCEEDED, log_text(run)
    task.refresh_from_db()
    assert task.stage == "Label" and task.status == Task.Status.TODO
    assert task.metadata == {"accuracy": 0.0}
    issues = list(task.issues.values_list("content", "position", "created_by_label"))
    assert issues == [
        (
            "IBAN number should start by FR",
            {"objectId": "iban-1"},
            f"plugin {plugin.name}",
        ),
        (
            "Authorized currencies are only EUR and USD",
            {"objectId": "currency-1"},
            f"plugin {plugin.name}",
        ),
    ]
    assert events.TASK_SENT_BACK in task.events.values_list("name", flat=True)
    assert "2 problem(s)" in log_text(run)


def test_the_qa_example_lets_a_good_label_through_to_review(
    invoices: Any, make_plugin: Any
) -> None:
    plugin = hosted_plugin(make_plugin, QA_EXAMPLE.read_text())
    task = submit(invoices, "coins", iban="FR7630006000011234567890189", currency="USD")
    half = submit(
        invoices, "astronaut", iban="FR7630006000011234567890189", currency="YEN"
    )
    assert trigger(plugin, task).status == Run.Status.SUCCEEDED
    assert trigger(plugin, half).status == Run.Status.SUCCEEDED
    task.refresh_from_db()
    half.refresh_from_db()
    assert task.stage == "Review" and task.status == Task.Status.SUBMITTED
    assert task.metadata == {"accuracy": 100.0} and not task.issues.exists()
    assert half.stage == "Label" and half.metadata == {"accuracy": 50.0}
    assert half.issues.count() == 1


# --- the client's scope -------------------------------------------------------------
def test_the_client_cannot_act_outside_the_run_s_task(
    invoices: Any, make_plugin: Any
) -> None:
    other = invoices.asset("coins").task
    source = f"""
from pluginhub import HubError
from pluginhub.plugins import PluginCore

class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        for attempt in (
            lambda: self.kili.send_back_to_queue(asset_ids=["{other.asset_id}"]),
            lambda: self.kili.create_issues(project_id="{invoices.other_project.pk}",
                                            label_id_array=["x"], text_array=["no"]),
            lambda: self.hub._call("issue_create", content="  "),
            lambda: self.hub._call("delete_everything"),
        ):
            try:
                attempt()
                self.logger.error("ALLOWED")
            except HubError as exc:
                self.logger.info(f"refused: {{exc}}")
        tools = self.hub.ontology()["tools"]
        self.logger.info("ONTOLOGY " + ",".join(t["title"] for t in tools))
        self.logger.info("LABELS " + str(len(self.hub.labels())))
"""
    plugin = hosted_plugin(make_plugin, source)
    task = submit(invoices, "astronaut", iban="FR76", currency="EUR")
    run = trigger(plugin, task)
    text = log_text(run)
    assert run.status == Run.Status.SUCCEEDED, text
    assert "ALLOWED" not in text
    assert text.count("refused:") == 4
    assert "unknown method 'delete_everything'" in text
    assert "ONTOLOGY IBAN,CURRENCY" in text and "LABELS 1" in text
    other.refresh_from_db()
    assert other.stage == "Label" and not other.issues.exists()


# --- limits and secrets -----------------------------------------------------------
def test_a_handler_that_loops_forever_is_killed_at_the_time_limit(
    invoices: Any, make_plugin: Any
) -> None:
    plugin = hosted_plugin(make_plugin, LOOP_FOREVER, timeout=2)
    task = submit(invoices, "astronaut", iban="FR76", currency="EUR")
    run = trigger(plugin, task)
    assert run.status == Run.Status.TIMED_OUT
    assert "time limit of 2 s and was killed" in run.error
    assert "looping" in log_text(run)
    assert _sandboxes_left() == []


def test_a_handler_that_allocates_without_bound_is_stopped_at_the_memory_limit(
    invoices: Any, make_plugin: Any
) -> None:
    plugin = hosted_plugin(
        make_plugin, ALLOCATE_WITHOUT_BOUND, timeout=20, memory_mb=128
    )
    task = submit(invoices, "astronaut", iban="FR76", currency="EUR")
    run = trigger(plugin, task)
    assert run.status == Run.Status.FAILED
    assert "memory limit of 128 MB" in run.error
    assert _sandboxes_left() == []
    # The next event of the same plugin runs normally.
    Run.objects.filter(pk=run.pk).update(status=Run.Status.FAILED)
    assert WorkItem.objects.filter(state=WorkItem.State.LEASED).count() == 0


def test_a_handler_finds_nothing_secret_in_its_environment_or_filesystem(
    invoices: Any, make_plugin: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    secrets = {
        "DJANGO_SECRET_KEY": "dj-secret-4242",
        "DATABASE_URL": "postgres://hub:db-password-4242@db/hub",
        "REDIS_URL": "redis://:redis-password-4242@redis:6379/0",
        "HUB_METRICS_TOKEN": "metrics-token-4242",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    from django.db import connection

    targets = [
        str(settings.VAR_DIR / "secret_key"),
        str(connection.settings_dict["NAME"]),
        str(settings.BASE_DIR / "plugins_app" / "settings.py"),
        "/root/.bash_history",
        "/etc/passwd",
    ]
    with socket_listener() as port:
        source = SNOOP.replace("TARGETS", repr(targets)).replace("PORT", str(port))
        plugin = hosted_plugin(make_plugin, source)
        run = trigger(plugin, submit(invoices, "astronaut", iban="FR", currency="EUR"))
    text = log_text(run)
    assert run.status == Run.Status.SUCCEEDED, text
    for value in secrets.values():
        assert "4242" not in text, value
    env_line = next(line for line in text.splitlines() if "ENV " in line)
    assert set(eval(env_line.split("ENV ", 1)[1])) <= {"HOME", "PATH", "LANG", "PWD"}
    for what in ("settings", "django", "tcp", "dns", "write"):
        assert f"{what}: refused" in text, what
    for path in targets:
        assert f"read {path}: refused" in text, path
    assert "'/proc'" in text and "'/home'" not in text and "'/root'" not in text
    assert "'/etc/passwd'" not in text
    uid = 1_900_000_000 + plugin.pk % 1_000_000  # the plugin's own sandbox user
    assert f"uid: ({uid}, {uid})" in text or os.geteuid() != 0


class socket_listener:
    """A TCP port on the worker's host that the sandbox must not reach."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def _sandboxes_left() -> list[str]:
    out = subprocess.run(
        ["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if "pluginhub_child.py" in line]


# --- the plugin page ------------------------------------------------------------
def test_an_admin_uploads_code_on_the_plugin_page_and_sees_the_build(
    workspace: Any, make_plugin: Any
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.test import Client

    plugin = make_plugin(type=PluginType.EVENT).plugin
    admin, annotator = Client(), Client()
    admin.force_login(workspace.admin)
    annotator.force_login(workspace.annotator)
    page = admin.get(f"/plugins/{plugin.pk}/").content.decode()
    assert "Upload and build" in page and "No code uploaded" in page

    bad = SimpleUploadedFile("main.py", b"def (:\n")
    response = admin.post(
        f"/plugins/{plugin.pk}/code/", {"code": bad, "memory_limit_mb": 300}
    )
    assert response.status_code == 200
    assert "main.py line 1" in response.content.decode()
    assert not HostedCode.objects.exists()

    upload = SimpleUploadedFile("main.py", QA_EXAMPLE.read_bytes())
    response = admin.post(
        f"/plugins/{plugin.pk}/code/", {"code": upload, "memory_limit_mb": 300}
    )
    assert response.status_code == 200
    code = HostedCode.objects.get(plugin=plugin)
    assert code.memory_limit_mb == 300
    # Eager Celery runs the build when the upload commits; the test's
    # transaction never commits, so build it the way the task does.
    from plugins_app.hosted.tasks import build_hosted_code

    build_hosted_code(code.pk)
    status = annotator.get(f"/plugins/{plugin.pk}/code/status/").content.decode()
    assert "Active" in status and "PluginHandler" in status
    assert "Upload a new version" not in status  # annotators do not upload
    refused = annotator.post(
        f"/plugins/{plugin.pk}/code/",
        {"code": SimpleUploadedFile("main.py", b"x=1"), "memory_limit_mb": 300},
    )
    assert refused.status_code == 403
    page = admin.get(f"/plugins/{plugin.pk}/").content.decode()
    assert "Upload a new version" in page and "300 MB memory" in page


def test_a_hosted_job_whose_worker_died_goes_back_to_the_queue(
    invoices: Any, make_plugin: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from plugins_app.runs.dispatch.leases import lease
    from plugins_app.runs.sweep import runs_sweep

    plugin = hosted_plugin(make_plugin, QA_EXAMPLE.read_text())
    Plugin = type(plugin)
    Plugin.objects.filter(pk=plugin.pk).update(max_attempts=2)
    task = submit(invoices, "astronaut", iban="DE89", currency="EUR")
    run = event_run(plugin, task, events.LABEL_SUBMITTED)
    item = run.items.select_related("run__plugin", "asset").get()
    # A worker took the job and died: nothing settles it, its lease runs out.
    assert lease([item], seconds=60)
    WorkItem.objects.filter(pk=item.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    result = runs_sweep()
    assert result["requeued"] == 1 and result["dispatched"] == 1
    run.refresh_from_db()
    item.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, log_text(run)
    assert item.attempts == 2
    assert "stopped answering" in log_text(run) or "went silent" in log_text(run)
    task.refresh_from_db()
    assert task.issues.count() == 1


def test_the_plugin_list_shows_hosted_plugins_and_their_build(
    workspace: Any, make_plugin: Any
) -> None:
    from django.test import Client

    plugin = hosted_plugin(make_plugin, QA_EXAMPLE.read_text())
    broken = make_plugin(type=PluginType.EVENT, name="Broken").plugin
    upload_and_build(broken, "raise SystemExit(1)\n")
    client = Client()
    client.force_login(workspace.annotator)
    page = client.get("/plugins/").content.decode()
    assert "● hosted · active" in page and "○ hosted · failed" in page
    assert plugin.name in page


def test_the_edit_dialog_keeps_a_hosted_plugin_hosted_and_sets_its_triggers(
    workspace: Any, make_plugin: Any
) -> None:
    from django.test import Client

    from plugins_app.plugins.triggers import plugin_trigger_events

    plugin = hosted_plugin(make_plugin, QA_EXAMPLE.read_text())
    admin = Client()
    admin.force_login(workspace.admin)
    dialog = admin.get(f"/plugins/{plugin.pk}/edit/").content.decode()
    assert 'value="hosted" selected' in dialog
    response = admin.post(
        f"/plugins/{plugin.pk}/edit/",
        {
            "name": plugin.name,
            "type": "event",
            "delivery": "hosted",
            "default_config": "{}",
            "timeout_seconds": 20,
            "concurrency": 2,
            "projects": [workspace.project.pk],
            "trigger_events": ["label.submitted"],
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and "HX-Redirect" in response
    plugin.refresh_from_db()
    assert plugin.delivery == Delivery.HOSTED and plugin.timeout_seconds == 20
    assert plugin_trigger_events(plugin) == ["label.submitted"]


def test_the_json_api_uploads_code_and_reports_the_build(
    workspace: Any, make_plugin: Any
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from plugins_app.hosted.tasks import build_hosted_code
    from tests.test_isolation import bearer

    plugin = make_plugin(type=PluginType.EVENT).plugin
    admin, annotator = bearer("alice"), bearer("bob")
    url = f"/api/plugins/{plugin.pk}/code"
    assert annotator.get(url).json() == {
        "plugin_id": plugin.pk,
        "status": "none",
        "filename": "",
        "version": 0,
        "handler": "",
        "requirements": "",
        "memory_limit_mb": 0,
        "build_log": "",
        "uploaded_at": None,
        "built_at": None,
    }
    bad = admin.post(url, {"code": SimpleUploadedFile("main.py", b"def (:\n")})
    assert bad.status_code == 400
    assert "main.py line 1" in bad.json()["errors"]["code"][0]
    refused = annotator.post(url, {"code": SimpleUploadedFile("main.py", b"x = 1")})
    assert refused.status_code == 403
    accepted = admin.post(
        url,
        {
            "code": SimpleUploadedFile("main.py", QA_EXAMPLE.read_bytes()),
            "memory_limit_mb": 200,
        },
    )
    assert accepted.status_code == 202, accepted.content
    assert accepted.json()["status"] == "building"
    build_hosted_code(HostedCode.objects.get(plugin=plugin).pk)
    done = annotator.get(url).json()
    assert done["status"] == "active" and done["handler"] == "PluginHandler"
    assert done["memory_limit_mb"] == 200 and "Built in" in done["build_log"]


def test_a_handler_that_floods_calls_without_reading_answers_is_stopped_in_time(
    invoices: Any, make_plugin: Any
) -> None:
    source = """
from pluginhub.plugins import PluginCore

class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        self.logger.info("flooding")
        while True:  # calls whose answers are never read fill the socket
            self.hub._channel.send(
                {"type": "call", "id": 1, "method": "ontology", "params": {}}
            )
"""
    plugin = hosted_plugin(make_plugin, source, timeout=3)
    task = submit(invoices, "astronaut", iban="FR76", currency="EUR")
    run = trigger(plugin, task)
    assert run.status == Run.Status.TIMED_OUT, log_text(run)
    assert "time limit of 3 s and was killed" in run.error
    assert _sandboxes_left() == []


def test_each_event_calls_its_kili_handler(invoices: Any, make_plugin: Any) -> None:
    from plugins_app.workspace.lifecycle import task_review

    source = """
from pluginhub.plugins import PluginCore

class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        self.logger.info(f"SUBMIT {label['labelType']} {label['author']['id']}")

    def on_review(self, label, asset_id):
        verdict = label["eventData"]["verdict"]
        self.logger.info(f"REVIEW {label['labelType']} {verdict}")

    def on_send_back_to_queue(self, label, asset_id):
        self.logger.info(f"SENT BACK {label['eventData']['reason']}")
"""
    plugin = hosted_plugin(make_plugin, source)
    task = submit(invoices, "astronaut", iban="FR76", currency="EUR")
    task = task_review(task, user=invoices.admin, accept=False, reason="blurry")
    runs = {
        name: trigger(plugin, task, name)
        for name in (
            events.LABEL_SUBMITTED,
            events.LABEL_REVIEWED,
            events.TASK_SENT_BACK,
        )
    }
    assert "SUBMIT DEFAULT bob" in log_text(runs[events.LABEL_SUBMITTED])
    assert "REVIEW REVIEW rejected" in log_text(runs[events.LABEL_REVIEWED])
    assert "SENT BACK blurry" in log_text(runs[events.TASK_SENT_BACK])
    assert all(r.status == Run.Status.SUCCEEDED for r in runs.values())
