"""The session's SQLite test database, migrated once per schema: pytest-django
runs every migration into a new file at the start of each session (~5 s on a
quiet machine, 20 s under load, paid by `make check` and every single-module
run too). The first session of a schema keeps a copy (`VACUUM INTO`, so the
WAL is in it); the next ones start from that copy and Django's setup, told to
keep the database, runs `migrate` only to find nothing left to apply.

A schema is a hash of what decides it: the migrations, the models (an app
without migrations would be created from them), Django's version and the
requirements (third-party apps' migrations)."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import django

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(tempfile.gettempdir()) / "pluginhub-test-db"


def code_digest(files: list[Path], *also: str) -> str:
    """A hash of these files (path and content) with the requirements,
    Django's and Python's versions and `also`: what decides what a build of
    them writes (this module's copies, tests/hub_templates.py's templates)."""
    digest = hashlib.sha256(f"{django.__version__} {sys.version}".encode())
    for text in also:
        digest.update(text.encode())
    files = [*files, ROOT / "requirements.txt", ROOT / "requirements-dev.txt"]
    for file in sorted(files):
        digest.update(str(file.relative_to(ROOT)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _schema_hash() -> str:
    app = ROOT / "plugins_app"
    return code_digest([*app.rglob("migrations/*.py"), *app.rglob("models.py")])[:16]


def cached() -> Path:
    return CACHE / f"{_schema_hash()}.sqlite3"


def restore(database: dict[str, Any]) -> bool:
    """Put a migrated copy where the session's SQLite test database goes;
    False if there is none yet, the test database is not a new file of its
    own, or the session runs on PostgreSQL (DATABASE_URL set: pytest-django
    migrates that database the usual way)."""
    test_db = database["TEST"].get("NAME")
    if database["ENGINE"] != "django.db.backends.sqlite3" or not test_db:
        return False
    source, target = cached(), Path(test_db)
    if not source.exists() or target.exists():
        return False
    shutil.copyfile(source, target)
    return True


def keep(connection: object) -> None:
    """Save the just-migrated test database for the sessions after this one."""
    target = cached()
    if target.exists() or connection.vendor != "sqlite":  # type: ignore[attr-defined]
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    # A private name first: another session may be saving the same schema.
    partial = CACHE / f".{target.name}.{os.getpid()}"
    partial.unlink(missing_ok=True)
    with connection.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.execute("VACUUM INTO %s", [str(partial)])
    os.replace(partial, target)
