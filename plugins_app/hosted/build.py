"""Building hosted code (in a Celery worker): unpack it, install its
requirements into its own virtual environment, and import it once in the
sandbox to find the handler class. Without requirements there is no virtual
environment: the handler runs on the sandbox's Python with the `pluginhub`
library, and the build takes well under a second.

Tenant code never gets the network, not even while its requirements install:
only plain specifiers pass (requirements.py), pip *downloads* their wheels
outside the sandbox from the configured index (wheels only, so no package's
setup code runs there), and pip inside the sandbox installs from those files
with --no-index and no network."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

from plugins_app.hosted import archive, requirements, sandbox, services
from plugins_app.hosted.models import HostedCode
from plugins_app.hosted.session import Session

CHECK_SECONDS = 30
# Where the sandbox sees the downloaded wheels (read-only).
MOUNT_WHEELS = "/wheels"
# The worker's environment the download keeps: pip's own settings (the
# configured index, certificates, timeouts; HOME and XDG for its config
# files) and proxies; nothing else.
DOWNLOAD_ENV = re.compile(
    r"^(PIP_\w+|HOME|XDG_CONFIG_(HOME|DIRS)|(HTTPS?|NO|ALL)_PROXY|(https?|no|all)_proxy)$"
)
NO_WHEEL = re.compile(r"Could not find a version that satisfies the requirement (\S+)")


class BuildError(Exception):
    pass


def build(code_id: int) -> str:
    code = services.build_started(code_id)
    if code is None:
        return "nothing to build"
    started = time.monotonic()
    base = sandbox.hosted_root() / "plugins" / str(code.plugin_id) / f"v{code.version}"
    try:
        sandbox.check_reachable(sandbox.hosted_root())
        shutil.rmtree(base, ignore_errors=True)
        code_dir = base / "code"
        files = archive.files_of(code.filename, bytes(code.archive))
        archive.check_source(files)
        wanted = _checked_requirements(files)
        archive.unpack(files, code_dir)
        sandbox._open_up(base)
        services.build_log_append(code, f"Unpacked {len(files)} file(s).\n")
        env_dir = _install(code, base, wanted) if wanted else None
        handler, methods = _check(code, code_dir, env_dir)
    # OSError: e.g. a zip holding both `a` and `a/b`, a full disk, no fork.
    except (
        BuildError,
        archive.ArchiveError,
        sandbox.SandboxUnavailable,
        OSError,
    ) as exc:
        services.build_finished(code, ok=False, message=f"Build failed: {exc}\n")
        return "failed"
    except Exception:  # never leave the code Building for ever
        services.build_finished(code, ok=False, message="Build failed: hub error.\n")
        raise
    seconds = time.monotonic() - started
    services.build_finished(
        code,
        ok=True,
        message=f"Found {handler} ({', '.join(methods) or 'no handler methods'}). "
        f"Built in {seconds:.2f} s.\n",
        handler_name=handler,
        code_path=str(code_dir),
        env_path=str(env_dir or ""),
    )
    _forget_older_versions(base)
    return "active"


def _checked_requirements(files: dict[str, bytes]) -> list[str]:
    text = files.get("requirements.txt", b"").decode("utf-8", errors="replace")
    checked = requirements.check(text)
    if checked.problems:
        raise BuildError(
            "requirements.txt names what hosted plugins cannot install "
            "(plain package specifiers from the hub's index only, see "
            "docs/hosted-security.md):\n" + "\n".join(checked.problems)
        )
    return checked.lines


def _install(code: HostedCode, base: Path, wanted: list[str]) -> Path:
    """A virtual environment with the requirements: wheels downloaded here,
    installed in the sandbox without network."""
    wheels = base / "wheels"
    wheels.mkdir(parents=True)
    (wheels / "requirements.txt").write_text("\n".join(wanted) + "\n")
    _download(code, wheels)
    sandbox._open_up(wheels)
    env_dir = base / "env"
    env_dir.mkdir(parents=True)
    uid = sandbox.uid_for(code.plugin_id)
    if uid is not None:
        os.chown(env_dir, uid, uid)
    spec = sandbox.Spec(
        code_dir=base / "code",
        env_dir=env_dir,
        limits=sandbox.Limits(
            memory_mb=2048, cpu_seconds=900, processes=256, file_bytes=512 * 2**20
        ),
        plugin_id=code.plugin_id,
        writable_env=True,
        ro_binds=((wheels, MOUNT_WHEELS),),
    )
    python = str(env_dir / "bin" / "python")
    steps = [
        (
            "Creating the virtual environment",
            [settings.HUB_HOSTED_PYTHON, "-m", "venv", str(env_dir)],
        ),
        (
            "Installing the wheels (no network, no index)",
            [
                python,
                "-m",
                "pip",
                "install",
                "--no-index",
                "--find-links",
                MOUNT_WHEELS,
                "--only-binary=:all:",
                "--no-input",
                "--disable-pip-version-check",
                "--no-cache-dir",
                "-r",
                f"{MOUNT_WHEELS}/requirements.txt",
            ],
        ),
    ]
    for title, argv in steps:
        services.build_log_append(code, f"$ {title}…\n")
        proc = sandbox.popen(
            sandbox.bwrap_command(spec, argv),
            spec.limits,
            spec.plugin_id,
            merge_stderr=True,
        )
        _, status = _stream(code, proc)
        if status != 0:
            raise BuildError(f"{title.lower()} failed (exit status {status}).")
    shutil.rmtree(wheels, ignore_errors=True)
    return env_dir


def _download(code: HostedCode, wheels: Path) -> None:
    """pip download, outside the sandbox: wheels only (--only-binary=:all:
    builds nothing, so no package code runs), for the sandbox's interpreter
    (--python), from the index the worker's pip configuration names."""
    services.build_log_append(
        code, "$ Downloading wheels from the package index (wheels only)…\n"
    )
    argv = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        settings.HUB_HOSTED_PYTHON,
        "download",
        "--only-binary=:all:",
        "--no-input",
        "--disable-pip-version-check",
        "--no-cache-dir",
        "--progress-bar",
        "off",
        "--dest",
        str(wheels),
        "-r",
        str(wheels / "requirements.txt"),
    ]
    env = {k: v for k, v in os.environ.items() if DOWNLOAD_ENV.match(k)}
    env.update(PATH="/usr/bin:/bin", LANG="C.UTF-8")
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=wheels,  # nothing relative to the worker's directory
            start_new_session=True,
        )
    except OSError as exc:
        raise BuildError(f"pip could not start on this worker: {exc}") from None
    output, status = _stream(code, proc)
    if status == 0:
        return
    missing = NO_WHEEL.search(output)
    if missing:
        raise BuildError(
            f"{missing.group(1)} has no wheel for this platform (or is not on the "
            "package index); hosted plugins install wheels only."
        )
    raise BuildError(f"downloading the requirements failed (exit status {status}).")


