from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from plugins_app.demo.seed import DEMO_ONTOLOGY
from plugins_app.plugins.models import Plugin, PluginInstance, PluginType
from plugins_app.plugins.services import plugin_create
from plugins_app.workspace.models import (
    Asset,
    Batch,
    Membership,
    Organization,
    Project,
    Task,
)
from tests import migrated_db
from tests.hub import (
    LiveHub,
    PluginProcess,
    start_celery_worker,
    start_plugin,
    wait_for,
)


@pytest.fixture(scope="session")
def django_db_keepdb(request: pytest.FixtureRequest) -> bool:
    """Keep (reuse) the test database when asked to (--reuse-db), or when it
    starts as a copy of one already migrated (tests/migrated_db.py)."""
    if request.config.getvalue("reuse_db"):
        return True
    return migrated_db.restore(settings.DATABASES["default"])


@pytest.fixture(scope="session")
def django_db_setup(
    django_db_setup: None, django_db_blocker: Any, django_db_keepdb: bool
) -> None:
    """pytest-django's setup; a database it had to migrate is saved for the
    sessions after this one."""
    if not django_db_keepdb:
        from django.db import connection

        with django_db_blocker.unblock():
            migrated_db.keep(connection)


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    """The heartbeat-failure guard counts per address in the cache; tests all
    come from 127.0.0.1, so each starts with a clean count."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def clients() -> Iterator[list[Any]]:
    """Raw plugin sockets a test opened (tests/test_plugin_socket.RawClient),
    closed when it ends."""
    opened: list[Any] = []
    yield opened
    for client in opened:
        client.close()


@pytest.fixture(scope="session")
def demo_images() -> list[Any]:
    from plugins_app.demo.images import generate_demo_images

    return generate_demo_images(Path(settings.MEDIA_ROOT) / "demo")


@dataclass
class Workspace:
    org: Organization
    admin: User
    annotator: User
    outsider: User
    project: Project
    other_project: Project
    batch_a: Batch
    batch_b: Batch

    def asset(self, external_id: str) -> Asset:
        return self.project.assets.get(external_id=external_id)


def _member(org: Organization, username: str, role: str) -> User:
    user = User.objects.create_user(username, f"{username}@x.test", "pw")
    Membership.objects.create(user=user, organization=org, role=role)
    return user


@pytest.fixture
def workspace(db: Any, demo_images: list[Any]) -> Workspace:
    org = Organization.objects.create(name="Acme", slug="acme")
    other = Organization.objects.create(name="Rival", slug="rival")
    project = Project.objects.create(organization=org, name="P", ontology=DEMO_ONTOLOGY)
    other_project = Project.objects.create(
        organization=other, name="Theirs", ontology=DEMO_ONTOLOGY
    )
    batches = {
        name: Batch.objects.create(project=project, name=name)
        for name in ("Batch A", "Batch B")
    }
    for target in (project, other_project):
        for image in demo_images:
            asset = Asset.objects.create(
                project=target,
                external_id=image.external_id,
                file=f"demo/{image.filename}",
                width=image.width,
                height=image.height,
            )
            if target is project:
                asset.batches.add(batches[image.batch])
            Task.objects.create(project=target, asset=asset)
    return Workspace(
        org=org,
        admin=_member(org, "alice", Membership.Role.ADMIN),
        annotator=_member(org, "bob", Membership.Role.ANNOTATOR),
        outsider=_member(other, "charlie", Membership.Role.ADMIN),
        project=project,
        other_project=other_project,
        batch_a=batches["Batch A"],
        batch_b=batches["Batch B"],
    )


@dataclass
class RegisteredPlugin:
    plugin: Plugin
    secret: str


@pytest.fixture
def make_plugin(workspace: Workspace) -> Callable[..., RegisteredPlugin]:
    def make(
        type: str = PluginType.MODEL,
        timeout: int = 60,
        max_attempts: int | None = None,
        **kwargs: Any,
    ) -> RegisteredPlugin:
        credentials = plugin_create(
            organization=workspace.org,
            name=kwargs.pop("name", f"{type} plugin"),
            type=type,
            class_names=kwargs.pop("class_names", ["face", "coin"]),
            default_config=kwargs.pop("default_config", '{"max_detections": 25}'),
            timeout_seconds=timeout,
            projects=[workspace.project],
        )
        if max_attempts is not None:
            Plugin.objects.filter(pk=credentials.plugin.pk).update(
                max_attempts=max_attempts
            )
            credentials.plugin.refresh_from_db()
        return RegisteredPlugin(credentials.plugin, credentials.secret)

    return make


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Celery tasks run in the caller (e.g. an on-commit listener) instead of
    through a broker: the worker's code path, in the test's process. Celery reads
    its settings once, so the app's conf is set, not Django's settings."""
    from plugins_app import celery_app

    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


