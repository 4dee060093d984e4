"""The review canvas in a real browser (Chromium, Playwright, the vendored
Annotorious): a labeler corrects a plugin's pre-label object by object and
submits it; a reviewer accepts or rejects on the same page; a Model plugin run
from the canvas's menu draws its objects on the canvas when it answers."""

from __future__ import annotations

import copy
from typing import Any

from plugins_app.plugins.models import PluginType, Preset
from plugins_app.runs.models import Run
from plugins_app.workspace import events
from plugins_app.workspace.lifecycle import task_submit
from plugins_app.workspace.models import Task
from tests.hub import ROOT
from tests.test_browser import (  # noqa: F401 - pytest fixtures
    Tab,
    browser,
    expect,
    log_in,
    start_plugin,
    tab,
    wait_until_live,
)
from tests.test_canvas import CLASSES, COIN, FACE, prelabeled

SCREENSHOT = ROOT / "docs" / "screenshot-canvas.png"
JUNK = {"x": 20.0, "y": 20.0, "width": 60.0, "height": 60.0}
PRELABEL = [
    {"schemaId": "face-box", "bounding-box": FACE},
    {"schemaId": "coin-box", "bounding-box": COIN},
    {"schemaId": "object-box", "bounding-box": JUNK},
]
# Ctrl+Z then Ctrl+Y before any timer of the page runs; resolves once one has.
UNDO_REDO_AT_ONCE = """async () => {
  for (const key of ["z", "y"]) {
    const init = { key, ctrlKey: true, bubbles: true };
    document.dispatchEvent(new KeyboardEvent("keydown", init));
  }
  await new Promise((resolve) => setTimeout(resolve, 10));
}"""

# n, n, n, then Delete after Annotorious's timer for the first n (timers of
# equal delay run in the order they were set); resolves once its others ran.
N_N_N_THEN_DELETE = """async () => {
  const press = (key) => document.dispatchEvent(new KeyboardEvent("keydown", { key }));
  press("n");
  setTimeout(() => press("Delete"), 1);
  press("n");
  press("n");
  await new Promise((resolve) => setTimeout(resolve, 10));
}"""


def open_canvas(page: Any, hub: Any, workspace: Any, task: Task) -> Any:
    page.goto(f"{hub.url}/projects/{workspace.project.pk}/tasks/{task.pk}/")
    canvas = page.locator("#canvas")
    expect(canvas).to_have_attribute("data-ready", "true")
    return canvas


