"""Issue 9 for hosted plugins: tenant code never gets the network (not even
while its requirements install), one plugin's sandboxes cannot starve
another's, a sandbox that cannot start is retried and then fails visibly
(never counted as a pass), and a damaged zip is a clear 4xx, never a 500.
Everything runs for real: uploads through the page and the JSON API, the
build with pip, handlers under bubblewrap (Celery tasks run eagerly)."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from plugins_app.hosted import requirements, sandbox
from plugins_app.hosted.invoices import INVOICE_ONTOLOGY
from plugins_app.hosted.models import HostedCode
from plugins_app.hosted.session import Session
from plugins_app.hosted.tasks import build_hosted_code
from plugins_app.plugins.models import PluginType
from plugins_app.runs.models import Run
from plugins_app.workspace import events
from tests.hosted_support import QA_EXAMPLE, log_text, submit
from tests.test_hosted import _zip, hosted_plugin, socket_listener, trigger

pytestmark = pytest.mark.usefixtures("eager_celery")

REAL_BWRAP = "/usr/bin/bwrap"

HELLO = """
from pluginhub.plugins import PluginCore

class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        self.logger.info("HELLO from the handler")
"""


@pytest.fixture
def invoices(workspace: Any) -> Any:
    workspace.project.ontology = INVOICE_ONTOLOGY
    workspace.project.save()
    return workspace


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder every sandbox user may write (pytest's tmp_path is root's
    only): for wrapper scripts and what they record."""
    path = Path(tempfile.mkdtemp(prefix="hub-hosted-test-", dir="/tmp"))  # noqa: S108
    path.chmod(0o777)
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def upload_on_page(workspace: Any, plugin: Any, data: bytes, name: str) -> Any:
    """What an admin does: upload on the plugin page; the worker's task builds."""
    admin = Client(raise_request_exception=False)
    admin.force_login(workspace.admin)
    response = admin.post(
        f"/plugins/{plugin.pk}/code/",
        {"code": SimpleUploadedFile(name, data), "memory_limit_mb": 256},
    )
    assert response.status_code == 200, response.content
    code = HostedCode.objects.get(plugin=plugin)
    # The test's transaction never commits: build the way the task does.
    build_hosted_code(code.pk)
    code.refresh_from_db()
    return code


def nothing_connected(listening: socket_listener) -> bool:
    """The listening socket saw no connection (none is waiting to be accepted)."""
    listening.sock.settimeout(0.3)
    try:
        connection, _ = listening.sock.accept()
    except TimeoutError:
        return True
    connection.close()
    return False


def wrapper(shared_dir: Path, body: str) -> str:
    """A stand-in for bwrap (HUB_HOSTED_BWRAP) that the sandbox users run."""
    script = shared_dir / "bwrap"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


# --- requirements: refused at build, naming the line ------------------------------
EVIL_BACKEND = """
import socket
socket.create_connection(("127.0.0.1", PORT), 2).sendall(b"build backend ran")

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    raise SystemExit("never built")
"""


def test_a_path_requirement_with_a_build_backend_is_refused_at_build(
    workspace: Any, make_plugin: Any
) -> None:
    plugin = make_plugin(type=PluginType.EVENT).plugin
    listening = socket_listener()
    with listening as port:
        upload = _zip(
            {
                "main.py": HELLO,
                "requirements.txt": "python-stdnum>=1.20\n/code/evilpkg\n",
                "evilpkg/pyproject.toml": "[build-system]\nrequires = []\n"
                'build-backend = "evil_backend"\nbackend-path = ["."]\n',
                "evilpkg/evil_backend.py": EVIL_BACKEND.replace("PORT", str(port)),
            }
        )
        code = upload_on_page(workspace, plugin, upload, "evil.zip")
        assert nothing_connected(listening), code.build_log
    assert code.status == HostedCode.Status.FAILED, code.build_log
    assert "requirements.txt line 2: `/code/evilpkg` is a local path" in code.build_log
    assert "Downloading" not in code.build_log and not code.env_path


