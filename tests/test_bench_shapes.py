"""The `--json` last lines of the benchmarks have the shape issue 10 fixes, so
that scripts and CI can compare runs. No benchmark is run: the functions that
build each line are fed made-up measurements and their output is parsed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import fleet  # noqa: E402
import logs  # noqa: E402
import model_run  # noqa: E402
import relay  # noqa: E402

# Issue 10 §1: each case of `bench/relay.py --json` and of `bench/logs.py --json`.
RELAY_KEYS = {
    "plugins", "in_flight", "hub_p50_ms", "bare_p50_ms", "p50_ratio",
    "hub_runs_per_s", "bare_runs_per_s", "rate_ratio",
}  # fmt: skip
LOGS_KEYS = {
    "hub_lines_per_s", "bare_lines_per_s", "lost", "hub_delay_p99_s",
    "bare_delay_p99_s",
}  # fmt: skip


def relay_result(server: str, plugins: int, in_flight: int, ms: float) -> Any:
    """`count` runs of `ms` each, one after another over 1 s of window."""
    count = 10
    samples = [
        relay.Sample(t0=n * 0.1, create=0.001, done=n * 0.1 + ms / 1000, run_id=n)
        for n in range(count)
    ]
    return relay.Result(server, plugins, in_flight, samples, elapsed=1.0)


def parse(line: str) -> dict[str, Any]:
    assert "\n" not in line, "one line"
    data = json.loads(line)
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("mode", ["embedded", "production"])
def test_relay_json_line_has_the_issue_keys_per_case(mode: str) -> None:
    results = []
    for plugins in (1, 4):
        for in_flight in (1, 8):
            results.append(relay_result("bare", plugins, in_flight, 2.0))
            results.append(relay_result("hub", plugins, in_flight, 6.0))
    # The API-poll row has no bare twin: it is not a case.
    results.append(relay.Result("hub", 1, 2, [], elapsed=1.0, note="api-poll"))

    data = parse(relay.summary_line(mode, results))

    assert data["mode"] == mode
    assert isinstance(data["load"], int | float)
    cases = data["cases"]
    assert [(c["plugins"], c["in_flight"]) for c in cases] == [
        (1, 1),
        (1, 8),
        (4, 1),
        (4, 8),
    ]
    for case in cases:
        assert RELAY_KEYS <= case.keys()
        assert case["hub_p50_ms"] == pytest.approx(6.0)
        assert case["bare_p50_ms"] == pytest.approx(2.0)
        assert case["p50_ratio"] == pytest.approx(3.0)
        assert case["hub_runs_per_s"] == pytest.approx(10.0)
        assert case["rate_ratio"] == pytest.approx(1.0)


def test_relay_json_line_writes_a_case_with_no_runs_as_null() -> None:
    """JSON has no NaN: a row that finished no run gives null, and the line
    still parses."""
    results = [
        relay_result("bare", 1, 1, 2.0),
        relay.Result("hub", 1, 1, [], elapsed=1.0),
    ]
    (case,) = parse(relay.summary_line("embedded", results))["cases"]
    assert case["hub_p50_ms"] is None
    assert case["p50_ratio"] is None
    assert case["hub_runs_per_s"] == 0


def logs_trial(server: str, delay_s: float) -> Any:
    lines = 100
    trial = logs.Trial(server, lines)
    trial.sent = {i: 1000.0 + i / 1000 for i in range(lines)}
    trial.received = {i: t + delay_s for i, t in trial.sent.items()}
    trial.stored = lines - (1 if server == "hub" else 0)
    trial.all_stored_at = 1000.0 + 0.2
    trial.server_cpu = 0.01
    return trial


def test_logs_json_line_has_the_issue_keys_per_trial() -> None:
    trials = [logs_trial("bare", 0.010), logs_trial("hub", 0.030)] * 2

    data = parse(logs.summary_line(trials))

    assert data["mode"] == "embedded"
    assert isinstance(data["load"], int | float)
    assert len(data["cases"]) == 2
    for case in data["cases"]:
        assert LOGS_KEYS <= case.keys()
        assert case["lost"] == 1
        assert case["hub_lines_per_s"] == pytest.approx(99 / 0.2)
        assert case["bare_lines_per_s"] == pytest.approx(100 / 0.2)
        assert case["hub_delay_p99_s"] == pytest.approx(0.030)
        assert case["bare_delay_p99_s"] == pytest.approx(0.010)


def fleet_figures(**changes: Any) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "instances": 200, "runs": 10_000, "queuers": 2, "in_flight": 8,
        "runs_per_s": 310.0, "queue_s": 30.0, "total_s": 32.2,
        "succeeded": 10_000, "failed": 0, "answered_twice": 0,
        "not_answered": 0, "held_at_kill": 20, "failover_p50_s": 0.5,
        "failover_max_s": 1.5, "ping_timeout_s": 2.0,
        "rss_kb_per_instance": 60.0, "load": 1.5, "hub_cpu_ms_per_run": 9.0,
    }  # fmt: skip
    return figures | changes


def test_fleet_json_line_judges_each_target() -> None:
    data = parse(fleet.summary(fleet_figures()))
    assert data["runs_per_s"] == 310.0
    assert all(data["targets_met"].values())

    missed = parse(
        fleet.summary(
            fleet_figures(runs_per_s=40.0, answered_twice=1, failover_max_s=4.0)
        )
    )["targets_met"]
    assert missed == {
        "runs_per_s >= 300": False,
        "0 lost": True,
        "0 answered twice": False,
        "failover < 2x ping timeout": False,
    }
    lost = parse(fleet.summary(fleet_figures(failed=3)))["targets_met"]
    assert lost["0 lost"] is False
    # No job held at the kill: no failover measured, so not met.
    none = parse(fleet.summary(fleet_figures(failover_max_s=None)))["targets_met"]
    assert none["failover < 2x ping timeout"] is False


def test_fleet_json_line_refuses_a_missing_figure() -> None:
    figures = fleet_figures()
    del figures["answered_twice"]
    with pytest.raises(KeyError, match="answered_twice"):
        fleet.summary(figures)


def test_model_run_json_line_gives_the_rate_ratio() -> None:
    trial = {"assets": 1000, "hub_s": 4.0, "bare_s": 2.0, "hub_cpu_s": 3.0}
    data = parse(model_run.summary("embedded", 4, [trial | {"load": 2.5}]))

    assert data["mode"] == "embedded"
    (case,) = data["cases"]
    assert case["plugins"] == 4
    assert case["hub_assets_per_s"] == 250.0
    assert case["bare_assets_per_s"] == 500.0
    assert case["rate_ratio"] == 0.5
    assert case["hub_cpu_ms_per_asset"] == 3.0
