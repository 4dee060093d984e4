"""Reading an upload: a main.py, or a zip holding main.py (at its root or in
one top folder) and optionally requirements.txt and other modules."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePosixPath

MAX_FILES = 1_000
MAX_UNPACKED_BYTES = 50 * 1024 * 1024


class ArchiveError(ValueError):
    """The upload cannot be a hosted plugin; the message says why."""


def files_of(filename: str, data: bytes) -> dict[str, bytes]:
    """Relative path → content, with main.py at the top; raises ArchiveError."""
    name = filename.lower()
    if name.endswith(".py"):
        return {"main.py": data}
    if not name.endswith(".zip"):
        raise ArchiveError(
            "Upload a main.py, or a .zip with main.py (and requirements.txt)."
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ArchiveError("The .zip file is damaged or not a zip.") from None
    entries = [i for i in archive.infolist() if not i.is_dir()]
    if len(entries) > MAX_FILES:
        raise ArchiveError(f"The zip holds more than {MAX_FILES} files.")
    if sum(i.file_size for i in entries) > MAX_UNPACKED_BYTES:
        raise ArchiveError(
            f"The zip unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MiB."
        )
    prefix = _prefix([i.filename for i in entries])
    files = {}
    for info in entries:
        path = PurePosixPath(info.filename[len(prefix) :])
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise ArchiveError(f"Unsafe path in the zip: {info.filename}")
        if path.parts[0] in ("__MACOSX",) or path.name == ".DS_Store":
            continue
        files[str(path)] = archive.read(info)
    return files


def _prefix(names: list[str]) -> str:
    if "main.py" in names:
        return ""
    tops = {n.split("/", 1)[0] for n in names if not n.startswith("__MACOSX")}
    if len(tops) == 1:
        top = tops.pop() + "/"
        if top + "main.py" in names:
            return top
    raise ArchiveError(
        "The zip has no main.py at its root (or in a single top folder)."
    )


def requirements_of(files: dict[str, bytes]) -> str:
    text = files.get("requirements.txt", b"").decode("utf-8", errors="replace")
    lines = [ln.strip() for ln in text.splitlines()]
    return "\n".join(ln for ln in lines if ln and not ln.startswith("#"))


def check_source(files: dict[str, bytes]) -> None:
    """main.py must be UTF-8 Python that compiles (nothing is run here)."""
    try:
        source = files["main.py"].decode("utf-8")
    except UnicodeDecodeError:
        raise ArchiveError("main.py is not UTF-8 text.") from None
    try:
        compile(source, "main.py", "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise ArchiveError(
            f"main.py line {exc.lineno}: {exc.msg}"
            + (f"\n    {exc.text.rstrip()}" if exc.text else "")
        ) from None


def unpack(files: dict[str, bytes], target: Path) -> None:
    for relative, content in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
