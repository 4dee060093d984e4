"""Screenshots of every page, from the seeded demo (`seed_demo`, as `make run`
loads it) in Chromium, kept in docs/screenshots/ and shown by
docs/screenshots.md, and the README's screenshot (docs/screenshot-run.png),
taken by following the README's first task as it is written. Each step also
checks that the page shows what its screenshot is meant to show, so a broken
page fails here, not in the docs.

It rewrites the PNGs every time it runs (part of `make test`)."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path
from typing import Any

from plugins_app.demo.seed import DEMO_PASSWORD, seed_demo
from plugins_app.plugins.models import Plugin, PluginInstance
from plugins_app.runs.models import Run
from plugins_app.workspace.models import Project
from tests.conftest import RegisteredPlugin
from tests.hub import ROOT
from tests.test_browser import (  # noqa: F401 - pytest fixtures
    Tab,
    browser,
    expect,
    poll,
    start_plugin,
    tab,
)

SHOTS = ROOT / "docs" / "screenshots"
# The README's (and the docs home page's) screenshot: docs/screenshot-run.png.
README_SHOT = ROOT / "docs"


def shoot(
    page: Any, name: str, *, full_page: bool = True, folder: Path = SHOTS
) -> None:
    page.wait_for_load_state("networkidle")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    assert path.stat().st_size > 10_000, path


def log_in(page: Any, url: str, username: str) -> None:
    page.goto(f"{url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".topbar .who")).to_contain_text(username)


def open_run_dialog(page: Any, project: Project, plugin: Plugin) -> Any:
    run_url = f"/projects/{project.pk}/plugins/{plugin.pk}/run/"
    page.locator(f'#project-plugins button[hx-get="{run_url}"]').click()
    dialog = page.locator("dialog#dialog")
    expect(dialog).to_be_visible()
    return dialog


def open_and_map(page: Any, project: Project, plugin: Plugin, assets: str) -> Any:
    dialog = open_run_dialog(page, project, plugin)
    dialog.get_by_label("face", exact=True).select_option(value="face-box")
    dialog.get_by_label("coin", exact=True).select_option(value="coin-box")
    dialog.get_by_label("Asset external IDs").fill(assets)
    return dialog


def wait_images_drawn(page: Any) -> None:
    page.wait_for_function(
        "() => [...document.querySelectorAll('#run-assets svg image')]"
        ".every(image => image.getBBox().width > 0)"
    )


def run_and_wait(page: Any, dialog: Any, plugin: Plugin, process: Any) -> Run:
    """Click Run once the plugin is connected; the run page, once succeeded."""
    poll(
        page,
        PluginInstance.objects.live().filter(plugin=plugin).exists,
        lambda: f"{plugin.name} to connect:\n{process.log()}",
        60,
    )
    dialog.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    expect(page.locator("#run-status")).to_have_text("Succeeded", timeout=60_000)
    run = Run.objects.get(pk=int(page.url.rstrip("/").rsplit("/", 1)[1]))
    assert run.status == Run.Status.SUCCEEDED, (run.error, process.log())
    return run


def test_screenshots_of_every_page_from_the_demo(
    transactional_db: Any,
    live_hub: Any,
    plugin_runner: Any,
    celery_worker: Any,  # builds the export
    tab: Tab,  # noqa: F811
) -> None:
    credentials = seed_demo()
    model = Plugin.objects.get(public_id=credentials.model_plugin["id"])
    process = start_plugin(
        plugin_runner,
        "examples/model_plugin.py",
        RegisteredPlugin(model, credentials.model_plugin["secret"]),
    )
    export = Plugin.objects.get(public_id=credentials.export_plugin["id"])
    exporter = start_plugin(
        plugin_runner,
        "examples/export_plugin.py",
        RegisteredPlugin(export, credentials.export_plugin["secret"]),
    )
    project = Project.objects.get(name="Street & Science Images")
    page, url = tab.page, live_hub.url
    log_in(page, url, "annotator")

    # The project: its plugins, presets and the asset table.
    page.goto(f"{url}/projects/{project.pk}/")
    expect(page.locator("#project-plugins")).to_contain_text("Face & coin detector")
    shoot(page, "project")

    # The README's first task, step by step: the Run dialog, face → Face and
    # coin → Coin, on astronaut; its run page is the README's screenshot.
    dialog = open_and_map(page, project, model, "astronaut")
    shoot(page, "run-dialog", full_page=False)
    run_and_wait(page, dialog, model, process)
    # The face, and no coin on the flag, the suit or the helmet.
    expect(page.locator("#run-log")).to_contain_text("Detected 0 coin, 1 face")
    expect(page.locator("#run-assets rect.shape")).to_have_count(1)
    wait_images_drawn(page)
    shoot(page, "screenshot-run", folder=README_SHOT)

    # The same on the coins: each of the 24 coins, nothing else.
    page.goto(f"{url}/projects/{project.pk}/")
    run_and_wait(page, open_and_map(page, project, model, "coins"), model, process)
    expect(page.locator("#run-log")).to_contain_text("Detected 24 coin, 0 face")
    expect(page.locator("#run-assets rect.shape")).to_have_count(24)
    wait_images_drawn(page)
    shoot(page, "run")

    # The asset page and the task page of the astronaut, holding the run's
    # pre-label; then a task a person labeled and the reviewer accepted.
    astronaut = project.assets.get(external_id="astronaut")
    page.goto(f"{url}/projects/{project.pk}/assets/{astronaut.pk}/")
    expect(page.locator("body")).to_contain_text("astronaut")
    shoot(page, "asset")
    page.goto(f"{url}/projects/{project.pk}/tasks/{astronaut.task.pk}/")
    expect(page.locator("#canvas")).to_have_attribute("data-ready", "true")
    shoot(page, "task")
    reviewed = project.tasks.get(asset__external_id="chelsea")
    page.goto(f"{url}/projects/{project.pk}/tasks/{reviewed.pk}/")
    expect(page.locator("#canvas")).to_have_attribute("data-ready", "true")
    expect(page.locator("body")).to_contain_text("Complete")
    shoot(page, "task-reviewed")

    # The runs list and the plugin's page.
    page.goto(f"{url}/runs/")
    expect(page.locator("body")).to_contain_text("Face & coin detector")
    shoot(page, "runs")
    page.goto(f"{url}/plugins/{model.pk}/")
    expect(page.locator("body")).to_contain_text("Face & coin detector")
    shoot(page, "plugin")

    # The demo's first Export, run as the dialog comes (the Complete stage is
    # ticked): a file with the reviewed tasks' boxes, not an empty one.
    page.goto(f"{url}/projects/{project.pk}/")
    run_and_wait(page, open_run_dialog(page, project, export), export, exporter)
    download = page.get_by_role("link", name=re.compile("Download"))
    expect(download).to_be_visible()
    shoot(page, "export-run")
    fetched = page.request.get(f"{url}{download.get_attribute('href')}")
    assert fetched.ok, fetched.status
    archive = zipfile.ZipFile(io.BytesIO(fetched.body()))
    rows = list(csv.reader(io.StringIO(archive.read("boxes.csv").decode())))
    exported = [row[0] for row in rows[1:]]
    # Six coins on coins-tile-1, the cat's two eyes (its nose is a polygon).
    assert sorted(exported) == ["chelsea"] * 2 + ["coins-tile-1"] * 6, rows
