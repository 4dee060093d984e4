"""tests/hub_templates.py: a clone of the seeded hub is what the recipe's
commands leave (database rows, var/ files, queued Celery tasks) and each clone
is its own (a write to one is not in another, nor in the next clone)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from plugins_app.plugins.secrets import token_hash
from tests import hub_templates
from tests.production import needs_services, psql

pytestmark = [needs_services, pytest.mark.production]
REDIS_URL = "redis://127.0.0.1:6379/11"


@pytest.fixture
def databases() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", db="postgres")


def _clone(names: list[str], var: Path) -> tuple[str, hub_templates.Clone]:
    name = f"tpltest_{uuid.uuid4().hex[:10]}"
    names.append(name)
    made = hub_templates.clone(hub_templates.DEMO, name, var, redis_url=REDIS_URL)
    return name, made


def test_a_clone_holds_what_migrate_seed_demo_and_create_api_token_wrote(
    databases: list[str], tmp_path: Path
) -> None:
    name, made = _clone(databases, tmp_path / "var")
    _, seeded, created = made.outputs
    credentials, token = json.loads(seeded), json.loads(created)["token"]

    hashes = psql("SELECT key_hash FROM workspace_apitoken", db=name).split()
    assert token_hash(token) in hashes
    model = credentials["model_plugin"]
    kind = f"SELECT type FROM plugins_plugin WHERE public_id = '{model['id']}'"
    assert psql(kind, db=name) == "model"
    on_disk = json.loads((tmp_path / "var" / "demo-plugins.json").read_text())
    assert on_disk["model_plugin"] == model
    assert any((tmp_path / "var" / "media" / "demo").glob("*.png"))
    # The hosted QA bot's build, queued by seed_demo, waits in the clone's Redis.
    queued = redis.Redis.from_url(REDIS_URL).lrange("celery", 0, -1)
    assert any(b"build_hosted_code" in message for message in queued), queued


def test_each_clone_is_its_own(databases: list[str], tmp_path: Path) -> None:
    first, _ = _clone(databases, tmp_path / "first")
    psql("DELETE FROM workspace_apitoken", db=first)
    redis.Redis.from_url(REDIS_URL).set("written-by-the-first", 1)

    second, _ = _clone(databases, tmp_path / "second")

    assert psql("SELECT count(*) FROM workspace_apitoken", db=first) == "0"
    assert psql("SELECT count(*) FROM workspace_apitoken", db=second) == "1"
    assert redis.Redis.from_url(REDIS_URL).get("written-by-the-first") is None
