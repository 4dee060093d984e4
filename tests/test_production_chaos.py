"""Chaos in production mode: every hub process (both web processes and the
Celery worker with beat) SIGKILLed at once in the middle of runs, then started
again. Real SDK plugins under examples/run_forever.sh reconnect, and every
unfinished item is completed exactly once.

"Exactly once" is counted by PostgreSQL itself: a trigger records every write
of a pre-label to a task, so a result applied twice shows as two rows whatever
the hub logs. Skipped, saying why, when PostgreSQL or Redis is not reachable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hub import PluginProcess, wait_for
from tests.production import (
    Stack,
    model_plugin,
    needs_services,
    start_run,
    unlabeled_assets,
    wait_live,
)

pytestmark = needs_services

# Every UPDATE of a task that leaves a pre-label, one row each.
COUNT_PRELABEL_WRITES = """
CREATE TABLE chaos_prelabel_write (task_id bigint, run_id bigint);
CREATE FUNCTION chaos_count_prelabel() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO chaos_prelabel_write VALUES (NEW.id, NEW.prelabel_run_id);
  RETURN NEW;
END $$;
CREATE TRIGGER chaos_prelabel AFTER UPDATE ON workspace_task FOR EACH ROW
  WHEN (NEW.prelabel_run_id IS NOT NULL) EXECUTE FUNCTION chaos_count_prelabel();
"""
SLOW = {"ECHO_MODE": "slow", "ECHO_SLEEP": "1.5"}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    hub = Stack(tmp_path, webs=2, fast_pings=True)
    try:
        hub.start()
        hub.sql(COUNT_PRELABEL_WRITES)
        yield hub
    finally:
        hub.stop()


def _item_states(hub: Stack) -> dict[str, int]:
    rows = hub.sql("SELECT state, count(*) FROM runs_workitem GROUP BY state")
    return {s: int(n) for s, n in (r.split("|") for r in rows.splitlines())}


def test_it_completes_every_item_once_after_every_hub_process_is_killed(
    stack: Stack, tmp_path: Path
) -> None:
    hub = stack
    api = hub.api()
    plugin = model_plugin(api)
    # One plugin script per web process, each under the restart policy the
    # README asks for, each taking two jobs at a time.
    plugins: list[PluginProcess] = [
        hub.connect_plugin(web, tmp_path, env=SLOW, forever=True, concurrency=2)
        for web in ("a", "b")
    ]
    wait_live(api, plugin["id"], 2)
    assets = unlabeled_assets(hub, api, plugin["id"])
    batch, singles = assets[:10], assets[10:16]
    run_ids = [start_run(api, plugin["id"], *batch)]
    run_ids += [start_run(api, plugin["id"], a) for a in singles]
    total = len(batch) + len(singles)

    def in_hands() -> int:
        """Jobs the plugins took whose answers are not stored yet."""
        taken = sum(len(p.handled()) for p in plugins)
        return taken - _item_states(hub).get("done", 0)

    wait_for(
        lambda: _item_states(hub).get("done", 0) >= 3 and in_hands() > 0,
        timeout=30,
        what="a few items done and more in the plugins' hands",
    )
    hub.kill_hub()
    at_kill = _item_states(hub)
    assert at_kill.get("leased") and at_kill.get("pending"), at_kill
    hub.start_hub()

    wait_for(
        lambda: (
            int(hub.sql("SELECT count(*) FROM runs_run WHERE finished_at IS NULL")) == 0
        ),
        timeout=90,
        what=f"every run to finish after the restart (killed at {at_kill})",
    )
    statuses = hub.sql("SELECT DISTINCT status FROM runs_run").split()
    assert statuses == ["succeeded"], (statuses, hub.logs())
    assert _item_states(hub) == {"done": total}
    # Each result applied exactly once: one pre-label write per (task, run),
    # counted by the database, and one "stored" line per item in the run logs.
    writes = hub.sql(
        "SELECT count(*), count(DISTINCT (task_id, run_id)) FROM chaos_prelabel_write"
    )
    assert writes == f"{total}|{total}", writes
    stored = hub.sql(
        "SELECT count(*), count(DISTINCT item_id) FROM runs_runlogline"
        " WHERE level = 'HUB' AND message LIKE '%stored%'"
    )
    assert stored == f"{total}|{total}", stored
    # The kill interrupted jobs in the plugins' hands: they were sent again.
    retried = int(hub.sql("SELECT count(*) FROM runs_workitem WHERE attempts >= 2"))
    assert retried >= at_kill["leased"], retried
    sessions = [s for p in plugins for s in p.handled()]
    assert len(set(sessions)) == total and len(sessions) > total
    # The SDK exited when its connection dropped; the supervisor restarted it.
    for process in plugins:
        assert "restarting in" in process.log(), process.log()[-2000:]
