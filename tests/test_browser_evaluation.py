"""The comparison pages in a real browser (Chromium, Playwright): the project's
form starts a comparison, the page follows its progress (htmx polling) until
the Celery task has computed it, then shows the table, the per-class SVG chart
and the assets by disagreement, whose links open the comparison canvas: each
layer (reviewed, each run) drawn in its colour, toggled, objects' matches."""

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

    # The comparison canvas: the reviewed face and both runs' drawn by
    # Annotorious, one layer and colour each.
    canvas = page.locator("#comparison-canvas")
    expect(canvas).to_have_attribute("data-ready", "true")
    drawn = canvas.locator(".a9s-annotation")
    for layer in ("reviewed", "run0", "run1"):
        shapes = canvas.locator(f'.a9s-annotation[data-id^="{layer}-"]')
        expect(shapes).to_have_count(1)
    expect(drawn).to_have_count(3)
    for colour in ("#212529", "#0072b2", "#e69f00"):  # reviewed, v1, v2
        stroked = canvas.locator(f'.a9s-annotation [style*="stroke:{colour}"]')
        expect(stroked).not_to_have_count(0)
    expect(page.locator("#comparison-legend")).to_contain_text("det v2")

    # v2's box, far from the face (the canvas's own coordinates: the image is
    # scaled to the page), selected: a false positive.
    image = page.locator("#comparison-image").bounding_box()
    assert image is not None
    natural = float(page.locator("#comparison-image").get_attribute("width") or 1)
    scale = image["width"] / natural
    page.mouse.click(image["x"] + 120 * scale, image["y"] + 120 * scale)
    selected = page.locator("#comparison-selected")
    expect(selected).to_be_visible()
    expect(selected).to_contain_text("det v2")
    expect(page.locator("#comparison-selected-matches")).to_contain_text("FP")

    # Hiding v2's layer takes its box off the image; showing it brings it back.
    page.locator('[data-layer-toggle="run1"]').uncheck()
    expect(canvas.locator('.a9s-annotation[data-id^="run1-"]')).to_have_count(0)
    expect(drawn).to_have_count(2)
    page.locator('[data-layer-toggle="run1"]').check()
    expect(drawn).to_have_count(3)

    # The reviewed face (v1's, in the same place, hidden so the click takes
    # the reviewed one): matched by v1 (TP, IoU 1), missed by v2 (FN).
    page.locator('[data-layer-toggle="run0"]').uncheck()
    page.mouse.click(image["x"] + 30 * scale, image["y"] + 30 * scale)
    matches = page.locator("#comparison-selected-matches")
    expect(page.locator("#comparison-selected-layer")).to_have_text("Reviewed answer")
    expect(matches).to_contain_text("TP")
    expect(matches).to_contain_text("IoU 1.000")
    expect(matches).to_contain_text(f"missed by #{v2.pk} det v2")

    # Next asset in the list by disagreement (n), then the task page.
    first_url = page.url
    page.keyboard.press("n")
    expect(page).not_to_have_url(first_url)
    expect(page.locator("#comparison-position")).to_contain_text("2 in the list")
    expect(page.locator("#comparison-canvas .a9s-annotation")).to_have_count(3)
    page.get_by_role("link", name="Task page").click()
    expect(page).to_have_url(
        re.compile(rf"/projects/{workspace.project.pk}/tasks/\d+/$")
    )
