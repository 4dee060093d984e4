"""Starting a handler in a bubblewrap sandbox.

What the sandbox is (README, "Hosted plugins", says what it stops and not):
* its own user, PID, IPC, UTS, cgroup and network namespaces; no network at
  all, ever (the client talks to the worker over an inherited socket; a build
  installs wheels the worker downloaded, see build.py);
* a filesystem of /usr (read-only), the hub's `pluginhub` library, the plugin's
  code and virtual environment (read-only) and an empty /tmp (tmpfs); no /etc,
  no /home, /root, /var or the hub's source, settings or data;
* an empty environment but for HOME, PATH and LANG;
* an unprivileged user of its own plugin (uid_for) when the worker is root,
  with no capabilities, in a new session (no terminal to inject into);
* resource limits: address space (the plugin's memory limit), CPU time, open
  files, processes, file size; and the worker's wall clock, which kills it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import resource
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

RUNTIME_SRC = Path(__file__).resolve().parent / "runtime"
MOUNT_CODE = "/code"
MOUNT_RUNTIME = "/hub-runtime"
CHILD = f"{MOUNT_RUNTIME}/pluginhub_child.py"
TMP_BYTES = 64 * 1024 * 1024
MB = 1024 * 1024
# Inside the sandbox: its own empty tmpfs, not the host's /tmp.
SANDBOX_TMP = "/tmp"  # noqa: S108


class SandboxUnavailable(RuntimeError):
    """bwrap is missing or the hosted directory is out of the sandbox's reach."""


@dataclass(frozen=True)
class Limits:
    memory_mb: int
    cpu_seconds: int
    processes: int = 64
    open_files: int = 256
    file_bytes: int = TMP_BYTES


@dataclass(frozen=True)
class Spec:
    code_dir: Path
    env_dir: Path | None
    limits: Limits
    # Whose code runs: the sandbox's user (and so its process limit) is this
    # plugin's own.
    plugin_id: int
    # The build writes the virtual environment; runs never write anything.
    writable_env: bool = False
    # Extra read-only binds (host path, sandbox path), e.g. the build's wheels.
    ro_binds: tuple[tuple[Path, str], ...] = ()


def runtime_dir() -> Path:
    """The `pluginhub` library, copied where the sandbox user can read it, in a
    folder named by its content: workers of different versions never share or
    delete each other's copy, and concurrent first uses race harmlessly."""
    target = hosted_root() / f"runtime-{_runtime_version()}"
    if not target.exists():
        partial = hosted_root() / f".runtime-{os.getpid()}-{uuid.uuid4().hex}"
        shutil.copytree(
            RUNTIME_SRC, partial, ignore=shutil.ignore_patterns("__pycache__")
        )
        _open_up(partial)
        try:
            partial.rename(target)
        except OSError:  # another worker put it there first
            shutil.rmtree(partial, ignore_errors=True)
    return target


@functools.cache
def _runtime_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(RUNTIME_SRC.rglob("*.py")):
        digest.update(str(path.relative_to(RUNTIME_SRC)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def hosted_root() -> Path:
    root = Path(settings.HUB_HOSTED_DIR)
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    return root


def _open_up(path: Path) -> None:
    """Readable by the sandbox user: directories 755, files 644."""
    for p in [path, *path.rglob("*")]:
        if p.is_symlink():
            continue
        p.chmod(0o755 if p.is_dir() or os.access(p, os.X_OK) else 0o644)


def uid_for(plugin_id: int) -> int | None:
    """The user a plugin's sandboxes run as when the worker is root (else the
    worker's own user, which cannot switch). One uid per plugin because the
    kernel counts RLIMIT_NPROC per real uid: with a shared uid, one plugin's
    fork bomb left no process for any other plugin's sandbox. Plugins whose
    ids are HUB_HOSTED_UID_RANGE apart share a uid (and that limit)."""
    if os.geteuid() != 0:
        return None
    return settings.HUB_HOSTED_UID_BASE + plugin_id % settings.HUB_HOSTED_UID_RANGE


def check_reachable(path: Path) -> None:
    """bwrap runs as the sandbox user, so it must be able to reach what it
    binds: fail with a clear message instead of an obscure bwrap error. The
    sandbox users own nothing here: all they read must be readable by others."""
    if shutil.which(settings.HUB_HOSTED_BWRAP) is None:
        raise SandboxUnavailable(
            f"bubblewrap ({settings.HUB_HOSTED_BWRAP}) is not installed on this "
            "worker (apt-get install bubblewrap)"
        )
    if os.geteuid() != 0:
        return
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            raise SandboxUnavailable(
                f"{parent} is not reachable by the sandbox users (uids from "
                f"{settings.HUB_HOSTED_UID_BASE}): make it executable by others "
                "(chmod o+x) or set HUB_HOSTED_DIR elsewhere"
            )


def python_for(env_dir: Path | None) -> str:
    return str(env_dir / "bin" / "python") if env_dir else settings.HUB_HOSTED_PYTHON


def bwrap_command(spec: Spec, argv: list[str]) -> list[str]:
    # --unshare-all includes the network: tenant code never shares the host's
    # (no --share-net anywhere; the build downloads wheels outside instead).
    cmd = [settings.HUB_HOSTED_BWRAP, "--unshare-all"]
    cmd += ["--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
    for link in ("bin", "lib", "lib64", "sbin"):
        target = Path("/") / link
        if target.is_symlink():
            cmd += ["--symlink", os.readlink(target), str(target)]
        elif target.exists():
            cmd += ["--ro-bind", str(target), str(target)]
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    cmd += ["--size", str(TMP_BYTES), "--tmpfs", SANDBOX_TMP]
    cmd += ["--ro-bind", str(runtime_dir()), MOUNT_RUNTIME]
    cmd += ["--ro-bind", str(spec.code_dir), MOUNT_CODE]
    if spec.env_dir is not None:
        bind = "--bind" if spec.writable_env else "--ro-bind"
        cmd += [bind, str(spec.env_dir), str(spec.env_dir)]
    for host_path, mount in spec.ro_binds:
        cmd += ["--ro-bind", str(host_path), mount]
    cmd += ["--clearenv", "--setenv", "HOME", SANDBOX_TMP]
    cmd += ["--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin"]
    cmd += ["--setenv", "LANG", "C.UTF-8", "--chdir", SANDBOX_TMP, "--"]
    return cmd + argv


def spawn(
    spec: Spec, argv: list[str], *, pass_fds: tuple[int, ...] = ()
) -> subprocess.Popen:
    return popen(
        bwrap_command(spec, argv), spec.limits, spec.plugin_id, pass_fds=pass_fds
    )


def popen(
    cmd: list[str],
    limits: Limits,
    plugin_id: int,
    *,
    pass_fds: tuple[int, ...] = (),
    merge_stderr: bool = False,
) -> subprocess.Popen:
    def limit() -> None:
        # In the child between fork and exec: the limits hold for bwrap and
        # everything it starts.
        memory = limits.memory_mb * MB
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        cpu = limits.cpu_seconds
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files,) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if uid is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes,) * 2)

    uid = uid_for(plugin_id)
    return subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        pass_fds=pass_fds,
        env={"PATH": "/usr/bin:/bin"},
        start_new_session=True,
        preexec_fn=limit,  # noqa: PLW1509 - the worker runs no threads that fork
        user=uid,
        group=uid,
        extra_groups=[] if uid is not None else None,
        cwd="/",
    )


def kill(proc: subprocess.Popen) -> None:
    """Kill bwrap's process group; the sandbox's own processes die with it
    (--die-with-parent, and the PID namespace ends with its first process)."""
    try:
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass
    proc.wait()