def to_screen(page: Any, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of image pixel (x, y) of the 512 px astronaut."""
    box = page.locator("#canvas-image").bounding_box()
    scale = box["width"] / 512
    return box["x"] + x * scale, box["y"] + y * scale


def drag(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*to_screen(page, *start))
    page.mouse.down()
    page.mouse.move(*to_screen(page, *end), steps=8)
    page.mouse.up()


def object_row(canvas: Any, number: int) -> Any:
    return canvas.locator("#canvas-objects li").nth(number - 1)


def test_a_labeler_corrects_a_pre_label_on_the_canvas_and_submits_it(
    workspace: Any,
    make_plugin: Any,
    live_hub: Any,
    tab: Tab,  # noqa: F811
) -> None:
    plugin = make_plugin(
        name="Detector", type=PluginType.BATCH_MODEL, class_names=CLASSES
    ).plugin
    run = prelabeled(workspace, plugin, PRELABEL)
    task = workspace.asset("astronaut").task
    task.refresh_from_db()
    written = task.answer
    page = tab.page
    log_in(page, live_hub, "bob")
    canvas = open_canvas(page, live_hub, workspace, task)
    objects = canvas.locator("#canvas-objects li")
    expect(objects).to_have_count(3)
    expect(canvas.locator(".a9s-annotation")).to_have_count(3)
    # Each object says where it came from: the plugin and its run.
    expect(object_row(canvas, 1)).to_contain_text(f"plugin Detector (run #{run.pk})")
    expect(object_row(canvas, 1)).to_contain_text("to review")

    # Move the face box 40 px right: select it, drag its inside.
    object_row(canvas, 1).get_by_role("button").click()
    expect(canvas.locator("#canvas-selected-source")).to_contain_text("Detector")
    expect(canvas.locator("#canvas-selected-confidence")).to_contain_text("none")
    drag(page, (220, 115), (260, 115))
    expect(object_row(canvas, 1)).to_contain_text("edited")

    # Delete the junk box: n twice from the face selects the third, Delete drops it.
    page.locator("h3", has_text="Objects").click()  # focus off the SVG
    page.keyboard.press("n")
    page.keyboard.press("n")
    expect(object_row(canvas, 3)).to_have_class(
        "canvas-object state-to-review selected"
    )
    page.keyboard.press("Delete")
    expect(objects).to_have_count(2)
    # Annotorious's undo brings it back and redo takes it away again; the
    # object list follows.
    page.keyboard.press("Control+z")
    expect(objects).to_have_count(3)
    expect(object_row(canvas, 3)).to_contain_text("Object")
    page.keyboard.press("Control+y")
    expect(objects).to_have_count(2)
    # Annotorious tells of the shape the undo brought back a moment later (a
    # timer): under load that came after the redo, and the object was listed
    # and submitted again though gone from the image. Both keys in one go make
    # that order certain; the page's next timer runs after Annotorious's.
    page.evaluate(UNDO_REDO_AT_ONCE)
    expect(objects).to_have_count(2)
    expect(canvas.locator("#canvas-source-json")).not_to_contain_text('"object-box"')

    # Change the coin's label to Object.
    object_row(canvas, 2).get_by_role("button").click()
    canvas.locator("#canvas-selected-label").select_option(label="Object")
    expect(object_row(canvas, 2)).to_contain_text("Object")

    # Draw a new box with the Coin label.
    canvas.get_by_role("button", name="Box").click()
    canvas.locator("#canvas-label").select_option(label="Coin (bounding-box)")
    drag(page, (400, 400), (480, 470))
    expect(objects).to_have_count(3)
    expect(object_row(canvas, 3)).to_contain_text("Coin")
    expect(object_row(canvas, 3)).to_contain_text("new")

    # The read-only source view shows what Submit sends.
    expect(canvas.locator("#canvas-source-json")).to_contain_text('"object-box"')
    # Submit's answer held until the poll has brought the next stage's panel
    # (as under load): htmx then drops the answer's swap, and the canvas must
    # still read the submitted answer back (below).
    held: list[Any] = []
    page.route("**/submit/", lambda route: held.append((route, route.fetch())))
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#task-stage")).to_have_text("Review")
    expect(page.locator("#task-submit-form")).to_have_count(0)
    while not held:
        page.wait_for_timeout(50)
    route, response = held[0]
    route.fulfill(response=response)

    task.refresh_from_db()
    tools = task.answer["tools"]
    assert [t["schemaId"] for t in tools] == ["face-box", "object-box", "coin-box"]
    face = tools[0]["bounding-box"]
    assert 200 < face["x"] < 220 and face["y"] == FACE["y"], face
    assert (face["width"], face["height"]) == (FACE["width"], FACE["height"])
    assert tools[1]["bounding-box"] == COIN  # relabelled, not moved
    drawn = tools[2]["bounding-box"]
    assert 390 < drawn["x"] < 410 and 60 < drawn["width"] < 100, drawn
    assert JUNK not in [t["bounding-box"] for t in tools]
    event = task.events.filter(name=events.LABEL_SUBMITTED).get()
    assert event.actor == workspace.annotator
    assert event.data["answer"] == task.answer
    assert event.data["previousAnswer"] == written
    # Read back: the edited objects are bob's now.
    expect(object_row(canvas, 1)).to_contain_text("bob")


def test_keys_pressed_faster_than_annotorious_tells_act_on_the_highlighted_object(
    workspace: Any,
    make_plugin: Any,
    live_hub: Any,
    tab: Tab,  # noqa: F811
) -> None:
    """Annotorious tells of a selection on a timer: n, n, n, then Delete with
    the first of those told in between (a busy page) deletes the third object,
    the one highlighted, not the first."""
    plugin = make_plugin(
        name="Detector", type=PluginType.BATCH_MODEL, class_names=CLASSES
    ).plugin
    prelabeled(workspace, plugin, PRELABEL)
    page = tab.page
    log_in(page, live_hub, "bob")
    canvas = open_canvas(page, live_hub, workspace, workspace.asset("astronaut").task)
    objects = canvas.locator("#canvas-objects li")
    expect(objects).to_have_count(3)
    page.evaluate(N_N_N_THEN_DELETE)
    expect(objects).to_have_count(2)
    expect(object_row(canvas, 1)).to_contain_text("Face")
    expect(object_row(canvas, 2)).to_contain_text("Coin")


def test_a_reviewer_rejects_only_with_a_reason_on_the_canvas_page(
    workspace: Any,
    make_plugin: Any,
    live_hub: Any,
    tab: Tab,  # noqa: F811
) -> None:
    plugin = make_plugin(
        name="Detector", type=PluginType.BATCH_MODEL, class_names=CLASSES
    ).plugin
    prelabeled(workspace, plugin, PRELABEL[:1])
    task = task_submit(workspace.asset("astronaut").task, user=workspace.annotator)
    page = tab.page
    log_in(page, live_hub, "alice")
    canvas = open_canvas(page, live_hub, workspace, task)
    # A reviewer looks at the objects; editing is the labeler's (no tools).
    expect(canvas.locator("#canvas-objects li")).to_have_count(1)
    expect(canvas.get_by_role("button", name="Box")).to_be_hidden()

    page.get_by_role("button", name="Reject").click()
    assert page.locator("#task-reason").evaluate("e => e.validity.valueMissing")
    task.refresh_from_db()
    assert task.stage == "Review"
    # Past the browser's check (the attribute removed), the hub refuses it too.
    page.locator("#task-reason").evaluate("e => e.removeAttribute('required')")
    page.get_by_role("button", name="Reject").click()
    expect(page.locator("#task-action-error")).to_contain_text("Give a reason")
    task.refresh_from_db()
    assert task.stage == "Review"

    page.locator("#task-reason").fill("The box misses the chin")
    page.get_by_role("button", name="Reject").click()
    expect(page.locator("#task-stage")).to_have_text("Label")
    task.refresh_from_db()
    assert task.stage == "Label"
    reviewed = task.events.get(name=events.LABEL_REVIEWED)
    assert reviewed.data["reason"] == "The box misses the chin"
    # Back in a Label stage: the canvas is editable again, no reload needed.
    expect(canvas.get_by_role("button", name="Box")).to_be_visible()


def test_a_model_plugin_run_from_the_canvas_draws_its_objects(
    workspace: Any,
    make_plugin: Any,
    plugin_runner: Any,
    live_hub: Any,
    tab: Tab,  # noqa: F811
) -> None:
    registered = make_plugin(
        name="Face and coin detector", class_names=["face", "coin", "blob"]
    )
    Preset.objects.create(
        project=workspace.project,
        plugin=registered.plugin,
        name="faces only",
        class_mapping={"face": "face-box"},
    )
    process = start_plugin(plugin_runner, "examples/model_plugin.py", registered)
    task = workspace.asset("astronaut").task
    page = tab.page
    log_in(page, live_hub, "bob")
    canvas = open_canvas(page, live_hub, workspace, task)
    expect(canvas.locator("#canvas-objects li")).to_have_count(0)
    navigations = tab.mark()
    wait_until_live(page, registered, process)

    canvas.get_by_text("Run plugin", exact=True).click()
    canvas.get_by_role("menuitem", name="Face and coin detector · faces only").click()

    status = canvas.locator("#canvas-run-status")
    expect(status).to_contain_text("wrote 1 object(s)", timeout=30_000)
    run = Run.objects.get()
    assert run.status == Run.Status.SUCCEEDED, (run.error, process.log())
    assert run.class_mapping == [{"modelClass": "face", "schemaId": "face-box"}]
    assert [i.asset.external_id for i in run.items.all()] == ["astronaut"]
    row = object_row(canvas, 1)
    expect(row).to_contain_text("Face")
    expect(row).to_contain_text(f"(run #{run.pk})")
    expect(row).to_contain_text("to review")
    expect(canvas.locator(".a9s-annotation")).to_have_count(1)
    tab.assert_not_reloaded(navigations)
    # The annotator guide's picture of the canvas, the plugin's face selected.
    row.get_by_role("button").click()
    expect(canvas.locator("#canvas-selected-source")).to_contain_text("run #")
    page.screenshot(path=str(SCREENSHOT), full_page=False, animations="disabled")

    # Accept all (a) and submit: the plugin's box becomes the submitted answer.
    page.keyboard.press("a")
    expect(row).to_contain_text("accepted")
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#task-stage")).to_have_text("Review")
    task.refresh_from_db()
    assert [t["schemaId"] for t in task.answer["tools"]] == ["face-box"]

    # The asset page shows the same canvas, read-only.
    asset = workspace.asset("astronaut")
    page.goto(f"{live_hub.url}/projects/{workspace.project.pk}/assets/{asset.pk}/")
    expect(canvas).to_have_attribute("data-ready", "true")
    expect(row).to_contain_text("Face")
    expect(canvas.get_by_role("button", name="Box")).to_be_hidden()


def test_a_labeler_draws_a_polygon_and_answers_classifications_on_the_canvas(
    workspace: Any,
    make_plugin: Any,
    live_hub: Any,
    tab: Tab,  # noqa: F811
) -> None:
    """The ontology's classifications as form controls: a radio at the top
    level, a text field nested in the face tool (answered per object)."""
    ontology = copy.deepcopy(workspace.project.ontology)
    ontology["tools"][0]["classifications"] = [
        {"schemaId": "who", "tool": "text", "title": "Who"}
    ]
    workspace.project.ontology = ontology
    workspace.project.save()
    plugin = make_plugin(
        name="Detector", type=PluginType.BATCH_MODEL, class_names=CLASSES
    ).plugin
    prelabeled(workspace, plugin, PRELABEL[:1])
    task = workspace.asset("astronaut").task
    page = tab.page
    log_in(page, live_hub, "bob")
    canvas = open_canvas(page, live_hub, workspace, task)

    object_row(canvas, 1).get_by_role("button").click()
    canvas.locator("#canvas-object-classifications").get_by_label("Who").fill(
        "astronaut"
    )
    page.keyboard.press("Tab")  # the text's change: the object reads "edited"
    expect(object_row(canvas, 1)).to_contain_text("edited")
    canvas.get_by_role("group", name="Scene").get_by_label("photo").check()

    canvas.get_by_role("button", name="Polygon").click()
    expect(canvas.locator("#canvas-label")).to_have_value("region-poly")
    points = [(40, 300), (120, 280), (140, 380), (60, 400)]
    for x, y in [*points, points[0]]:
        page.mouse.click(*to_screen(page, x, y))
    expect(canvas.locator("#canvas-objects li")).to_have_count(2)
    expect(object_row(canvas, 2)).to_contain_text("Region")
    # Edit a point: select the polygon and drag its second corner.
    object_row(canvas, 2).get_by_role("button").click()
    drag(page, points[1], (150, 260))
    points[1] = (150, 260)

    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#task-stage")).to_have_text("Review")
    task.refresh_from_db()
    face, region = task.answer["tools"]
    assert face["classifications"] == [{"schemaId": "who", "answer": "astronaut"}]
    assert face["bounding-box"] == FACE
    assert region["schemaId"] == "region-poly"
    assert len(region["polygon"]) == 4
    for (x, y), (want_x, want_y) in zip(region["polygon"], points, strict=True):
        assert abs(x - want_x) < 3 and abs(y - want_y) < 3, region["polygon"]
    assert task.answer["classifications"] == [{"schemaId": "scene", "answer": "photo"}]
    event = task.events.get(name=events.LABEL_SUBMITTED)
    assert event.data["answer"] == task.answer


def test_the_canvas_menu_runs_with_a_one_time_mapping_and_shows_a_refusal(
    workspace: Any,
    make_plugin: Any,
    live_hub: Any,
    tab: Tab,  # noqa: F811
) -> None:
    """The one-time mapping form posts the chosen labels; the hub's refusal
    (here: no instance connected) is shown on the canvas and nothing runs."""
    plugin = make_plugin(name="Offline detector", class_names=["face", "coin"]).plugin
    task = workspace.asset("astronaut").task
    page = tab.page
    log_in(page, live_hub, "bob")
    canvas = open_canvas(page, live_hub, workspace, task)
    canvas.get_by_text("Run plugin", exact=True).click()
    canvas.get_by_text("Offline detector · one-time mapping…").click()
    coin = canvas.get_by_label("Offline detector: coin")
    expect(coin).to_have_value("coin-box")  # the suggested mapping
    coin.select_option(value="")
    with page.expect_request("**/canvas/run/") as sent:
        canvas.get_by_role("button", name="Run Offline detector").click()
    assert '{"face":"face-box","coin":""}' in (sent.value.post_data or "")

    status = canvas.locator("#canvas-run-status")
    expect(status).to_contain_text("No instance of “Offline detector” is connected")
    assert not Run.objects.filter(plugin=plugin).exists()
