"""Reading an upload: a main.py, or a zip holding main.py (at its root or in
one top folder) and optionally requirements.txt and other modules."""

from __future__ import annotations

import io
import lzma
import struct
import zipfile
import zlib
from pathlib import Path, PurePosixPath

MAX_FILES = 1_000
MAX_UNPACKED_BYTES = 50 * 1024 * 1024
# Real code and wheels-free source compress ~3-10x; a zip bomb ~1000x. Only
# files big enough to matter are held to it.
MAX_RATIO = 100
RATIO_FROM_BYTES = 1024 * 1024
# What zipfile and its decompressors raise on a damaged, truncated, encrypted
# or exotic archive (unsupported compression methods are NotImplementedError).
DAMAGED = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
    RuntimeError,  # encrypted: "password required"
    EOFError,
    OSError,  # bz2's "Invalid data stream"
    ValueError,
    zlib.error,
    lzma.LZMAError,
    struct.error,
)


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
    except DAMAGED:
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
        if (
            path.is_absolute()
            or ".." in path.parts
            or not path.parts
            or "\x00" in info.filename
        ):
            raise ArchiveError(f"Unsafe path in the zip: {info.filename}")
        if path.parts[0] in ("__MACOSX",) or path.name == ".DS_Store":
            continue
        files[str(path)] = _read(archive, info)
    return files


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """One member, or ArchiveError naming it. zipfile stops reading at the
    declared size (whose total is bounded above), so a member that lies about
    it fails its CRC check here rather than filling memory."""
    if info.file_size > RATIO_FROM_BYTES and info.file_size > MAX_RATIO * max(
        info.compress_size, 1
    ):
        raise ArchiveError(
            f"{info.filename} in the zip is compressed over {MAX_RATIO}:1 "
            "(a zip bomb?)."
        )
    if info.flag_bits & 0x1:
        raise ArchiveError(f"{info.filename} in the zip is encrypted.")
    try:
        return archive.read(info)
    except NotImplementedError:
        raise ArchiveError(
            f"{info.filename} in the zip uses a compression method the hub cannot "
            "read; zip it again with the usual one (deflate)."
        ) from None
    except DAMAGED:
        raise ArchiveError(
            f"The .zip file is damaged or truncated (at {info.filename})."
        ) from None


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