def test_an_index_url_in_requirements_is_refused_at_build_and_never_fetched(
    workspace: Any, make_plugin: Any
) -> None:
    from tests.test_isolation import bearer

    plugin = make_plugin(type=PluginType.EVENT).plugin
    listening = socket_listener()
    with listening as port:
        upload = _zip(
            {
                "main.py": HELLO,
                "requirements.txt": f"# my index\n--index-url http://127.0.0.1:{port}"
                "/simple\nevilpkg\n",
            }
        )
        response = bearer("alice").post(
            f"/api/plugins/{plugin.pk}/code",
            {"code": SimpleUploadedFile("evil.zip", upload)},
        )
        assert response.status_code == 202, response.content
        code = HostedCode.objects.get(plugin=plugin)
        build_hosted_code(code.pk)
        code.refresh_from_db()
        assert nothing_connected(listening), code.build_log
    assert code.status == HostedCode.Status.FAILED, code.build_log
    assert (
        f"requirements.txt line 2: `--index-url http://127.0.0.1:{port}/simple` "
        "is a pip option (--index-url)" in code.build_log
    )


@pytest.mark.parametrize(
    "line",
    [
        "./vendor/pkg",
        "vendor/pkg",
        "/abs/pkg",
        "file:///tmp/pkg",
        "https://example.com/pkg-1.0-py3-none-any.whl",
        "git+https://github.com/a/b",
        "pkg @ https://example.com/pkg.whl",
        "pkg-1.0.tar.gz",
        "-i http://127.0.0.1:1/simple",
        "--extra-index-url=http://x",
        "-f /tmp",
        "--find-links /tmp",
        "--trusted-host x",
        "-e .",
        "-r other.txt",
        "-c constraints.txt",
        "--no-binary :all:",
        "pkg --global-option=build",
        "pkg==${VERSION}",
        "pkg==1 --hash=md5:abc",
    ],
)
def test_only_plain_specifiers_pass_the_requirements_check(line: str) -> None:
    checked = requirements.check(f"python-stdnum\n{line}\n")
    assert checked.lines == ["python-stdnum"]
    assert len(checked.problems) == 1
    assert checked.problems[0].startswith(f"requirements.txt line 2: `{line}`")


def test_plain_specifiers_pass_as_pip_reads_them() -> None:
    text = (
        "# comment\n\nrequests[socks] >= 2.0 ; python_version > '3'  # why\n"
        "python-stdnum==2.2 \\\n  --hash=sha256:abc123\n"
    )
    assert requirements.check(text) == requirements.Checked(
        [
            'requests[socks]>=2.0; python_version > "3"',
            "python-stdnum==2.2 --hash=sha256:abc123",
        ],
        [],
    )


def test_requirements_install_from_downloaded_wheels_without_network(
    workspace: Any, make_plugin: Any, shared_dir: Path, settings: Any
) -> None:
    """Every bwrap command of a build with requirements: none shares the
    network, and pip installs with --no-index from the downloaded wheels."""
    commands = shared_dir / "commands"
    settings.HUB_HOSTED_BWRAP = wrapper(
        shared_dir, f'printf "%s\\n" "$*" >> {commands}\nexec {REAL_BWRAP} "$@"'
    )
    plugin = make_plugin(type=PluginType.EVENT).plugin
    upload = _zip(
        {
            "main.py": "from stdnum import iban\n" + HELLO,
            "requirements.txt": "python-stdnum>=1.20\n",
        }
    )
    code = upload_on_page(workspace, plugin, upload, "iban.zip")
    assert code.status == HostedCode.Status.ACTIVE, code.build_log
    assert "Downloading wheels from the package index" in code.build_log
    lines = commands.read_text().splitlines()
    assert len(lines) == 3, lines  # venv, pip install, the import check
    for line in lines:
        assert "--unshare-all" in line and "--share-net" not in line, line
    install = next(line for line in lines if " pip install " in line)
    assert "--no-index --find-links /wheels --only-binary=:all:" in install


