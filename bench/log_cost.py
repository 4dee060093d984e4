"""What a plugin's log line costs the hub, in process, without sockets: storing
it (`logs.logs_ingest`, batches of 500 as the plugin socket flushes them) and
rendering it for a watcher (`fragments.run_update`, up to 2,000 lines a push).
Prints CPU microseconds per line for each, for lines without extras (what the
SDK sends for `logger.info(msg)`) and with a small flat `extra=`.

    .venv/bin/python bench/log_cost.py                # embedded (SQLite WAL)
    .venv/bin/python bench/log_cost.py --production   # PostgreSQL
    .venv/bin/python bench/log_cost.py --lines 20000 --json

The socket path around these (frames, the event loop, the watcher's socket) is
bench/logs.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _measure import load_average, say  # noqa: E402
from _processes import django_here, in_scratch_hub  # noqa: E402

CHANNEL = "bench!logs"
BATCH = 500  # the plugin socket's LOG_FLUSH_LINES
EXTRA = {"progress": 3, "total": 10, "model": "yolo-v8", "score": 0.91, "ok": True}


def measure(args: argparse.Namespace) -> dict[str, object]:
    """In the child process, with the database set up: the measurement."""
    django_here()
    from django.contrib.auth import get_user_model

    from plugins_app.plugins.models import Plugin, PluginInstance
    from plugins_app.runs.creation import RunRequest, run_create
    from plugins_app.runs.dispatch import dispatch_pending
    from plugins_app.runs.logs import PluginLogRecord, logs_ingest
    from plugins_app.runs.models import WorkItem
    from plugins_app.web.fragments import MAX_LINES_PER_PUSH, run_update
    from plugins_app.workspace.models import Project

    plugin = Plugin.objects.get(type="model")
    project = Project.objects.get(pk=plugin.projects.values_list("pk").first()[0])
    user = get_user_model().objects.get(username="admin")
    asset = project.assets.values_list("external_id", flat=True).first()
    PluginInstance.objects.create(plugin=plugin, channel_name=CHANNEL, address="b:1")
    result: dict[str, object] = {
        "mode": "production" if args.production else "embedded",
        "lines": args.lines,
    }
    for case, extra in (("plain", {}), ("extra", EXTRA)):
        run = run_create(
            RunRequest(
                plugin=plugin,
                project=project,
                user=user,
                class_mapping={"face": "face-box"},
                config_json="{}",
                external_ids=[asset],
                batch_ids=[],
            ),
            dispatch=False,
        )
        dispatch_pending(plugin.pk)
        session = WorkItem.objects.get(run=run).session
        records = [
            PluginLogRecord(session, "INFO", f"t={time.time():.6f} i={n}", dict(extra))
            for n in range(args.lines)
        ]
        cpu0 = time.process_time()
        for start in range(0, len(records), BATCH):
            logs_ingest(records[start : start + BATCH], channel_name=CHANNEL)
        store = time.process_time() - cpu0
        stored = run.log_lines.filter(level="INFO").count()
        assert stored == args.lines, f"{stored} of {args.lines} stored"
        cpu0 = time.process_time()
        cursor, shown, pushed = 0, None, 0
        while True:
            update = run_update(run.pk, after=cursor, status_shown=shown)
            pushed += update.html.count('class="log-line')
            cursor, shown = update.cursor, update.status_shown
            if not update.more:
                break
        render = time.process_time() - cpu0
        assert pushed >= args.lines, f"{pushed} of {args.lines} rendered"
        result[f"{case}_store_us_per_line"] = round(store / args.lines * 1e6, 1)
        result[f"{case}_render_us_per_line"] = round(render / args.lines * 1e6, 1)
        result[f"{case}_pushes"] = -(-args.lines // MAX_LINES_PER_PUSH)
    result["load"] = float(load_average().split()[0])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--production", action="store_true", help="PostgreSQL")
    parser.add_argument("--json", action="store_true", help="last line: JSON")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.lines = max(BATCH, min(args.lines, 200_000))
    if args.child:
        print(json.dumps(measure(args)))
        return
    child = ["--lines", str(args.lines), *(["--production"] if args.production else [])]
    result = in_scratch_hub(__file__, child, production=args.production)
    say(
        f"{result['mode']}, {result['lines']:,} lines: store "
        f"{result['plain_store_us_per_line']} µs/line plain, "
        f"{result['extra_store_us_per_line']} with extras; render "
        f"{result['plain_render_us_per_line']} / {result['extra_render_us_per_line']}"
        f" µs/line; load {result['load']}"
    )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
