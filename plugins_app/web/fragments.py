"""Fragments pushed to run pages over websockets; the same named partials the
page itself renders, so a reload and a live update look identical."""

from __future__ import annotations

from django.template.loader import render_to_string

from plugins_app.runs.models import Run, RunLogLine
from plugins_app.runs.selectors import run_labeled_assets, run_progress


def render_run_status(run: Run) -> str:
    context = {"run": run, "progress": run_progress(run), "oob": True}
    html = render_to_string("runs/run_detail.html#run-live", context)
    context["labeled_assets"] = run_labeled_assets(run)
    return html + render_to_string("runs/run_detail.html#run-assets", context)


def render_log_lines(lines: list[RunLogLine]) -> str:
    return render_to_string("runs/run_detail.html#log-append", {"lines": lines})


def render_catch_up(run_id: int, *, after: int) -> str:
    """The run's current state and the log lines after `after`, for a page that
    just subscribed."""
    run = Run.objects.select_related("plugin", "project", "created_by").get(pk=run_id)
    html = render_run_status(run)
    lines = list(run.log_lines.filter(id__gt=after))
    return html + render_log_lines(lines) if lines else html
