"""Seeded hubs for the tests that start hub processes, built once: a recipe
(the manage.py or bench commands that migrate and seed a hub) runs once per
version of the code, and every Stack, child or runhub test after that gets a
copy: its own PostgreSQL database made with `CREATE DATABASE x TEMPLATE t`
(~0.3 s instead of ~20 s of migrate, seed_demo and create_api_token), or, in
embedded mode, the SQLite file with the rest of HUB_VAR_DIR, plus the files
the recipe left in HUB_VAR_DIR and the Redis keys it left behind (seed_demo
queues the hosted QA bot's build there). So each test still starts on a hub
that is exactly what the commands produce, only they ran once.

A template is named after a hash of everything that decides what the commands
write (plugins_app/, the demo examples, the recipe's script, the installed
Django and requirements), taken once per session, so a session on changed code
builds a new one. Builds
are serialized across concurrent pytest sessions on this machine by a file lock
and a template is complete only once its info.json is written, after the
database, the files and the Redis keys."""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.migrated_db import code_digest

ROOT = Path(__file__).resolve().parent.parent
PG_HOST = "127.0.0.1"
CACHE = Path(tempfile.gettempdir()) / "pluginhub-pg-templates"
# The template builds' own Redis db, so a build never flushes a db that a
# running Stack (db 7) or bench (8, 9, 13) uses.
BUILD_REDIS_URL = "redis://127.0.0.1:6379/12"
# Templates of another version of the code are dropped once this old (a
# concurrent session on another checkout may still be cloning one).
STALE_SECONDS = 3600


@dataclass(frozen=True)
class Recipe:
    name: str
    # Each step is run as `python <step...>` in ROOT, in order; their stdouts
    # are what a clone gets back.
    steps: tuple[tuple[str, ...], ...]
    # Files beside plugins_app/ whose content decides what the steps write.
    inputs: tuple[str, ...]
    # With Redis the hub queues Celery tasks there (production settings);
    # without, in HUB_VAR_DIR's filesystem broker (copied with the files).
    redis: bool
    # On PostgreSQL (a template database), or embedded: SQLite in HUB_VAR_DIR.
    postgres: bool = True


# What tests/production.Stack starts from: `manage.py migrate`, `seed_demo`
# and `create_api_token annotator`.
DEMO = Recipe(
    name="demo",
    steps=(
        ("manage.py", "migrate", "--noinput", "-v0"),
        ("manage.py", "seed_demo"),
        ("manage.py", "create_api_token", "annotator"),
    ),
    inputs=("examples/hosted_qa", "manage.py"),
    redis=True,
)

# What production.child_on_fresh_database starts from: bench/hub_setup.py.
BENCH = Recipe(
    name="bench",
    steps=(("bench/hub_setup.py",),),
    inputs=("bench/hub_setup.py", "bench/_processes.py"),
    redis=False,
)

# What tests/test_runhub.py starts from: an embedded hub's var/ after
# `manage.py migrate` and `seed_demo`.
EMBEDDED_DEMO = Recipe(
    name="embedded",
    steps=DEMO.steps[:2],
    inputs=DEMO.inputs,
    redis=False,
    postgres=False,
)


@dataclass(frozen=True)
class Clone:
    outputs: list[str]  # the stdout of each of the recipe's steps


