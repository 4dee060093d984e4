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
