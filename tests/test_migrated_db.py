"""tests/migrated_db.py: the copy a session starts from holds every migration
on disk, and a test database that already exists is left alone."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from django.db import connection
from django.db.migrations.loader import MigrationLoader

from tests import migrated_db


def test_the_saved_copy_has_every_migration_on_disk_applied(db: Any) -> None:
    # The session's setup either started from the copy or saved it.
    copy = migrated_db.cached()
    assert copy.exists()
    with sqlite3.connect(copy) as saved:
        applied = set(saved.execute("SELECT app, name FROM django_migrations"))
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    on_disk = set(loader.disk_migrations)
    assert on_disk <= applied, sorted(on_disk - applied)


def test_an_existing_test_database_is_not_replaced(tmp_path: Path) -> None:
    existing = tmp_path / "test.sqlite3"
    existing.write_bytes(b"mine")

    sqlite = {"ENGINE": "django.db.backends.sqlite3", "TEST": {"NAME": str(existing)}}
    assert migrated_db.restore(sqlite) is False
    assert existing.read_bytes() == b"mine"


def test_a_postgresql_session_is_migrated_the_usual_way() -> None:
    # Its test database has no file name (TEST NAME None): nothing to copy.
    postgres = {"ENGINE": "plugins_app.ops.postgres", "TEST": {"NAME": None}}
    assert migrated_db.restore(postgres) is False
