"""An Export run in a real browser (Chromium via Playwright): the Run dialog asks
for stages and batches, a real Celery worker builds the export, the real SDK
plugin uploads its file, the run page offers it without a reload (pushed over
its websocket), and the file the browser downloads holds exactly the tasks of
the chosen stage and batch."""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

from plugins_app.plugins.models import PluginType
from plugins_app.runs.models import Run
from tests.hub import SCRIPTS, LiveHub
from tests.test_browser import (  # noqa: F401 - fixtures
    Tab,
    browser,
    expect,
    log_in,
    open_run_dialog,
    queue_runs,
    start_plugin,
    tab,
    wait_until_live,
)
from tests.test_sdk_export_runs import label_tasks


def test_the_user_runs_an_export_and_downloads_the_file_live(
    workspace: Any,
    make_plugin: Any,
    plugin_runner: Any,
    live_hub: LiveHub,
    celery_worker: Any,  # noqa: F811
    tab: Tab,  # noqa: F811
) -> None:
    expected = label_tasks(workspace)
    registered = make_plugin(type=PluginType.EXPORT, class_names=[], name="Exporter")
    free_a_slot = queue_runs(registered)
    process = start_plugin(plugin_runner, SCRIPTS / "export_passthrough.py", registered)
    page = tab.page
    log_in(page, live_hub, "bob")
    dialog = open_run_dialog(page, live_hub, workspace, registered)

    stages = dialog.locator('input[name="stages"]')
    expect(dialog.get_by_label("Complete", exact=True)).to_be_checked()
    expect(dialog.get_by_label("Label", exact=True)).not_to_be_checked()
    assert stages.count() >= 3
    dialog.get_by_label("Batch A", exact=True).check()
    wait_until_live(page, registered, process)
    dialog.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    run = Run.objects.get(pk=int(page.url.rstrip("/").rsplit("/", 1)[1]))
    assert run.inputs == {"stages": ["Complete"]}
    assert run.batch_ids == [workspace.batch_a.pk]
    tab.wait_subscribed()
    navigations = tab.mark()
    expect(page.locator("#run-export-files")).to_have_count(0)

    free_a_slot()  # the job goes out only now that the page watches
    link = page.get_by_role("link", name="Download passthrough.zip")
    expect(link).to_be_visible(timeout=60_000)
    expect(page.locator("#run-status")).to_have_text("Succeeded")
    tab.assert_not_reloaded(navigations)
    assert tab.frames_with("Download passthrough.zip"), tab.ws_frames

    with page.expect_download() as download:
        link.click()
    data = download.value.path().read_bytes()
    lines = zipfile.ZipFile(io.BytesIO(data)).read("export.ndjson").splitlines()
    assert {json.loads(line)["externalId"] for line in lines} == expected
