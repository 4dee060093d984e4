"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against
a live hub and real plugin processes: the Run dialog, the run page updated live
over its websocket, the dialog's inline errors, and the README's first task."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from plugins_app.plugins.models import Plugin, PluginInstance
from plugins_app.runs.models import Run, RunLogLine
from plugins_app.runs.sweep import runs_sweep
from tests.conftest import RegisteredPlugin, Workspace
from tests.hub import SCRIPTS, LiveHub

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ECHO = SCRIPTS / "echo_model.py"
SLOW_ECHO = {"ECHO_MODE": "slow", "ECHO_SLEEP": "2"}
MARKER = "window.__sameDocument"
# htmx's ws extension fires htmx:wsOpen once the hub accepted the socket, which it
# does after joining the run's group: from then on the page gets every update.
WS_OPEN_LISTENER = (
    "document.addEventListener('htmx:wsOpen', () => { window.__wsOpen = true })"
)

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing: the browser tests drive Debian's chromium "
        "(apt-get install chromium)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

Plugins = Callable[..., RegisteredPlugin]
Runner = Callable[..., Any]


# --- browser plumbing -------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as patch, sync_api.sync_playwright() as pw:
        # Playwright's sync API leaves its event loop set as this thread's running
        # loop, so Django would refuse the ORM calls the tests make between browser
        # steps; they are plain synchronous calls all the same.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Tab:
    """A page, the main-frame navigations it made and its run websocket's frames."""

    page: Any
    navigations: list[str] = field(default_factory=list)
    ws_frames: list[str] = field(default_factory=list)

    def on_websocket(self, ws: Any) -> None:
        if "/ws/runs/" in ws.url:
            ws.on("framereceived", lambda payload: self.ws_frames.append(str(payload)))

    def on_navigated(self, frame: Any) -> None:
        if frame == self.page.main_frame:
            self.navigations.append(frame.url)

    def frames_with(self, text: str) -> list[str]:
        return [f for f in self.ws_frames if text in f]

    def mark(self) -> int:
        """Set a marker that lives exactly as long as this document does."""
        self.page.evaluate(f"{MARKER} = true")
        return len(self.navigations)

    def assert_not_reloaded(self, navigations: int) -> None:
        assert self.page.evaluate(f"{MARKER} === true"), "the page was reloaded"
        assert len(self.navigations) == navigations, self.navigations

    def wait_subscribed(self) -> None:
        self.page.wait_for_function("window.__wsOpen === true", timeout=10_000)


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    context.add_init_script(WS_OPEN_LISTENER)
    page = context.new_page()
    tab = Tab(page)
    page.on("framenavigated", tab.on_navigated)
    page.on("websocket", tab.on_websocket)
    yield tab
    context.close()


# --- steps ------------------------------------------------------------------------
@contextmanager
def precondition() -> Iterator[None]:
    """Failures in here are real failures, never the xfail the test expects."""
    try:
        yield
    except AssertionError as exc:
        pytest.fail(f"precondition failed: {exc}")


