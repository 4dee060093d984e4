"""The pong flush (`instances.instances_seen`) on PostgreSQL while a dispatch
holds the row of an instance it has just leased to (every lease writes its
instances' `last_dispatch_at` and holds those rows until it commits).

Why it matters: the flush used to UPDATE every instance row of its web process
first, in one statement, so it waited on each dispatch holding one of them in
turn, and renewed the leases only after that. With dispatches running at once
(the lock-free dispatch of ca45075) the wait outlasted the leases' TTL:
bench/fleet.py saw live instances' leases lost ("stopped answering pings"),
their jobs sent to a second instance and answered twice (~800 of 3,000), and
runs failed on their third lost lease.

A child process on a fresh PostgreSQL database (bench/hub_setup.py's hub)
holds the row in one thread and flushes in another, each on its own
connection, and prints what a third connection saw while the row was held.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.production import child_on_fresh_database, needs_services

pytestmark = needs_services

ROOT = Path(__file__).resolve().parent.parent
HOLD = 6.0  # the longest the dispatch keeps the row if the flush never gets by


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return child_on_fresh_database(
        "tests.test_pong_flush_pg", tmp_path_factory.mktemp("var"), timeout=120
    )


def test_leases_are_renewed_while_a_dispatch_holds_their_instance(
    seen: dict[str, Any],
) -> None:
    # Fails on the flush that updated the instance rows first (False: the
    # renewal came only once the dispatch had committed).
    assert seen["errors"] == [], seen["errors"]
    assert seen["lease_renewed_while_held"] is True, seen


def test_other_instances_are_seen_while_one_row_is_held(seen: dict[str, Any]) -> None:
    # Fails on the one-statement UPDATE: it held the free rows it had written
    # while it waited on the held one.
    assert seen["other_seen_while_held"] is True, seen


def test_the_held_instance_is_seen_once_the_dispatch_commits(
    seen: dict[str, Any],
) -> None:
    # A guard: the row skipped at first is written after all (it waits on
    # that row alone), so a busy instance does not age out of the live ones.
    assert seen["held_seen_after"] is True, seen
    assert seen["flush_finished"] is True, seen


# --- the child process ---------------------------------------------------------------
def _child() -> None:  # noqa: C901, PLR0915 - one scenario, in order
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import psycopg
    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone

    from plugins_app.plugins.models import Plugin, PluginInstance
    from plugins_app.runs.instances import instances_seen
    from plugins_app.runs.models import Run, WorkItem
    from plugins_app.workspace.models import Project

    plugin = Plugin.objects.get(type="model")
    project = Project.objects.get(pk=plugin.projects.values_list("pk").first()[0])
    long_ago = timezone.now() - timedelta(minutes=5)
    held, other = (
        PluginInstance.objects.create(
            plugin=plugin,
            channel_name=f"pong!{n}",
            address=f"p:{n}",
            last_heartbeat=timezone.now(),
            last_seen_at=long_ago,
        )
        for n in range(2)
    )
    run = Run.objects.create(
        organization_id=project.organization_id,
        plugin=plugin,
        project=project,
        status=Run.Status.RUNNING,
    )
    expires = timezone.now() + timedelta(seconds=1)
    item = WorkItem.objects.create(
        run=run,
        plugin=plugin,
        session="pong-flush-session",
        state=WorkItem.State.LEASED,
        instance=held,
        attempts=1,
        leased_at=timezone.now(),
        lease_expires_at=expires,
        deadline_at=timezone.now() + timedelta(minutes=5),
    )

    db = settings.DATABASES["default"]
    watcher = psycopg.connect(
        host=db["HOST"],
        port=db["PORT"] or 5432,
        user=db["USER"],
        dbname=db["NAME"],
        autocommit=True,
    )

    def watch(sql: str, *params: Any) -> Any:
        row = watcher.execute(sql, params).fetchone()
        return row[0] if row else None

    errors: list[str] = []
    results: dict[str, Any] = {"errors": errors}
    holding, flushed = threading.Event(), threading.Event()

    def dispatch() -> None:
        # What a lease does to the instance it leases to, then a transaction
        # that goes on (building jobs, a slow or starved thread).
        try:
            with transaction.atomic():
                PluginInstance.objects.filter(pk=held.pk).update(
                    last_dispatch_at=timezone.now()
                )
                holding.set()
                renewed = other_seen = False
                until = time.monotonic() + HOLD
                while time.monotonic() < until and not (renewed and other_seen):
                    renewed = watch(
                        "SELECT lease_expires_at > %s FROM runs_workitem WHERE id = %s",
                        expires,
                        item.pk,
                    )
                    other_seen = watch(
                        "SELECT last_seen_at > %s FROM plugins_plugininstance"
                        " WHERE id = %s",
                        long_ago,
                        other.pk,
                    )
                    time.sleep(0.05)
                results["lease_renewed_while_held"] = bool(renewed)
                results["other_seen_while_held"] = bool(other_seen)
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(repr(exc))
        finally:
            holding.set()
            connection.close()

    def flush() -> None:
        holding.wait()
        try:
            instances_seen([held.channel_name, other.channel_name])
            flushed.set()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatch), threading.Thread(target=flush)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=HOLD * 4)
    results["flush_finished"] = flushed.is_set()
    results["held_seen_after"] = bool(
        watch(
            "SELECT last_seen_at > %s FROM plugins_plugininstance WHERE id = %s",
            long_ago,
            held.pk,
        )
    )
    watcher.close()
    print(json.dumps(results))


if __name__ == "__main__":
    _child()
