"""A hub killed outright mid-run (SIGKILL, no goodbye to anyone) and started
again: plugins under a restart policy reconnect, and every job of the run is
completed exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plugins_app.runs.models import Run, WorkItem
from plugins_app.workspace.models import Task
from tests.builders import new_run
from tests.hub import SCRIPTS, free_port, start_hub_process, start_plugin, wait_for


def test_it_finishes_every_job_once_after_the_hub_is_killed_mid_run(
    transactional_db: Any,
    workspace: Any,
    make_plugin: Any,
    tmp_path: Path,
    prelabel_writes: Any,
) -> None:
    registered = make_plugin(timeout=60)
    port = free_port()
    hub = start_hub_process(port, tmp_path)
    # The restart policy the README asks for: the SDK exits when its reconnect fails.
    plugin = start_plugin(
        SCRIPTS / "echo_model.py",
        sdk="1.4",
        host=f"http://127.0.0.1:{port}",
        plugin_id=registered.plugin.public_id,
        secret=registered.secret,
        log_dir=tmp_path,
        env={"ECHO_MODE": "slow", "ECHO_SLEEP": "2"},
        forever=True,
    )
    try:
        wait_for(lambda: registered.plugin.instances.exists(), what="the plugin")
        run = new_run(
            workspace, registered.plugin, "astronaut", "coins", "camera", dispatch=True
        )
        wait_for(lambda: "HANDLED" in plugin.log(), what="a job in the plugin's hands")
        hub.stop()  # SIGKILL: no disconnect handler runs, leases stay as they were
        assert run.items.filter(state=WorkItem.State.LEASED).exists()
        hub = start_hub_process(port, tmp_path)
        wait_for(
            lambda: Run.objects.get(pk=run.pk).is_finished,
            timeout=60,
            what="the run to finish after the restart",
        )
        run.refresh_from_db()
        assert run.status == Run.Status.SUCCEEDED, (run.error, hub.log(), plugin.log())
        items = list(run.items.all())
        assert [i.state for i in items] == [WorkItem.State.DONE] * 3
        assert any(i.attempts >= 2 for i in items)  # the interrupted job, again
        assert Task.objects.filter(prelabel_run=run).count() == 3
        hub_lines = run.log_lines.filter(level="HUB", message__contains="stored")
        assert hub_lines.count() == 3  # each result applied exactly once
        assert [n for _task, _run, n in prelabel_writes()] == [1, 1, 1]
    finally:
        plugin.stop()
        hub.stop()