def psql(sql: str, db: str = "test") -> str:
    """Run `sql` with the psql client as postgres (CI's trust login) and
    return what it printed (tuples only, unaligned)."""
    result = subprocess.run(
        ["psql", "-h", PG_HOST, "-U", "postgres", "-d", db, "-tAc", sql],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def clone(
    recipe: Recipe, database: str | None, var_dir: Path, redis_url: str | None
) -> Clone:
    """Create PostgreSQL `database` from the recipe's template (built first if
    this version of the code has none), fill `var_dir` with the files the
    recipe wrote (an embedded hub's database among them), and, given a Redis
    URL, flush that db and put back the keys the recipe left."""
    name, info = _ensure(recipe)
    if recipe.postgres:
        assert database is not None
        _create_from(name, database)
    shutil.copytree(CACHE / name / "var", var_dir, symlinks=True, dirs_exist_ok=True)
    if redis_url is not None:
        import redis

        client = redis.Redis.from_url(redis_url)
        client.flushdb()
        for key, value in info["redis"].items():
            client.restore(key, 0, bytes.fromhex(value), replace=True)
    return Clone(outputs=info["outputs"])


def _create_from(template: str, database: str) -> None:
    # CREATE DATABASE refuses while another session is connected to the
    # template; nobody should be (it allows no connections), but a moment's
    # retry costs nothing next to a failed test.
    for attempt in range(20):
        try:
            psql(f"CREATE DATABASE {database} TEMPLATE {template}")
            return
        except subprocess.CalledProcessError as error:
            if "being accessed by other users" not in error.stderr or attempt == 19:
                raise AssertionError(error.stderr) from error
            time.sleep(0.25)


def _ensure(recipe: Recipe) -> tuple[str, dict[str, Any]]:
    name = f"pluginhub_tpl_{recipe.name}_{_code_hash(recipe)[:16]}"
    info_file = CACHE / name / "info.json"
    with _locked(CACHE / f"{name}.lock"):
        if info_file.exists() and (not recipe.postgres or _exists(name)):
            return name, json.loads(info_file.read_text())
        _build(recipe, name)
    _drop_stale(recipe, keep=name)
    return name, json.loads(info_file.read_text())


def _build(recipe: Recipe, name: str) -> None:
    folder = CACHE / name
    shutil.rmtree(folder, ignore_errors=True)
    var_dir = folder / "var"
    var_dir.mkdir(parents=True)
    if recipe.postgres:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        psql(f"CREATE DATABASE {name}")
    env = _build_env(recipe, name, var_dir)
    client = None
    if recipe.redis:
        import redis

        client = redis.Redis.from_url(BUILD_REDIS_URL)
        client.flushdb()
    outputs = []
    for step in recipe.steps:
        result = subprocess.run(
            [sys.executable, *step],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"{step}: {result.stderr}{result.stdout}"
        outputs.append(result.stdout)
    dumped: dict[str, str] = {}
    if client is not None:
        for key in client.keys("*"):
            value = client.dump(key)
            assert isinstance(value, bytes)
            dumped[key.decode()] = value.hex()
        client.flushdb()
    if recipe.postgres:
        # No session may connect to a template (a clone would then fail).
        psql(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
    info = {"outputs": outputs, "redis": dumped, "built_at": time.time()}
    partial = folder / "info.json.partial"
    partial.write_text(json.dumps(info))
    partial.rename(folder / "info.json")


def _build_env(recipe: Recipe, name: str, var_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "plugins_app.settings",
        "HUB_VAR_DIR": str(var_dir),
        "HUB_METRICS_TOKEN": "template-build-metrics-token",
        "PYTHONUNBUFFERED": "1",
    }
    for key in ("HUB_TEST_DB", "REDIS_URL", "DATABASE_URL", "HUB_MEDIA_ROOT"):
        env.pop(key, None)
    if recipe.postgres:
        env["DATABASE_URL"] = f"postgres://postgres@{PG_HOST}:5432/{name}"
    if recipe.redis:
        env["REDIS_URL"] = BUILD_REDIS_URL
    return env


@functools.cache
def _code_hash(recipe: Recipe) -> str:
    # Once per session: the code the session started with (others may be
    # editing the tree meanwhile; a template per edit would rebuild per Stack).
    files = []
    for path in [ROOT / "plugins_app", *(ROOT / p for p in recipe.inputs)]:
        found = path.rglob("*") if path.is_dir() else [path]
        files += [f for f in found if f.is_file() and "__pycache__" not in f.parts]
    return code_digest(files, repr(recipe))


def _exists(database: str) -> bool:
    return psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}'") == "1"


def _drop_stale(recipe: Recipe, *, keep: str) -> None:
    """Best effort: templates of this recipe for other code, built a while ago."""
    prefix = f"pluginhub_tpl_{recipe.name}_"
    names = [p.name for p in CACHE.glob(f"{prefix}*") if p.is_dir()]
    if recipe.postgres:
        names += psql(
            f"SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%'"
        ).split()
    for name in set(names) - {keep}:
        # Under its lock: a build in progress holds it and then is fresh.
        with _locked(CACHE / f"{name}.lock"):
            info_file = CACHE / name / "info.json"
            if info_file.exists():
                if time.time() - info_file.stat().st_mtime < STALE_SECONDS:
                    continue
            if recipe.postgres:
                try:
                    psql(f"DROP DATABASE IF EXISTS {name}")
                except subprocess.CalledProcessError:
                    continue  # being cloned right now: next time
            shutil.rmtree(CACHE / name, ignore_errors=True)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
