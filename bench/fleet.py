"""Fleet benchmark (issue #3): the hub in production mode with N plugin
instances and M single-asset runs, and a client process SIGKILLed mid-run.

    .venv/bin/python bench/fleet.py               # 200 instances, 10,000 runs
    .venv/bin/python bench/fleet.py --quick       # 20 instances, 500 runs
    .venv/bin/python bench/fleet.py --json --profile 20   # + py-spy of the webs
    .venv/bin/python bench/fleet.py --instances 200 --runs 2000 --kill-at 0.1
    .venv/bin/python bench/fleet.py --runs 300 --deflate   # clients offer deflate

What it starts, each a subprocess killed in `finally`: a fresh PostgreSQL
database (127.0.0.1:5432, dropped at the end), Redis db 8 (flushed), `--webs`
uvicorn processes, one Celery worker with beat, and `--procs` client processes
(bench/fleet_client.py: hand-rolled Socket.IO frames over `websockets`)
holding the instances, split over the web processes; plus one *victim*
client process that takes jobs and never answers.
Runs are created through the JSON API (`POST /api/runs`, Bearer token) by
`--queuers` bench/fleet_queue.py processes (two by default, as issue 10 asks),
queuer q on web process q mod --webs, each with `--in-flight` requests open.

Printed: time to queue, completion time, runs/s, lost/duplicated items, hub
RSS per idle connection, and failover (kill → each held job received by
another instance), against 2 x HUB_PING_TIMEOUT_MS; with `--json` also one
JSON object as the last line. `--profile S` records S seconds of py-spy
(`PY_SPY`, default /tmp/pyspy/bin/py-spy) on each web process while runs are
created, as raw stacks in the temp dir (implies --keep).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import load_average, machine_facts, percentile, say  # noqa: E402
from _processes import (  # noqa: E402
    HUB_PYTHON,
    LOCALHOST,
    PG_URL,
    ROOT,
    Child,
    Processes,
    cpu_seconds,
    free_port,
    http_json,
    psql,
    wait_until,
)
from _servers import uvicorn_command  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/8"
PING_MS = 2000


def rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def read_events(path: Path) -> list[tuple[str, float, str, str]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 4:
            out.append((parts[0], float(parts[1]), parts[2], parts[3]))
    return out


def start_profiles(
    processes: Processes, pids: list[int], seconds: float, tmp: Path, *, gil: bool
) -> list[Child]:
    """py-spy on each web process for `seconds` (raw stacks, all threads, idle
    frames left out; with `gil` only the thread holding the GIL: where the CPU
    goes, not what waits), to find where the hub's time goes while runs are
    made."""
    if seconds <= 0:
        return []
    py_spy = os.environ.get("PY_SPY", "/tmp/pyspy/bin/py-spy")
    # --nonblocking: a paused web process falls behind its sockets.
    options = ["--duration", str(int(seconds)), "--rate", "200", "--threads"]
    options += ["--nonblocking"]
    options += ["--gil"] if gil else []
    return [
        processes.start(
            f"pyspy-web{n}",
            [py_spy, "record", "--pid", str(pid), *options, "--format", "raw"]
            + ["--output", str(tmp / f"pyspy-web{n}.txt")],
        )
        for n, pid in enumerate(pids)
    ]


def summary(figures: dict[str, object]) -> str:
    """The `--json` last line: what a reader compares between runs, the
    targets of issue 10 beside the figures (floats rounded, no NaN)."""
    keys = (
        "instances", "runs", "queuers", "in_flight", "runs_per_s", "queue_s",
        "total_s", "succeeded", "failed", "answered_twice", "not_answered",
        "held_at_kill", "failover_p50_s", "failover_max_s", "ping_timeout_s",
        "rss_kb_per_instance", "load", "hub_cpu_ms_per_run",
    )  # fmt: skip
    missing = [k for k in keys if k not in figures]
    if missing:
        raise KeyError(f"fleet summary lacks {missing}")
    out = {
        k: round(v, 3) if isinstance(v, float) else v
        for k, v in figures.items()
        if k in keys
    }
    out["targets_met"] = {
        "runs_per_s >= 300": figures["runs_per_s"] >= 300,  # type: ignore[operator]
        "0 lost": figures["failed"] == 0 and figures["not_answered"] == 0,
        "0 answered twice": figures["answered_twice"] == 0,
        "failover < 2x ping timeout": figures["failover_max_s"] is not None
        and figures["failover_max_s"] < 2 * figures["ping_timeout_s"],  # type: ignore[operator]
    }
    return json.dumps(out, allow_nan=False)


def main() -> None:  # noqa: C901, PLR0915 - one linear script
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--webs", type=int, default=2)
    parser.add_argument("--procs", type=int, default=3, help="answering processes")
    parser.add_argument("--victims", type=int, default=0, help="instances in victim")
    parser.add_argument("--kill-at", type=float, default=0.3, help="fraction done")
    # The victim's jobs time out after the plugin's 120 s (bench/hub_setup.py)
    # and, without retry_timeouts, fail: killed later, it measures no failover.
    parser.add_argument(
        "--kill-after", type=float, default=60, help="or seconds, if sooner"
    )
    parser.add_argument("--queuers", type=int, default=2, help="queue processes")
    parser.add_argument(
        "--in-flight", type=int, default=8, help="API requests open per queuer"
    )
    parser.add_argument("--json", action="store_true", help="last line: JSON")
    parser.add_argument(
        "--profile-gil",
        action="store_true",
        help="py-spy samples only the thread holding the GIL (CPU, not waits)",
    )
    parser.add_argument(
        "--profile", type=float, default=0, help="py-spy seconds on each web"
    )
    parser.add_argument("--ping-ms", type=int, default=PING_MS, help="interval=timeout")
    parser.add_argument(
        "--deflate",
        action="store_true",
        help="clients offer permessage-deflate (the SDK never does; costs memory)",
    )
    parser.add_argument("--quick", action="store_true", help="20 instances, 500 runs")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    if args.quick:
        args.instances, args.runs, args.procs = 20, 500, 2
    args.keep = args.keep or args.profile > 0
    victims = args.victims or max(2, args.instances // 10)
    answering = args.instances - victims
    say(f"machine: {machine_facts()}; load {load_average()}")

    import psycopg
    import redis

    tmp = Path(tempfile.mkdtemp(prefix="fleet-"))
    db_name = f"fleet_{uuid.uuid4().hex[:10]}"
    processes = Processes(tmp)
    line = ""
    db_created = False
    conn = None
    try:
        psql(f"CREATE DATABASE {db_name}")
        db_created = True
        redis.Redis.from_url(REDIS_URL).flushdb()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "plugins_app.settings",
            "DATABASE_URL": f"{PG_URL}/{db_name}",
            "REDIS_URL": REDIS_URL,
            "HUB_VAR_DIR": str(tmp / "var"),
            "DJANGO_SECRET_KEY": uuid.uuid4().hex * 2,
            "HUB_PING_INTERVAL_MS": str(args.ping_ms),
            "HUB_PING_TIMEOUT_MS": str(args.ping_ms),
            "HUB_SWEEP_SECONDS": "1",
            "HUB_METRICS_TOKEN": "bench-metrics-token",
            "PYTHONUNBUFFERED": "1",
        }
        for key in ("HUB_TEST_DB", "CELERY_TASK_ALWAYS_EAGER"):
            env.pop(key, None)
        setup = subprocess.run(
            [str(HUB_PYTHON), str(ROOT / "bench" / "hub_setup.py")],
            env=env,
            cwd=ROOT,
            capture_output=True,
            timeout=300,
            check=False,
        )
        if setup.returncode != 0:
            raise RuntimeError(f"setup failed:\n{setup.stderr.decode()[-3000:]}")
        info = json.loads(setup.stdout.decode().strip().splitlines()[-1])
        conn = psycopg.connect(f"{PG_URL}/{db_name}", autocommit=True)

        def one(sql: str, *params: object) -> object:
            row = conn.execute(sql, params).fetchone()
            return row[0] if row else None

        ports = [free_port() for _ in range(args.webs)]
        for n, port in enumerate(ports):
            processes.start(
                f"web{n}",
                uvicorn_command(
                    HUB_PYTHON,
                    "plugins_app.asgi:application",
                    port,
                    "--log-level",
                    "warning",
                ),
                env=env,
            )
        processes.start(
            "worker",
            [
                str(HUB_PYTHON), "-m", "celery", "-A", "plugins_app", "worker", "-B",
                "--pool", "solo", "--loglevel", "WARNING",
            ],
            env=env,
        )  # fmt: skip
        for port in ports:
            wait_until(
                lambda p=port: http_json(f"http://{LOCALHOST}:{p}/login/")[0] == 200,
                timeout=60,
                what="uvicorn",
                interval=0.2,
                processes=processes,
            )
        web_pids = processes.pids("web")
        time.sleep(2)
        rss_idle0 = rss_kb(web_pids)
        say(f"{args.webs} web process(es) up, RSS {rss_idle0 / 1024:.1f} MiB total")

        # --- connect the instances ------------------------------------------
        per_proc = [answering // args.procs] * args.procs
        per_proc[-1] += answering - sum(per_proc)
        groups = [(f"c{n}", count, False) for n, count in enumerate(per_proc)]
        groups.append(("victim", victims, True))
        t_connect = time.perf_counter()
        for n, (tag, count, hold) in enumerate(groups):
            cmd = [
                str(HUB_PYTHON), str(ROOT / "bench" / "fleet_client.py"),
                "--url", f"http://{LOCALHOST}:{ports[n % len(ports)]}",
                "--count", str(count), "--id", info["plugin_id"],
                "--secret", info["plugin_secret"], "--out", str(tmp / f"{tag}.txt"),
                "--tag", tag,
            ]  # fmt: skip
            cmd += ["--hold"] if hold else []
            processes.start(
                f"plug-{tag}", cmd + (["--deflate"] if args.deflate else [])
            )
        live_sql = (
            "SELECT count(*) FROM plugins_plugininstance WHERE disconnected_at IS NULL"
        )
        wait_until(
            lambda: one(live_sql) >= args.instances,
            timeout=120,
            what=f"{args.instances} instances",
            interval=0.2,
            processes=processes,
        )
        connect_s = time.perf_counter() - t_connect
        time.sleep(2 * args.ping_ms / 1000 + 1)  # a few idle ping cycles
        rss_idle_n = rss_kb(web_pids)
        per_conn_kb = (rss_idle_n - rss_idle0) / args.instances
        say(
            f"{args.instances} instances connected in {connect_s:.1f} s; web RSS "
            f"{rss_idle_n / 1024:.1f} MiB → {per_conn_kb:.1f} KB per idle instance"
        )
        load_idle = load_average()

        # --- queue the runs --------------------------------------------------
        hub_pids = web_pids + processes.pids("worker")
        cpu0 = cpu_seconds(hub_pids)
        t0 = time.time()
        queues = []
        for q in range(args.queuers):
            share = args.runs // args.queuers + (q < args.runs % args.queuers)
            queues.append(
                processes.start(
                    f"queue{q}",
                    [
                        str(HUB_PYTHON),
                        str(ROOT / "bench" / "fleet_queue.py"),
                        str(ports[q % len(ports)]),
                        info["token"],
                        str(info["plugin_pk"]),
                        str(info["project_id"]),
                        str(share),
                        str(q),
                        str(args.in_flight),
                        *info["external_ids"],
                    ],
                )  # fmt: skip
            )
        profiles = start_profiles(
            processes, web_pids, args.profile, tmp, gil=args.profile_gil
        )
        done_sql = "SELECT count(*) FROM runs_run WHERE finished_at IS NOT NULL"
        kill_time = None
        queued_s = None
        timeout = max(300, args.runs / 3)
        loads = []
        while True:
            if queued_s is None and all(q.proc.poll() is not None for q in queues):
                for q in queues:
                    if q.proc.returncode != 0:
                        raise RuntimeError("queueing failed:\n" + q.tail())
                queued_s = time.time() - t0
                say(f"queued {args.runs} runs in {queued_s:.1f} s")
            for child in processes.children:
                if child in queues or child in profiles:
                    continue
                if child.name == "plug-victim" and kill_time:
                    continue
                if child.proc.poll() is not None:
                    raise RuntimeError(f"{child.name} exited:\n{child.tail()}")
            done = one(done_sql)
            due = time.time() - t0 >= args.kill_after
            if kill_time is None and (done >= args.kill_at * args.runs or due):
                victim = next(c for c in processes.children if c.name == "plug-victim")
                victim.proc.send_signal(signal.SIGKILL)
                kill_time = time.time()
                victim.proc.wait()
                say(f"SIGKILLed the victim process ({victims} instances) at {done}")
            if done >= args.runs and queued_s is not None:
                break
            if time.time() - t0 > timeout:
                raise TimeoutError(f"only {done}/{args.runs} runs finished")
            loads.append(os.getloadavg()[0])
            time.sleep(0.2)
        total_s = time.time() - t0
        hub_cpu_ms = (cpu_seconds(hub_pids) - cpu0) / args.runs * 1000
        say(f"all {args.runs} runs finished {total_s:.1f} s after queueing began")

        # --- checks ----------------------------------------------------------
        statuses = dict(
            conn.execute("SELECT status, count(*) FROM runs_run GROUP BY 1").fetchall()
        )
        items = dict(
            conn.execute(
                "SELECT state, count(*) FROM runs_workitem GROUP BY 1"
            ).fetchall()
        )
        first, last = (
            conn.execute("SELECT min(created_at), max(finished_at) FROM runs_run")
            .fetchone()
        )  # fmt: skip
        hub_span = (last - first).total_seconds()
        answered: Counter[str] = Counter()
        received: Counter[str] = Counter()
        got_after_kill: dict[str, float] = {}
        for tag, _count, hold in groups:
            for kind, at, _inst, session in read_events(tmp / f"{tag}.txt"):
                if hold:
                    continue
                if kind == "A":
                    answered[session] += 1
                else:
                    received[session] += 1
                    if kill_time and at >= kill_time:
                        got_after_kill.setdefault(session, at)
                        got_after_kill[session] = min(got_after_kill[session], at)
        held = {s for k, _a, _i, s in read_events(tmp / "victim.txt") if k == "R"}
        twice = sum(1 for c in answered.values() if c > 1)
        done_sessions = {
            r[0]
            for r in conn.execute(
                "SELECT session FROM runs_workitem WHERE state = 'done'"
            ).fetchall()
        }
        answered_sessions = set(answered)
        failovers = sorted(
            got_after_kill[s] - kill_time for s in held if s in got_after_kill
        )
        never = [s for s in held if s not in got_after_kill]
        lease_sql = (
            "SELECT count(*) FROM runs_workitem w JOIN plugins_plugininstance i"
            " ON i.id = w.instance_id WHERE w.session = ANY(%s) AND w.attempts >= 2"
            " AND w.state = 'done'"
        )
        releas = one(lease_sql, list(held))
        logs = dict(
            conn.execute(
                "SELECT n, count(*) FROM (SELECT item_id, count(*) n FROM"
                " runs_runlogline WHERE item_id IS NOT NULL AND message ILIKE"
                " '%%stored%%' GROUP BY item_id) t GROUP BY n"
            ).fetchall()
        )
        rate = args.runs / total_s
        print()
        print(f"## Fleet: {args.instances} instances, {args.runs} runs")
        print(f"- web processes: {args.webs}; client processes: {args.procs} + victim")
        print(f"- connect {args.instances} instances: {connect_s:.1f} s")
        deflate = "with" if args.deflate else "without"
        print(
            f"- hub RSS per idle instance: {per_conn_kb:.1f} KB (target < 100 KB; "
            f"clients {deflate} permessage-deflate)"
        )
        print(
            f"- create {args.runs} runs (POST /api/runs from {args.queuers} "
            f"process(es), {args.in_flight} in flight each): {queued_s:.1f} s"
        )
        print(f"- all finished: {total_s:.1f} s after queueing began → {rate:.1f}/s")
        print(f"- hub timestamps first created → last finished: {hub_span:.1f} s")
        print(f"- hub CPU (webs + worker) per run: {hub_cpu_ms:.1f} ms")
        print(f"- run statuses: {statuses}; item states: {items}")
        print(
            f"- answered twice: {twice}; done items not answered by a client: "
            f"{len(done_sessions - answered_sessions)}; 'stored' log lines per "
            f"item: {logs or 'none match'}"
        )
        print(
            f"- victim held {len(held)} job(s) at the kill; re-received by another "
            f"instance: {len(failovers)}; never: {len(never)}; done on attempt ≥ 2: "
            f"{releas}"
        )
        if failovers:
            print(
                f"- failover kill → re-leased and received: min {failovers[0]:.2f} s,"
                f" p50 {percentile(failovers, 50):.2f} s, max {failovers[-1]:.2f} s"
                f" (target < {2 * args.ping_ms / 1000:.1f} s = 2 x ping timeout)"
            )
        print(
            f"- load 1m: idle {load_idle}; during the runs max "
            f"{max(loads or [0]):.2f}; now {load_average()}"
        )
        if args.json:
            line = summary(
                {
                    "instances": args.instances,
                    "runs": args.runs,
                    "queuers": args.queuers,
                    "in_flight": args.in_flight,
                    "runs_per_s": rate,
                    "queue_s": queued_s,
                    "total_s": total_s,
                    "succeeded": statuses.get("succeeded", 0),
                    "failed": args.runs - statuses.get("succeeded", 0),
                    "answered_twice": twice,
                    "not_answered": len(done_sessions - answered_sessions),
                    "held_at_kill": len(held),
                    "failover_p50_s": percentile(failovers, 50) if failovers else None,
                    "failover_max_s": failovers[-1] if failovers else None,
                    "ping_timeout_s": args.ping_ms / 1000,
                    "rss_kb_per_instance": per_conn_kb,
                    "load": max(loads or [0.0]),
                    "hub_cpu_ms_per_run": hub_cpu_ms,
                }
            )
    finally:
        if conn is not None:
            conn.close()
        processes.stop_all()
        if db_created:
            try:
                psql(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
            except subprocess.CalledProcessError as exc:
                print(f"could not drop {db_name}: {exc}", file=sys.stderr)
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if line:
        print(line, flush=True)  # last: a script reads the last line


if __name__ == "__main__":
    main()
