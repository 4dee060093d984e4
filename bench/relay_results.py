"""`bench/relay.py`'s results: one run's timings, a row of the table, the
printed report and the `--json` last line (kept apart so relay.py is the
measuring alone)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from _measure import (
    db_times,
    json_summary,
    load_average,
    machine_facts,
    percentile,
    table,
)
from _servers import Hub


@dataclass
class Sample:
    t0: float  # wall clock when the create request was sent
    create: float  # seconds until the create request answered (hub only)
    done: float  # wall clock when completion was seen
    run_id: int = 0
    ok: bool = True

    @property
    def total(self) -> float:
        return self.done - self.t0


@dataclass
class Result:
    server: str
    plugins: int
    in_flight: int
    samples: list[Sample] = field(default_factory=list)
    elapsed: float = 0.0
    note: str = ""
    server_cpu: float = 0.0  # CPU seconds the server process used in the window
    plugin_cpu: float = 0.0  # the same, summed over the plugin processes
    load: float = 0.0  # 1-minute load average at the end of the window

    @property
    def ok_samples(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]

    def p(self, q: float) -> float:
        return percentile([s.total * 1000 for s in self.ok_samples], q)

    @property
    def rate(self) -> float:
        return len(self.ok_samples) / self.elapsed if self.elapsed else float("nan")

    def cpu_ms_per_run(self, seconds: float) -> float:
        runs = len(self.ok_samples)
        return seconds / runs * 1000 if runs else float("nan")

    @property
    def failures(self) -> int:
        return len(self.samples) - len(self.ok_samples)


def report(results: list[Result], hub: Hub, args: argparse.Namespace) -> None:
    print()
    print(f"machine: {machine_facts()}")
    print(f"bare relay stack: {args.bare_stack}; hub app: {args.hub_app}")
    print(f"load average at the end (1/5/15 min): {load_average()}")
    print(
        f"window: {args.duration:g} s per row after {args.warmup:g} s of warm-up"
        " (at least 1 run per client); latency = create request sent -> completion"
        " seen"
    )
    mode = f"production, {args.production} layer" if args.production else "embedded"
    print(f"hub mode: {mode}; completion resolution ~1 ms (database poll)")
    print("API-poll row: 2 ms + a GET")
    print()
    rows = [
        [
            r.server,
            r.plugins,
            r.in_flight,
            len(r.ok_samples),
            r.p(50),
            r.p(90),
            r.p(99),
            r.rate,
            percentile([s.create * 1000 for s in r.ok_samples], 50),
            r.cpu_ms_per_run(r.server_cpu),
            r.cpu_ms_per_run(r.plugin_cpu),
            r.failures,
            r.load,
        ]
        for r in results
    ]
    print(
        table(
            [
                "server",
                "plugins",
                "in flight",
                "runs",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "runs/s",
                "create p50 ms",
                "server CPU ms/run",
                "plugins CPU ms/run",
                "failed",
                "load 1m",
            ],
            rows,
        )
    )
    print()
    pairs = []
    by_key = {(r.server, r.plugins, r.in_flight): r for r in results}
    for (server, plugins, in_flight), hub_r in by_key.items():
        if server != "hub":
            continue
        bare_r = by_key[("bare", plugins, in_flight)]
        p50_ratio = hub_r.p(50) / bare_r.p(50)
        rate_ratio = hub_r.rate / bare_r.rate
        pairs.append(
            [
                plugins,
                in_flight,
                p50_ratio,
                hub_r.p(99) / bare_r.p(99),
                rate_ratio,
                "met" if p50_ratio <= 2 else "NOT met",
                "met" if rate_ratio >= 0.5 else "NOT met",
            ]
        )
    print(
        table(
            [
                "plugins",
                "in flight",
                "hub/bare p50",
                "hub/bare p99",
                "hub/bare runs/s",
                "p50 <= 2x",
                "runs/s >= 0.5x",
            ],
            pairs,
        )
    )
    print()
    split_rows = []
    for r in results:
        if r.server != "hub" or not r.ok_samples:
            continue
        times = db_times(hub, [s.run_id for s in r.ok_samples])
        pairs_t = [(s, times[s.run_id]) for s in r.ok_samples if s.run_id in times]

        def med(values: list[float]) -> float:
            return percentile([v * 1000 for v in values], 50)

        split_rows.append(
            [
                r.plugins,
                r.in_flight,
                med([s.create for s, _ in pairs_t]),
                med([c - s.t0 for s, (c, _, _) in pairs_t]),
                med([b - c for _, (c, b, _) in pairs_t]),
                med([f - b for _, (_, b, f) in pairs_t]),
                med([s.done - f for s, (_, _, f) in pairs_t]),
                r.p(50),
            ]
        )
    print(
        "hub time split, medians in ms (created/started/finished: the hub's own"
        " timestamps on the Run row):"
    )
    print(
        table(
            [
                "plugins",
                "in flight",
                "POST answered",
                "sent->created",
                "created->started",
                "started->finished",
                "finished->seen",
                "end to end",
            ],
            split_rows,
        )
    )


def json_cases(results: list[Result]) -> list[dict[str, object]]:
    """One case per (plugins, in flight): the hub beside the bare relay, for
    `--json` (the API-poll row is left out: it has no bare twin)."""
    by_key = {(r.server, r.plugins, r.in_flight): r for r in results}
    cases: list[dict[str, object]] = []
    for (server, plugins, in_flight), hub_r in by_key.items():
        bare_r = by_key.get(("bare", plugins, in_flight))
        if server != "hub" or bare_r is None:
            continue
        cases.append(
            {
                "plugins": plugins,
                "in_flight": in_flight,
                "hub_p50_ms": hub_r.p(50),
                "bare_p50_ms": bare_r.p(50),
                "p50_ratio": hub_r.p(50) / bare_r.p(50),
                "hub_runs_per_s": hub_r.rate,
                "bare_runs_per_s": bare_r.rate,
                "rate_ratio": hub_r.rate / bare_r.rate,
                "hub_p99_ms": hub_r.p(99),
                "bare_p99_ms": bare_r.p(99),
                "hub_cpu_ms_per_run": hub_r.cpu_ms_per_run(hub_r.server_cpu),
                "hub_failed": hub_r.failures,
                "load": hub_r.load,
            }
        )
    return cases


def summary_line(mode: str, results: list[Result]) -> str:
    """The `--json` last line: {"mode", "load", "cases": [...]}, mode being
    "embedded" or "production"."""
    return json_summary(mode, json_cases(results))
