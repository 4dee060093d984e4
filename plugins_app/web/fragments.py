"""Fragments pushed to run pages over websockets; the same named partials the
page itself renders, so a reload and a live update look identical."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.template.loader import render_to_string
from django.utils.html import format_html
from django.utils.safestring import SafeString

from plugins_app.exports.uploads import run_files
from plugins_app.runs.gallery import run_gallery
from plugins_app.runs.models import Run, RunLogLine
from plugins_app.runs.selectors import RunProgress, progress_of, run_progress
from plugins_app.web.log_extras import LogRow, log_rows_html
from plugins_app.web.watch_reads import watched_run

MAX_LINES_PER_PUSH = 2000


def render_run_status(run: Run) -> str:
    return _render_live(_live_context(run)) + _render_gallery(_gallery_context(run))


# A watcher's status comes in two fragments, each sent only when what it shows
# changed: the live status (state, progress, items, export files), and the
# gallery of what the run wrote. The gallery reads the run's answers from the
# history (several queries per entry), so it comes second, in a frame of its
# own: a watcher sees "Succeeded" without waiting for it. And it is only read
# when the live status changed, for only a finished item changes it (a log
# burst pushes many times a second and never touches it).
def _live_context(run: Run, progress: RunProgress | None = None) -> dict[str, Any]:
    return {
        "run": run,
        "progress": run_progress(run) if progress is None else progress,
        "export_files": run_files(run),
        "oob": True,
    }


def _gallery_context(run: Run) -> dict[str, Any]:
    # Page 1 of the gallery: a watcher on another page keeps it (its section
    # has another id, so the out-of-band swap finds no target).
    return {"run": run, "gallery": run_gallery(run), "oob": True}


def _render_live(context: dict[str, Any]) -> str:
    return render_to_string("runs/run_detail.html#run-live", context)


def _render_gallery(context: dict[str, Any]) -> str:
    return render_to_string("runs/run_detail.html#run-gallery", context)


def _live_key(context: dict[str, Any]) -> tuple[object, ...]:
    """Everything the live status shows, to compare with what a watcher was
    last sent. Reading it costs the queries, not the rendering."""
    run: Run = context["run"]
    return (
        tuple(getattr(run, f.attname) for f in Run._meta.concrete_fields),
        run.plugin.type,
        run.project.name,
        run.created_by.get_username() if run.created_by else None,
        # The duration of a running run counts on by the clock: shown anew at
        # most once a second, not on every push of a log burst.
        None if run.finished_at else int(run.duration_seconds or 0),
        context["progress"],
        tuple((f.pk, f.name, f.size, f.uploaded_at) for f in context["export_files"]),
    )


def _gallery_key(context: dict[str, Any]) -> tuple[object, ...]:
    gallery = context["gallery"]
    return (
        gallery.page.paginator.count,
        tuple(
            (
                e.asset.pk,
                e.asset.external_id,
                e.asset.width,
                e.asset.height,
                e.outcome,
                e.reason,
                e.since,
                repr(e.shapes),
                tuple(e.classifications),
                e.total_objects,
            )
            for e in gallery.entries
        ),
    )


def log_lines_html(lines: Iterable[RunLogLine]) -> SafeString:
    """The log rows of a run page (the page's own render; pushes read rows)."""
    return log_rows_html(
        (line.pk, line.level, line.created_at, line.message, line.extra)
        for line in lines
    )


def render_log_lines(rows: list[LogRow]) -> str:
    return format_html(
        '<div id="run-log" hx-swap-oob="beforeend">{}</div>', log_rows_html(rows)
    )


def render_run_updates(run_id: int, *, after: int) -> tuple[str, int, bool]:
    """The run's status and its log lines after `after` (the watcher's cursor);
    returns the HTML, the new cursor, and whether more lines are waiting."""
    update = run_update(run_id, after=after, status_shown=None)
    html = update.html + gallery_update(run_id, shown=None)[0]
    return html, update.cursor, update.more


@dataclass(frozen=True)
class RunUpdate:
    html: str  # empty when nothing changed
    cursor: int  # the last log line sent
    more: bool  # more lines are waiting past the cursor
    status_shown: object  # pass back to the next run_update
    status_changed: bool  # the live status was sent: look at the gallery next


def run_update(run_id: int, *, after: int, status_shown: object) -> RunUpdate:
    """What a watcher sends next: the log lines after its cursor `after`, and the
    live status only when what it shows differs from `status_shown` (the
    previous update's): a log burst pushes many times a second, and re-rendering
    an unchanged status each time cost 8-10 ms of the one database thread."""
    # The run, its lines and its items in one round trip (web/watch_reads.py).
    # Rows, not model instances: building 2,000 RunLogLines cost more than
    # reading and rendering their values.
    run, lines, items = watched_run(run_id, after=after, limit=MAX_LINES_PER_PUSH)
    context = _live_context(run, progress_of(run, items))
    status = _live_key(context)
    changed = status != status_shown
    html = _render_live(context) if changed else ""
    if lines:
        html += render_log_lines(lines)
    cursor = lines[-1][0] if lines else after
    return RunUpdate(html, cursor, len(lines) == MAX_LINES_PER_PUSH, status, changed)


def gallery_update(run_id: int, *, shown: object) -> tuple[str, object]:
    """The gallery fragment when it differs from `shown` (else ""), and what to
    pass back next time."""
    run = Run.objects.get(pk=run_id)
    context = _gallery_context(run)
    key = _gallery_key(context)
    return ("" if key == shown else _render_gallery(context)), key