@pytest.fixture
def live_hub(transactional_db: Any) -> Iterator[LiveHub]:
    hub = LiveHub().start()
    yield hub
    hub.stop()


@pytest.fixture
def plugin_runner(
    live_hub: LiveHub, tmp_path: Path
) -> Iterator[Callable[..., PluginProcess]]:
    started: list[PluginProcess] = []

    def run(
        script: str | Path,
        registered: RegisteredPlugin,
        *,
        sdk: str = "1.4",
        secret: str | None = None,
        env: dict[str, str] | None = None,
        wait_live: bool = True,
    ) -> PluginProcess:
        before = _live_count(registered.plugin)
        process = start_plugin(
            script,
            sdk=sdk,
            host=live_hub.url,
            plugin_id=registered.plugin.public_id,
            secret=secret or registered.secret,
            log_dir=tmp_path,
            env=env,
        )
        started.append(process)
        if wait_live:
            try:
                wait_for(
                    lambda: _live_count(registered.plugin) > before,
                    timeout=30,
                    what="the plugin to connect",
                )
            except AssertionError:
                raise AssertionError(f"plugin did not connect:\n{process.log()}")
        return process

    yield run
    for process in started:
        process.stop()


def _live_count(plugin: Plugin) -> int:
    return PluginInstance.objects.live().filter(plugin=plugin).count()


@pytest.fixture
def prelabel_writes(transactional_db: Any) -> Iterator[Callable[[], list[tuple]]]:
    """Counts pre-label writes in the database itself: a trigger records every
    UPDATE that leaves a task with a pre-label, whichever process made it.
    Returns a function listing (task id, run id, writes)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE chaos_prelabel_write (task_id int, run_id int)")
        cursor.execute(
            "CREATE TRIGGER chaos_prelabel AFTER UPDATE ON workspace_task "
            "FOR EACH ROW WHEN NEW.prelabel_run_id IS NOT NULL BEGIN "
            "INSERT INTO chaos_prelabel_write VALUES (NEW.id, NEW.prelabel_run_id); "
            "END"
        )

    def writes() -> list[tuple]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT task_id, run_id, count(*) FROM chaos_prelabel_write "
                "GROUP BY task_id, run_id ORDER BY task_id"
            )
            return cursor.fetchall()

    yield writes
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER chaos_prelabel")
        cursor.execute("DROP TABLE chaos_prelabel_write")


@pytest.fixture
def celery_worker(live_hub: LiveHub, tmp_path: Path) -> Iterator[PluginProcess]:
    """A real Celery worker (no beat) beside the live hub, on the test database
    and broker; a module may override it with its own settings."""
    worker = start_celery_worker(tmp_path, beat=False, env={})
    yield worker
    worker.stop()


# Markers for the fast lane (`make check` deselects them; CI runs everything).
# Set from what a module uses, so a new test file is marked without anyone
# remembering to: a browser (Playwright), a real SDK plugin process, or the
# production stack (PostgreSQL, Redis, several hub processes).
_MARKER_SIGNS = {
    "browser": ("playwright", "test_browser"),
    "sdk": ("plugin_runner", "start_plugin(", "PluginProcess"),
    "production": ("tests.production", "from tests import production"),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    texts: dict[Path, str] = {}
    for item in items:
        path = Path(str(item.fspath))
        if path not in texts:
            texts[path] = path.name + "\n" + path.read_text(encoding="utf-8")
        for marker, signs in _MARKER_SIGNS.items():
            if any(sign in texts[path] for sign in signs):
                item.add_marker(marker)
