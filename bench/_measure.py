"""The measuring side of the benchmarks: a minimal keep-alive HTTP/1.1 client,
a run-completion watcher on the hub's database, and statistics and output
(percentiles, tables, the `--json` summary, progress lines, machine facts)."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _processes import LOCALHOST

if TYPE_CHECKING:
    from _servers import Hub


# --- a minimal keep-alive HTTP/1.1 client ---------------------------------------
class HttpConn:
    """One keep-alive connection with tens of microseconds of client overhead per
    request, so the driver does not dominate a millisecond round trip."""

    def __init__(self, port: int, *, timeout: float = 30) -> None:
        self.port = port
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> HttpConn:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(LOCALHOST, self.port), self.timeout
        )
        return self

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await asyncio.wait_for(self.writer.wait_closed(), 2)
            except (TimeoutError, OSError):
                pass

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        return await asyncio.wait_for(
            self._request(method, path, body, headers or {}), self.timeout
        )

    async def _request(
        self, method: str, path: str, body: Any, headers: dict[str, str]
    ) -> tuple[int, Any]:
        assert self.reader is not None and self.writer is not None
        payload = b"" if body is None else json.dumps(body).encode()
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: {LOCALHOST}:{self.port}",
            "Connection: keep-alive",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        if body is not None:
            lines += [
                "Content-Type: application/json",
                f"Content-Length: {len(payload)}",
            ]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length, chunked = -1, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            data = b""
            for _ in range(100_000):
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                data += await self.reader.readexactly(size + 2)
                if size == 0:
                    break
            data = data[:-2]
        else:
            data = await self.reader.readexactly(max(length, 0))
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, data.decode(errors="replace")


# --- run completion, read from the hub's database --------------------------------
class RunWatcher:
    """Resolves a future when a run has `finished_at` in the hub's database
    (`Hub.connect()`). The hub is not asked anything: one indexed SELECT per
    poll, from this process (WAL readers never block the hub's writers)."""

    def __init__(self, conn: Any, *, interval: float = 0.001) -> None:
        self.interval = interval
        self.conn = conn
        self.waiting: dict[int, asyncio.Future[tuple[float, str]]] = {}
        self.task: asyncio.Task[None] | None = None

    def start(self) -> RunWatcher:
        self.task = asyncio.get_running_loop().create_task(self._poll())
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.conn.close()

    def finished(self, run_id: int) -> asyncio.Future[tuple[float, str]]:
        future = asyncio.get_running_loop().create_future()
        self.waiting[run_id] = future
        return future

    async def _poll(self) -> None:
        while True:
            if self.waiting:
                # Integer ids inlined: SQLite and psycopg differ in placeholders.
                ids = ",".join(str(int(i)) for i in self.waiting)
                rows = self.conn.execute(
                    f"SELECT id, status FROM runs_run WHERE id IN ({ids})"
                    " AND finished_at IS NOT NULL"
                ).fetchall()
                now = time.perf_counter()
                for run_id, status in rows:
                    future = self.waiting.pop(run_id)
                    if not future.done():
                        future.set_result((now, status))
            await asyncio.sleep(self.interval)


def db_times(hub: Hub, run_ids: Sequence[int]) -> dict[int, tuple[float, float, float]]:
    """{run id: (created_at, started_at, finished_at)} as unix times, for the
    finished runs among `run_ids` (the hub's own timestamps)."""
    out: dict[int, tuple[float, float, float]] = {}
    conn = hub.connect()
    try:
        for start in range(0, len(run_ids), 500):
            ids = ",".join(str(int(i)) for i in run_ids[start : start + 500])
            rows = conn.execute(
                "SELECT id, created_at, started_at, finished_at FROM runs_run"
                f" WHERE id IN ({ids}) AND finished_at IS NOT NULL"
            ).fetchall()
            out.update({i: (_ts(a), _ts(b), _ts(c)) for i, a, b, c in rows})
    finally:
        conn.close()
    return out


def _ts(value: str | datetime | None) -> float:
    if not value:
        return float("nan")
    if isinstance(value, datetime):  # psycopg: timezone-aware already
        return value.timestamp()
    return datetime.fromisoformat(value.replace(" ", "T")).timestamp()


# --- statistics and output -------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "| "
            + " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
            + " |"
        )
        if n == 0:
            lines.append(
                "|"
                + "|".join(
                    "-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)
                )
                + "|"
            )
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def json_summary(mode: str, cases: Sequence[dict[str, Any]]) -> str:
    """The one-line JSON summary `--json` prints last, for scripts and CI to
    compare runs: NaN becomes null (JSON has no NaN), floats keep 4 digits."""

    def clean(value: Any) -> Any:
        if isinstance(value, float):
            return None if value != value else round(value, 4)
        return value

    return json.dumps(
        {
            "mode": mode,
            "load": round(os.getloadavg()[0], 2),
            "cases": [{k: clean(v) for k, v in case.items()} for case in cases],
        },
        allow_nan=False,
    )


_T0 = time.monotonic()


def say(message: str) -> None:
    """A progress line with the seconds since the benchmark started."""
    print(f"[{time.monotonic() - _T0:6.1f} s] {message}", flush=True)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine_facts() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"nproc={os.cpu_count()} cpu={cpu} python={platform.python_version()} "
        f"({sys.executable})"
    )
