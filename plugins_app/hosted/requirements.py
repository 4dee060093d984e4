"""What a hosted plugin's requirements.txt may say: plain requirement
specifiers only (a name, extras, version specifiers, an environment marker),
each installed from a wheel of the hub's configured package index.

Everything else in pip's requirements syntax either points pip somewhere the
admin did not choose (a URL, a local path, a VCS checkout, another index,
`--find-links`, an include) or makes pip build a package, which runs the
package's own code (setup.py or a build backend). Both are refused here, at
build time, naming the line, before pip sees the file."""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement

# pip strips a comment that starts the line or follows whitespace.
_COMMENT = re.compile(r"(^|\s+)#.*$")
# The only per-requirement option kept: it pins the wheel's digest and makes
# pip check it (pip's hash-checking mode), so it narrows what gets installed.
_HASH = re.compile(r"^--hash[=\s]+(sha256|sha384|sha512):[0-9a-fA-F]+$")
_HASH_ANYWHERE = re.compile(r"\s--hash[=\s]+\S+")
# pip takes a line ending like these as a file to install, if one is there.
_ARCHIVES = (".whl", ".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz")


@dataclass(frozen=True)
class Checked:
    """The requirements as pip will get them (one normalized specifier a
    line), and the reasons lines were refused (empty when all passed)."""

    lines: list[str]
    problems: list[str]


def check(text: str) -> Checked:
    lines: list[str] = []
    problems: list[str] = []
    for number, line in _logical_lines(text):
        hashes = _HASH_ANYWHERE.findall(f" {line}")
        spec = _HASH_ANYWHERE.sub("", f" {line}").strip()
        why = _refusal(spec, hashes)
        if why:
            problems.append(f"requirements.txt line {number}: `{line}` {why}")
            continue
        lines.append(" ".join([str(Requirement(spec)), *(h.strip() for h in hashes)]))
    return Checked(lines, problems)


def _refusal(spec: str, hashes: list[str]) -> str:
    """Why a requirement line is refused, or "" when it is a plain specifier."""
    for option in hashes:
        if not _HASH.match(option.strip()):
            return "has a malformed --hash option."
    if spec.startswith("-"):
        option = spec.split()[0].split("=")[0]
        return (
            f"is a pip option ({option}); hosted plugins install from the hub's "
            "package index only, so options (indexes, find-links, includes, "
            "editables, build settings) are not allowed."
        )
    if re.match(r"^(git|hg|svn|bzr)\+", spec):
        return "is a version-control checkout; only packages from the index."
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", spec) or spec.startswith("file:"):
        return "is a URL; name a package from the index instead (e.g. `name>=1.2`)."
    if spec.startswith((".", "/", "~")) or "/" in spec.split(";")[0].split("@")[0]:
        return "is a local path; only packages from the index can be installed."
    try:
        requirement = Requirement(spec)
    except InvalidRequirement as exc:
        return f"is not a requirement specifier ({exc})."
    if requirement.url:
        return (
            "is a direct reference (`name @ url`); only packages from the index "
            "can be installed."
        )
    if spec.lower().endswith(_ARCHIVES):
        return "names a package file; only packages from the index can be installed."
    return ""


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first physical line number, line) as pip reads the file: comments
    stripped, backslash continuations joined, blank lines skipped."""
    result: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _COMMENT.sub("", raw)
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            result.append((start, line))
    if pending.strip():
        result.append((start, pending.strip()))
    return result
