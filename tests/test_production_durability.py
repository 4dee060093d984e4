"""Durability of the run core in production mode (PostgreSQL + Redis, two web
processes, a Celery worker with beat, real SDK plugins), issue 10's "Tests that
must exist":

- exactly once with 8 jobs in flight on two web processes, with answers racing
  cancels (sent through the other process) and the sweep (a 1 s deadline that
  the slower plugin's answers reach at about the same time as the sweep);
- each process kind (web, Celery worker, plugin) killed and started again in
  the middle of a burst: nothing lost, nothing applied twice afterwards.

"Applied" is counted by PostgreSQL itself (the trigger of
test_production_chaos: one row per UPDATE that leaves a task with a
pre-label), so an answer written twice shows whatever the hub logs. Skipped,
saying why, when PostgreSQL or Redis is not reachable."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hub import PluginProcess, wait_for
from tests.production import (
    Stack,
    model_plugin,
    needs_services,
    project_of,
    start_run,
    unlabeled_assets,
    wait_live,
)
from tests.test_production_chaos import COUNT_PRELABEL_WRITES

pytestmark = needs_services

FINAL = {"done", "failed", "cancelled", "skipped"}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    hub = Stack(tmp_path, webs=2, fast_pings=True)
    try:
        hub.start()
        hub.sql(COUNT_PRELABEL_WRITES)
        yield hub
    finally:
        hub.stop()


def _rows(hub: Stack, query: str) -> list[tuple[str, ...]]:
    return [tuple(r.split("|")) for r in hub.sql(query).splitlines() if r]


def _unfinished(hub: Stack) -> int:
    return int(hub.sql("SELECT count(*) FROM runs_run WHERE finished_at IS NULL"))


def _assert_each_item_final_and_applied_once(hub: Stack) -> dict[str, int]:
    """Every item in one final state; each done item's answer written exactly
    once (one trigger row and one 'stored' log line), nothing else written."""
    states = dict(
        _rows(hub, "SELECT state, count(*) FROM runs_workitem GROUP BY state")
    )
    assert set(states) <= FINAL, states
    done = set(
        _rows(
            hub,
            "SELECT t.id, w.run_id FROM runs_workitem w JOIN workspace_task t"
            " ON t.asset_id = w.asset_id WHERE w.state = 'done'",
        )
    )
    writes = _rows(hub, "SELECT task_id, run_id FROM chaos_prelabel_write")
    assert sorted(writes) == sorted(done), (writes, done, hub.logs())
    stored = _rows(
        hub,
        "SELECT item_id, count(*) FROM runs_runlogline WHERE level = 'HUB'"
        " AND message LIKE '%: stored %' GROUP BY item_id",
    )
    assert {n for _, n in stored} <= {"1"}, stored
    assert len(stored) == len(done), (stored, done)
    return {state: int(n) for state, n in states.items()}


def test_every_item_ends_once_with_8_in_flight_racing_cancels_and_sweeps(
    stack: Stack, tmp_path: Path
) -> None:
    hub = stack
    api = {"a": hub.api("a"), "b": hub.api("b")}
    plugin = model_plugin(api["a"])
    # Deadlines of 1 s, and answers after 1.2-1.7 s: each answer races the
    # sweep (every second) that times its job out, and either may come first
    # (an answer arriving late, before the sweep, is still taken). A timed
    # out job fails, or goes again if its run retries time-outs.
    hub.sql(f"UPDATE plugins_plugin SET timeout_seconds = 1 WHERE id = {plugin['id']}")
    for web, sleep in (("a", "1.2"), ("b", "1.7")):
        (tmp_path / web).mkdir()
        hub.connect_plugin(
            web,
            tmp_path / web,
            env={"ECHO_MODE": "slow", "ECHO_SLEEP": sleep},
            concurrency=4,
        )
    wait_live(api["a"], plugin["id"], 2)
    assets = unlabeled_assets(hub, api["a"], plugin["id"])[:16]
    assert len(assets) >= 12, assets

    def create(via: str, *external_ids: str, retry: bool = False) -> int:
        created = api[via].post(
            "/api/runs",
            json={
                "plugin_id": plugin["id"],
                "project_id": project_of(api[via], plugin["id"]),
                "class_mapping": {"face": "face-box"},
                "external_ids": list(external_ids),
                "retry_timeouts": retry,
            },
        )
        assert created.status_code == 201, created.text
        return int(created.json()["id"])

    def cancel(via: str, run_id: int) -> dict[str, object]:
        response = api[via].post(f"/api/runs/{run_id}/cancel")
        assert response.status_code == 200, response.text
        return dict(response.json())

    # 12-16 items (no two runs on one task, so the trigger's rows name their
    # item), created through both processes: two runs of four, which fill the
    # 8 slots, then single-asset runs; half of all retry their time-outs.
    fours = [create("a", *assets[0:4], retry=True), create("b", *assets[4:8])]
    singles = []
    cancels: dict[int, dict[str, object]] = {}
    for n, asset in enumerate(assets[8:]):
        singles.append(create("ab"[n % 2], asset, retry=n % 4 < 2))
        if n >= 2:
            # Cancelled through the other process, racing dispatch and answers.
            cancels[singles[-1]] = cancel("ba"[n % 2], singles[-1])
    wait_for(
        lambda: (
            hub.sql(
                "SELECT count(*) FROM runs_workitem WHERE state != 'pending'"
                " AND state != 'leased'"
            )
            != "0"
        ),
        timeout=30,
        what="a first item to end",
    )
    cancels[fours[0]] = cancel("b", fours[0])

    wait_for(lambda: _unfinished(hub) == 0, timeout=60, what="every run to end")
    states = _assert_each_item_final_and_applied_once(hub)
    assert sum(states.values()) == len(assets), states
    # A cancel that took effect is final: no answer was applied after it.
    assert "cancelled" in {c["status"] for c in cancels.values()}, cancels
    for run_id, at_cancel in cancels.items():
        run = api["a"].get(f"/api/runs/{run_id}").json()
        assert run["status"] == at_cancel["status"], (run, at_cancel)
        if at_cancel["status"] == "cancelled":
            assert run["items_done"] == at_cancel["items_done"], (run, at_cancel)


def _kill(process: PluginProcess) -> None:
    process.proc.send_signal(signal.SIGKILL)
    process.proc.wait(timeout=10)


def test_nothing_is_lost_or_applied_twice_when_each_process_kind_restarts_mid_burst(
    stack: Stack, tmp_path: Path
) -> None:
    hub = stack
    api = hub.api("b")
    plugin = model_plugin(api)
    slow = {"ECHO_MODE": "slow", "ECHO_SLEEP": "0.5"}
    plugins: dict[str, PluginProcess] = {}
    for web in ("a", "b"):
        (tmp_path / web).mkdir()
        plugins[web] = hub.connect_plugin(
            web, tmp_path / web, env=slow, forever=True, concurrency=2
        )
    wait_live(api, plugin["id"], 2)
    assets = unlabeled_assets(hub, api, plugin["id"])[:15]
    assert len(assets) >= 12, assets
    waves = [assets[0:5], assets[5:10], assets[10:]]
    runs: list[int] = []

    def burst(wave: list[str]) -> None:
        runs.extend(start_run(api, plugin["id"], a) for a in wave)

    def some_done_and_some_held() -> bool:
        counts = dict(
            _rows(hub, "SELECT state, count(*) FROM runs_workitem GROUP BY state")
        )
        return int(counts.get("done", 0)) >= len(runs) // 3 and "leased" in counts

    # 1. The Celery worker (and its beat: the sweep) dies and comes back.
    burst(waves[0])
    wait_for(some_done_and_some_held, timeout=30, what="the first wave in flight")
    assert hub.worker is not None
    _kill(hub.worker)
    burst(waves[1])
    hub.start_worker()
    # 2. Web process a dies with its plugin's jobs in hand; its plugin's
    # supervisor reconnects once it is back.
    wait_for(some_done_and_some_held, timeout=30, what="the second wave in flight")
    _kill(hub.webs["a"])
    burst(waves[2])
    hub.spawn_web("a")
    hub.wait_web("a")
    # 3. The plugin on b dies (script and supervisor) and a new one starts.
    wait_for(some_done_and_some_held, timeout=30, what="the third wave in flight")
    plugins["b"].stop()
    (tmp_path / "b2").mkdir()
    hub.connect_plugin("b", tmp_path / "b2", env=slow, forever=True, concurrency=2)

    wait_for(lambda: _unfinished(hub) == 0, timeout=60, what="every run to end")
    statuses = {s for _, s in _rows(hub, "SELECT id, status FROM runs_run")}
    assert statuses == {"succeeded"}, (statuses, hub.logs())
    states = _assert_each_item_final_and_applied_once(hub)
    assert states == {"done": len(runs)} == {"done": len(assets)}, states
