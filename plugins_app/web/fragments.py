"""Fragments pushed to run pages over websockets; the same named partials the
page itself renders, so a reload and a live update look identical."""

from __future__ import annotations

from collections.abc import Iterable

from django.template.loader import render_to_string
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from plugins_app.exports.services import run_files
from plugins_app.runs.models import Run, RunLogLine
from plugins_app.runs.selectors import run_labeled_assets, run_progress

MAX_LINES_PER_PUSH = 2000
from plugins_app.web.log_extras import extras_html


def render_run_status(run: Run) -> str:
    context = {
        "run": run,
        "progress": run_progress(run),
        "labeled_assets": run_labeled_assets(run),
        "export_files": run_files(run),
        "oob": True,
    }
    return render_to_string("runs/run_detail.html#run-live", context) + (
        render_to_string("runs/run_detail.html#run-assets", context)
    )


def log_lines_html(lines: Iterable[RunLogLine]) -> SafeString:
    """The log rows of a run page. Plain format_html, not a template include per
    line: a busy plugin logs thousands of lines a second."""
    return format_html_join("", LOG_LINE, (_log_line_args(line) for line in lines))


LOG_LINE = (
    '<div class="log-line level-{}" data-id="{}"><time>{}</time>'
    '<span class="lvl">{}</span><span class="msg">{}</span>{}</div>'
)


def _log_line_args(line: RunLogLine) -> tuple[object, ...]:
    return (
        line.level.lower(),
        line.pk,
        line.created_at.strftime("%H:%M:%S.%f")[:12],
        line.level,
        line.message,
        extras_html(line.extra),
    )


def render_log_lines(lines: list[RunLogLine]) -> str:
    return format_html(
        '<div id="run-log" hx-swap-oob="beforeend">{}</div>', log_lines_html(lines)
    )


def render_run_updates(run_id: int, *, after: int) -> tuple[str, int, bool]:
    """The run's status and its log lines after `after` (the watcher's cursor);
    returns the HTML, the new cursor, and whether more lines are waiting."""
    run = Run.objects.select_related("plugin", "project", "created_by").get(pk=run_id)
    lines = list(run.log_lines.filter(id__gt=after)[:MAX_LINES_PER_PUSH])
    html = render_run_status(run)
    if lines:
        html += render_log_lines(lines)
    cursor = lines[-1].pk if lines else after
    return html, cursor, len(lines) == MAX_LINES_PER_PUSH