def test_a_requirement_without_a_wheel_fails_the_build_saying_so(
    workspace: Any,
    make_plugin: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The configured index (here find-links) has only an sdist: pip would run
    # its setup code to build it; the hub never does.
    (tmp_path / "hubtest_nowheel-1.0.tar.gz").write_bytes(b"")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    plugin = make_plugin(type=PluginType.EVENT).plugin
    upload = _zip({"main.py": HELLO, "requirements.txt": "hubtest-nowheel==1.0\n"})
    code = upload_on_page(workspace, plugin, upload, "sdist.zip")
    assert code.status == HostedCode.Status.FAILED, code.build_log
    assert (
        "hubtest-nowheel==1.0 has no wheel for this platform (or is not on the "
        "package index); hosted plugins install wheels only." in code.build_log
    )


# --- no network during a run ---------------------------------------------------------
def test_a_handler_gets_no_connection_to_a_listening_local_port(
    invoices: Any, make_plugin: Any
) -> None:
    listening = socket_listener()
    with listening as port:
        source = f"""
import socket
from pluginhub.plugins import PluginCore

class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        for host in ("127.0.0.1", "localhost", "{socket.gethostname()}"):
            try:
                socket.create_connection((host, {port}), 1)
                self.logger.error("CONNECTED to " + host)
            except OSError as exc:
                self.logger.info(f"no connection to {{host}}: {{exc}}")
"""
        plugin = hosted_plugin(make_plugin, source)
        run = trigger(plugin, submit(invoices, "astronaut", iban="FR", currency="EUR"))
        assert nothing_connected(listening)
    text = log_text(run)
    assert run.status == Run.Status.SUCCEEDED, text
    assert "CONNECTED" not in text and text.count("no connection to") == 3


# --- one plugin's process limit is its own -------------------------------------------
FORK_UNTIL_REFUSED = """
import os, time
from pluginhub.plugins import PluginCore

class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        children, stop = 0, time.monotonic() + 10
        while time.monotonic() < stop and children < 2000:
            try:
                pid = os.fork()
            except OSError as exc:
                self.logger.info(f"EXHAUSTED after {children} children: {exc}")
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children += 1
        time.sleep(HOLD)  # every process held while another plugin runs
"""


def test_one_plugin_exhausting_its_processes_does_not_stop_another(
    invoices: Any, make_plugin: Any
) -> None:
    bomb = hosted_plugin(
        make_plugin, FORK_UNTIL_REFUSED.replace("HOLD", "12"), timeout=30
    )
    other = hosted_plugin(make_plugin, QA_EXAMPLE.read_text())
    code = HostedCode.objects.get(plugin=bomb)
    lines: list[tuple[str, str]] = []
    session = Session(
        sandbox.Spec(
            code_dir=Path(code.code_path),
            env_dir=None,
            limits=sandbox.Limits(memory_mb=256, cpu_seconds=30),
            plugin_id=bomb.pk,
        ),
        wall_seconds=30,
        on_logs=lines.extend,
    )
    job = {"method": "on_submit", "event": "", "label": {}, "asset_id": "a"}
    bombing = threading.Thread(
        target=session.run, args=("run", {**job, "project_id": "p"})
    )
    bombing.start()
    try:
        deadline = time.monotonic() + 20
        while not any("EXHAUSTED" in m for _, m in lines):
            assert time.monotonic() < deadline, lines
            time.sleep(0.05)
        task = submit(
            invoices, "astronaut", iban="DE89370400440532013000", currency="GBP"
        )
        run = trigger(other, task)
        assert bombing.is_alive()  # the bomb still held its processes meanwhile
    finally:
        bombing.join()
    assert run.status == Run.Status.SUCCEEDED, log_text(run)
    assert "2 problem(s)" in log_text(run)
    task.refresh_from_db()
    assert task.stage == "Label" and task.issues.count() == 2  # QA happened
    assert sandbox.uid_for(bomb.pk) != sandbox.uid_for(other.pk) or os.geteuid() != 0
    # The bomb itself was stopped at its own limit (64 processes of its uid,
    # bwrap and its init included).
    exhausted = next(m for _, m in lines if "EXHAUSTED" in m)
    assert int(exhausted.split()[2]) < 64 or os.geteuid() != 0, exhausted
    if os.geteuid() == 0:  # and none of its processes outlived its sandbox
        uid = str(sandbox.uid_for(bomb.pk))
        # (bwrap's own helper may linger a moment as a zombie for init to reap)
        deadline = time.monotonic() + 5
        while left := subprocess.run(
            ["pgrep", "-u", uid], capture_output=True, text=True
        ).stdout:
            assert time.monotonic() < deadline, left
            time.sleep(0.1)


# --- a sandbox that cannot start ------------------------------------------------
def test_a_sandbox_that_fails_to_start_once_is_retried(
    invoices: Any, make_plugin: Any, shared_dir: Path, settings: Any
) -> None:
    plugin = hosted_plugin(make_plugin, QA_EXAMPLE.read_text())
    counter = shared_dir / "starts"
    settings.HUB_HOSTED_BWRAP = wrapper(
        shared_dir,
        f"echo x >> {counter}\n"
        f'if [ "$(wc -l < {counter})" -le 1 ]; then\n'
        '  echo "bwrap: Creating new namespace failed: Resource temporarily '
        'unavailable" >&2; exit 1\nfi\n'
        f'exec {REAL_BWRAP} "$@"',
    )
    task = submit(invoices, "astronaut", iban="DE89370400440532013000", currency="GBP")
    run = trigger(plugin, task)
    text = log_text(run)
    assert run.status == Run.Status.SUCCEEDED, text
    assert (
        "The handler never ran: the sandbox did not start: bwrap: Creating new "
        "namespace failed: Resource temporarily unavailable (attempt 1 of 3); "
        "trying again in 1 s." in text
    )
    task.refresh_from_db()
    assert task.stage == "Label" and task.issues.count() == 2  # QA happened


@pytest.mark.parametrize("broken", ["failing", "missing"])
def test_a_sandbox_that_never_starts_fails_the_run_visibly(
    invoices: Any, make_plugin: Any, shared_dir: Path, settings: Any, broken: str
) -> None:
    plugin = hosted_plugin(make_plugin, QA_EXAMPLE.read_text())
    settings.HUB_HOSTED_BWRAP = (
        wrapper(shared_dir, 'echo "bwrap: no namespaces for you" >&2; exit 1')
        if broken == "failing"
        else str(shared_dir / "no-such-bwrap")
    )
    task = submit(invoices, "astronaut", iban="DE89370400440532013000", currency="GBP")
    run = trigger(plugin, task)
    assert run.status == Run.Status.FAILED, log_text(run)
    assert run.error.startswith("The handler never ran: ")
    assert "3 attempt(s)" in run.error
    why = "no namespaces for you" if broken == "failing" else "No such file"
    assert why in run.error
    assert log_text(run).count("trying again in") == 2
    task.refresh_from_db()
    failed = task.events.filter(name=events.RUN_FAILED).last()
    assert failed is not None and failed.data["run"] == run.pk
    assert not task.events.filter(name=events.RUN_SUCCEEDED).exists()


# --- damaged zips ---------------------------------------------------------------
def _stored_zip(files: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _damaged(kind: str) -> bytes:
    helper = b"VALUE = '" + b"x" * 2000 + b"'\n"
    files = {"main.py": HELLO.encode(), "helper.py": helper}
    if kind == "truncated":
        return _stored_zip(files)[:300]
    if kind == "unsupported compression":
        data = bytearray(_stored_zip(files))
        # The method field (99, AES) of every local and central header.
        for magic, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
            at = data.find(magic)
            while at != -1:
                data[at + offset : at + offset + 2] = (99).to_bytes(2, "little")
                at = data.find(magic, at + 4)
        return bytes(data)
    if kind == "bad checksum":
        data = bytearray(_stored_zip(files))
        at = data.find(b"xxxx")
        data[at : at + 4] = b"yyyy"
        return bytes(data)
    if kind == "corrupt deflate":
        data = bytearray(_stored_zip(files, zipfile.ZIP_DEFLATED))
        info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("helper.py")
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
        data[start : start + 8] = b"\xff" * 8  # an invalid deflate block type
        return bytes(data)
    if kind == "encrypted":
        data = bytearray(_stored_zip(files))
        for magic, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            at = data.find(magic)
            while at != -1:
                data[at + offset] |= 0x1
                at = data.find(magic, at + 4)
        return bytes(data)
    if kind == "zip bomb":
        files["padding.bin"] = bytes(30 * 1024 * 1024)
        return _stored_zip(files, zipfile.ZIP_DEFLATED)
    raise AssertionError(kind)


DAMAGE = {
    "truncated": "damaged or not a zip",
    "unsupported compression": "uses a compression method the hub cannot read",
    "bad checksum": "damaged or truncated (at helper.py)",
    "corrupt deflate": "damaged or truncated (at helper.py)",
    "encrypted": "is encrypted",
    "zip bomb": "padding.bin in the zip is compressed over 100:1",
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_zip_is_refused_with_the_reason_on_the_page_and_in_the_api(
    workspace: Any, make_plugin: Any, kind: str
) -> None:
    from tests.test_isolation import bearer

    plugin = make_plugin(type=PluginType.EVENT).plugin
    data = _damaged(kind)
    admin = Client(raise_request_exception=False)
    admin.force_login(workspace.admin)
    page = admin.post(
        f"/plugins/{plugin.pk}/code/",
        {"code": SimpleUploadedFile("code.zip", data), "memory_limit_mb": 256},
    )
    assert page.status_code == 200, page.content[:500]
    assert DAMAGE[kind] in page.content.decode()
    api = bearer("alice")
    api.raise_request_exception = False
    response = api.post(
        f"/api/plugins/{plugin.pk}/code",
        {"code": SimpleUploadedFile("code.zip", data)},
    )
    assert response.status_code == 400, response.content[:500]
    assert DAMAGE[kind] in response.json()["errors"]["code"][0]
    assert not HostedCode.objects.filter(plugin=plugin).exists()
