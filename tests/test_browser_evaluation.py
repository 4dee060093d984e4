"""The comparison pages in a real browser (Chromium, Playwright): the project's
form starts a comparison, the page follows its progress (htmx polling) until
the Celery task has computed it, then shows the table, the per-class SVG chart
and the assets by disagreement, whose links open the task."""

from __future__ import annotations

import re
from typing import Any

from plugins_app.evaluation.models import Comparison
from plugins_app.evaluation.tasks import compute_comparison
from plugins_app.runs.models import Run
from tests.test_browser import (  # noqa: F401 - pytest fixtures
    Tab,
    browser,
    expect,
    log_in,
    tab,
)
from tests.test_evaluation import two_reviewed_runs  # noqa: F401 - pytest fixture


def test_an_admin_compares_two_runs_from_the_browser(
    two_reviewed_runs: tuple[Run, Run],  # noqa: F811
    workspace: Any,
    live_hub: Any,
    tab: Tab,  # noqa: F811
) -> None:
    v1, v2 = two_reviewed_runs
    page = tab.page
    log_in(page, live_hub, "alice")
    page.goto(f"{live_hub.url}/projects/{workspace.project.pk}/")
    page.locator("#project-compare").click()
    page.locator(f"#run-{v1.pk}").check()
    page.locator(f"#run-{v2.pk}").check()
    page.get_by_role("button", name="Compare").click()

    # No worker in this test: the page waits, polling its progress.
    expect(page.locator("#comparison-progress")).to_contain_text("Pending")
    comparison = Comparison.objects.get()
    compute_comparison(comparison.pk)  # the Celery task's body, as a worker runs it

    # The poll sees it done and the page reloads with the figures.
    overall = page.locator("#comparison-overall")
    expect(overall).to_contain_text(f"#{v1.pk} det v1")
    expect(overall).to_contain_text(f"#{v2.pk} det v2")
    face = page.locator("#comparison-classes tbody tr").first
    expect(face).to_contain_text("Face")
    expect(face).to_contain_text("1.000")
    chart = page.locator('#comparison-charts svg[data-class="face-box"]')
    # P, R, F1, IoU and AP for each run, but v2 matched nothing: no IoU bar.
    expect(chart.locator("rect")).to_have_count(9)
    page.locator("#comparison-assets tbody tr a").first.click()
    # The asset with the reviewed face and both runs' drawn over it.
    expect(page.locator("#comparison-drawing svg rect.shape")).to_have_count(3)
    expect(page.locator("#comparison-legend")).to_contain_text("det v2")
    page.get_by_role("link", name="Task page").click()
    expect(page).to_have_url(
        re.compile(rf"/projects/{workspace.project.pk}/tasks/\d+/$")
    )