def _stream(code: HostedCode, proc: subprocess.Popen) -> tuple[str, int]:
    """The process's output into the build log as it comes, up to the build's
    time limit."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + settings.HUB_HOSTED_BUILD_TIMEOUT_SECONDS
    for raw in proc.stdout:
        line = raw.decode(errors="replace")
        lines.append(line)
        services.build_log_append(code, line)
        if time.monotonic() > deadline:
            sandbox.kill(proc)
            raise BuildError(
                f"the build took over {settings.HUB_HOSTED_BUILD_TIMEOUT_SECONDS} s"
            )
    return "".join(lines), proc.wait()


def _check(
    code: HostedCode, code_dir: Path, env_dir: Path | None
) -> tuple[str, list[str]]:
    logs: list[str] = []
    spec = sandbox.Spec(
        code_dir=code_dir,
        env_dir=env_dir,
        limits=sandbox.Limits(
            memory_mb=max(code.memory_limit_mb, 256), cpu_seconds=CHECK_SECONDS
        ),
        plugin_id=code.plugin_id,
    )
    outcome = Session(
        spec,
        wall_seconds=CHECK_SECONDS,
        on_logs=lambda lines: logs.extend(f"[{lvl}] {msg}" for lvl, msg in lines),
    ).run("check")
    if logs:
        services.build_log_append(
            code, "Output while importing main.py:\n" + "\n".join(logs) + "\n"
        )
    if outcome.kind != "checked":
        trace = outcome.detail.get("traceback", "")
        raise BuildError(
            f"importing main.py failed: {outcome.message}\n{trace}".rstrip()
        )
    return str(outcome.detail.get("handler", "")), list(
        outcome.detail.get("methods", [])
    )


def _forget_older_versions(current: Path) -> None:
    for old in current.parent.glob("v*"):
        if old != current and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
