"""Building hosted code (in a Celery worker): unpack it, install its
requirements into its own virtual environment, and import it once in the
sandbox to find the handler class. Without requirements there is no virtual
environment: the handler runs on the sandbox's Python with the `pluginhub`
library, and the build takes well under a second."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from django.conf import settings

from plugins_app.hosted import archive, sandbox, services
from plugins_app.hosted.models import HostedCode
from plugins_app.hosted.session import Session

CHECK_SECONDS = 30
PIP_ENV = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CERT", "PIP_DEFAULT_TIMEOUT")


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
        archive.unpack(files, code_dir)
        sandbox._open_up(base)
        services.build_log_append(code, f"Unpacked {len(files)} file(s).\n")
        env_dir = _install(code, base) if code.requirements else None
        handler, methods = _check(code, code_dir, env_dir)
    except (BuildError, archive.ArchiveError, sandbox.SandboxUnavailable) as exc:
        services.build_finished(code, ok=False, message=f"Build failed: {exc}\n")
        return "failed"
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


def _install(code: HostedCode, base: Path) -> Path:
    """A virtual environment with the requirements, made and filled inside the
    sandbox (pip runs setup scripts: they get the network, not the hub)."""
    env_dir = base / "env"
    env_dir.mkdir(parents=True)
    uid = sandbox.sandbox_uid()
    if uid is not None:
        os.chown(env_dir, uid, uid)
    spec = sandbox.Spec(
        code_dir=base / "code",
        env_dir=env_dir,
        limits=sandbox.Limits(
            memory_mb=2048, cpu_seconds=900, processes=256, file_bytes=512 * 2**20
        ),
        network=True,
        writable_env=True,
    )
    python = settings.HUB_HOSTED_PYTHON
    pip = str(env_dir / "bin" / "python")
    steps = [
        ("Creating the virtual environment", [python, "-m", "venv", str(env_dir)]),
        (
            "Installing requirements.txt",
            [
                pip,
                "-m",
                "pip",
                "install",
                "--no-input",
                "--disable-pip-version-check",
                "--no-cache-dir",
                "-r",
                f"{sandbox.MOUNT_CODE}/requirements.txt",
            ],
        ),
    ]
    for title, argv in steps:
        services.build_log_append(code, f"$ {title}…\n")
        output, status = _run_logged(code, spec, argv)
        if status != 0:
            raise BuildError(f"{title.lower()} failed (exit status {status}).")
    return env_dir


def _run_logged(
    code: HostedCode, spec: sandbox.Spec, argv: list[str]
) -> tuple[str, int]:
    env_args: list[str] = []
    for name in PIP_ENV:
        if os.environ.get(name):
            env_args += ["--setenv", name, os.environ[name]]
    extra = ("--ro-bind-try", "/etc/pip.conf", "/etc/pip.conf", *env_args)
    cmd = sandbox.bwrap_command(spec, argv, extra=extra)
    proc = sandbox.popen(cmd, spec.limits, merge_stderr=True)
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