def poll(
    page: Any, condition: Callable[[], Any], what: Callable[[], str], timeout: float
) -> None:
    """Wait for a server-side condition while Playwright keeps handling events."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what()}")
        page.wait_for_timeout(50)


def start_plugin(
    plugin_runner: Runner,
    script: str | Path,
    registered: RegisteredPlugin,
    env: dict[str, str] | None = None,
) -> Any:
    """Start a plugin process; the browser logs in while it connects."""
    return plugin_runner(script, registered, sdk="1.4", env=env, wait_live=False)


def wait_until_live(page: Any, registered: RegisteredPlugin, process: Any) -> None:
    live = PluginInstance.objects.live().filter(plugin=registered.plugin)
    poll(page, live.exists, lambda: f"the plugin to connect:\n{process.log()}", 30)


def queue_runs(registered: RegisteredPlugin) -> Callable[[], None]:
    """Leave the plugin no free slot, so that its runs wait in the queue; the
    returned function frees one and sweeps, as Celery beat does every 2 s."""
    plugins = Plugin.objects.filter(pk=registered.plugin.pk)
    plugins.update(concurrency=0)

    def free_a_slot() -> None:
        plugins.update(concurrency=1)
        assert runs_sweep()["dispatched"] == 1

    return free_a_slot


def log_in(page: Any, hub: LiveHub, username: str) -> None:
    page.goto(f"{hub.url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".topbar .who")).to_contain_text(username)


def open_run_dialog(
    page: Any, hub: LiveHub, workspace: Workspace, registered: RegisteredPlugin
) -> Any:
    page.goto(f"{hub.url}/projects/{workspace.project.pk}/")
    row = page.locator("#project-plugins tbody tr", has_text=registered.plugin.name)
    row.get_by_role("button", name="Run").click()
    dialog = page.locator("dialog#dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_contain_text(registered.plugin.name)
    return dialog


def fill_and_run(
    page: Any,
    dialog: Any,
    registered: RegisteredPlugin,
    process: Any,
    external_id: str,
    *,
    wait_until: str = "load",
    mapping: dict[str, str] | None = None,
) -> Run:
    """Map `face` to Face (and nothing else, unless `mapping` says: model class
    → tool id), pick one asset, click Run and land on the new run's page (the
    dialog answers with an HX-Redirect)."""
    mapping = mapping or {"face": "face-box"}
    class_names = registered.plugin.class_names
    expect(dialog.locator("fieldset.mapping select")).to_have_count(len(class_names))
    for name in class_names:
        dialog.get_by_label(name, exact=True).select_option(value="")
    for name, schema_id in mapping.items():
        select = dialog.get_by_label(name, exact=True)
        select.select_option(value=schema_id)
        expect(select).to_have_value(schema_id)
    dialog.get_by_label("Asset external IDs").fill(external_id)
    wait_until_live(page, registered, process)
    dialog.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"), wait_until=wait_until)
    run = Run.objects.get(pk=int(page.url.rstrip("/").rsplit("/", 1)[1]))
    assert sorted(run.class_mapping, key=lambda m: m["modelClass"]) == [
        {"modelClass": name, "schemaId": schema_id}
        for name, schema_id in sorted(mapping.items())
    ]
    assert [i.asset.external_id for i in run.items.all()] == [external_id]
    return run


# --- tests ------------------------------------------------------------------------
def test_it_runs_a_plugin_from_the_dialog_and_watches_it_live(
    workspace: Workspace,
    make_plugin: Plugins,
    plugin_runner: Runner,
    live_hub: LiveHub,
    tab: Tab,
) -> None:
    registered = make_plugin(name="Slow echo")
    process = start_plugin(plugin_runner, ECHO, registered, SLOW_ECHO)
    page = tab.page
    log_in(page, live_hub, "bob")
    dialog = open_run_dialog(page, live_hub, workspace, registered)
    run = fill_and_run(page, dialog, registered, process, "astronaut")
    navigations = tab.mark()

    # The plugin sleeps 2 s before answering: the page was rendered before that.
    status, log = page.locator("#run-status"), page.locator("#run-log")
    expect(status).to_have_text("Running")
    expect(page.locator("#run-assets rect.shape")).to_have_count(0)
    expect(log).not_to_contain_text("echo done")

    expect(log).to_contain_text("echo done", timeout=15_000)
    expect(status).to_have_text("Succeeded")
    expect(page.locator("#run-assets rect.shape")).to_have_count(1)
    expect(page.locator("#run-assets rect.shape title")).to_have_text("Face")
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(log).to_contain_text("Run succeeded.")

    # No reload: the same document, and what changed came over its websocket.
    tab.assert_not_reloaded(navigations)
    assert tab.frames_with("echo done"), tab.ws_frames
    assert tab.frames_with(">Succeeded<"), tab.ws_frames
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED


def test_it_runs_the_example_plugin_and_draws_the_face_it_found(
    workspace: Workspace,
    make_plugin: Plugins,
    plugin_runner: Runner,
    live_hub: LiveHub,
    tab: Tab,
) -> None:
    registered = make_plugin(
        name="Face and coin detector", class_names=["face", "coin", "blob"]
    )
    # No free slot yet: the run waits in the queue until the page watches it.
    free_a_slot = queue_runs(registered)
    process = start_plugin(plugin_runner, "examples/model_plugin.py", registered)
    page = tab.page
    log_in(page, live_hub, "bob")
    dialog = open_run_dialog(page, live_hub, workspace, registered)
    # The README's first task, step by step: face → Face and coin → Coin.
    run = fill_and_run(
        page,
        dialog,
        registered,
        process,
        "astronaut",
        mapping={"face": "face-box", "coin": "coin-box"},
    )
    navigations = tab.mark()
    status, log = page.locator("#run-status"), page.locator("#run-log")
    expect(status).to_have_text("Queued")
    expect(log).to_contain_text("waiting for a plugin instance")
    tab.wait_subscribed()

    free_a_slot()
    expect(status).to_have_text("Succeeded", timeout=30_000)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, (run.error, process.log())
    for message in (
        "Model plugin started for asset astronaut",
        "Downloaded the image (512x512)",
        # The face, and no coin on the flag, the suit or the helmet.
        "Detected 0 coin, 1 face",
        "Returning 1 objects",
    ):
        expect(log).to_contain_text(message)
        assert tab.frames_with(message), tab.ws_frames
    lines = RunLogLine.objects.filter(run=run).count()
    expect(log.locator(".log-line")).to_have_count(lines)
    face = page.locator("#run-assets rect.shape")
    expect(face).to_have_count(1)
    expect(face.locator("title")).to_have_text("Face")
    # The astronaut's face is around x 140-220, y 60-160 of the 512 px image.
    x, y, width, height = (
        float(face.get_attribute(name) or "nan")
        for name in ("x", "y", "width", "height")
    )
    assert 100 < x + width / 2 < 260 and 40 < y + height / 2 < 200, (x, y, width)
    expect(page.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    tab.assert_not_reloaded(navigations)
    # The README's screenshot of these steps is taken on the seeded demo itself
    # (tests/test_browser_screenshots.py).


def test_it_catches_up_on_what_happened_before_the_page_subscribed(
    workspace: Workspace,
    make_plugin: Plugins,
    plugin_runner: Runner,
    live_hub: LiveHub,
    tab: Tab,
) -> None:
    page = tab.page
    with precondition():
        registered = make_plugin(name="Echo")
        free_a_slot = queue_runs(registered)
        process = start_plugin(plugin_runner, ECHO, registered)
        log_in(page, live_hub, "bob")
        dialog = open_run_dialog(page, live_hub, workspace, registered)
        # Hold the ws extension back, as a slow network would: the run page is
        # rendered while the run is queued, and subscribes only after it ended.
        held: list[Any] = []
        page.route("**/ext/hx-ws-2*.js", lambda route: held.append(route))
        run = fill_and_run(
            page, dialog, registered, process, "astronaut", wait_until="commit"
        )
        expect(page.locator("#run-status")).to_have_text("Queued")
        poll(page, lambda: held, lambda: "the run page to ask for hx-ws", 10)
        free_a_slot()
        poll(
            page,
            lambda: Run.objects.get(pk=run.pk).status == Run.Status.SUCCEEDED,
            lambda: "the run to succeed",
            15,
        )
        held[0].fallback()
        tab.wait_subscribed()

    # The run ended before the page subscribed: it must not say Queued forever.
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=1_500)
    expect(page.locator("#run-log")).to_contain_text("echo done", timeout=500)


def test_it_shows_inline_errors_in_the_run_dialog(
    workspace: Workspace,
    make_plugin: Plugins,
    plugin_runner: Runner,
    live_hub: LiveHub,
    tab: Tab,
) -> None:
    registered = make_plugin(name="Echo")
    process = start_plugin(plugin_runner, ECHO, registered)
    page = tab.page
    log_in(page, live_hub, "bob")
    dialog = open_run_dialog(page, live_hub, workspace, registered)
    navigations = tab.mark()
    external_ids = dialog.get_by_label("Asset external IDs")
    config = dialog.get_by_label("Config JSON")
    run_button = dialog.get_by_role("button", name="Run", exact=True)
    errors = dialog.locator(".field.has-error [role=alert]")

    external_ids.fill("astronaut")
    config.fill('{"max_detections": 5,}')
    wait_until_live(page, registered, process)
    run_button.click()
    expect(errors).to_contain_text("Config JSON is not valid")
    expect(errors).to_have_count(1)
    expect(errors).to_be_visible()
    expect(dialog).to_have_attribute("open", "")
    expect(config).to_have_value('{"max_detections": 5,}')

    config.fill('{"max_detections": 5}')
    external_ids.fill("astronaut\nno-such-asset")
    run_button.click()
    expect(errors).to_contain_text("Not assets of this project: no-such-asset")
    expect(errors).to_have_count(1)
    expect(dialog).to_have_attribute("open", "")
    expect(external_ids).to_have_value("astronaut\nno-such-asset")

    tab.assert_not_reloaded(navigations)
    assert not Run.objects.exists()

    # The same dialog, corrected, does start a run.
    external_ids.fill("astronaut")
    run_button.click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    assert Run.objects.count() == 1
