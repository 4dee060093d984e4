"""Instances that die mid-run, with the real imerit-ango client: the jobs they
held go to another instance (or to the same script, restarted) and every job is
applied exactly once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from plugins_app.plugins.models import Plugin, PluginInstance
from plugins_app.runs.models import Run, RunLogLine, WorkItem
from tests.builders import new_run
from tests.hub import SCRIPTS, CuttableProxy, start_plugin, wait_for

ECHO = SCRIPTS / "echo_model.py"
ASSETS = ("astronaut", "coins", "camera", "coffee", "chelsea", "rocket")


def live_count(plugin: Plugin) -> int:
    return PluginInstance.objects.live().filter(plugin=plugin).count()


def assert_each_item_done_once(run: Run) -> list[WorkItem]:
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.error
    items = list(run.items.all())
    assert {i.state for i in items} == {WorkItem.State.DONE}
    for item in items:
        stored = RunLogLine.objects.filter(
            item=item, level="HUB", message__contains="stored"
        )
        assert stored.count() == 1, item
    return items


def test_it_finishes_the_jobs_of_a_killed_instance_on_the_other_one(
    workspace: Any, make_plugin: Any, plugin_runner: Any, live_hub: Any
) -> None:
    registered = make_plugin(timeout=60)
    slow = {"ECHO_MODE": "slow", "ECHO_SLEEP": "1.5"}
    # The survivor declares it takes two jobs at a time, through HOST's query.
    survivor = plugin_runner(
        ECHO, registered, env={**slow, "HOST": f"{live_hub.url}/?concurrency=2"}
    )
    victim = plugin_runner(ECHO, registered, env=slow)
    small = PluginInstance.objects.get(plugin=registered.plugin, capacity=2)

    run = new_run(workspace, registered.plugin, *ASSETS, dispatch=True)
    wait_for(lambda: survivor.handled() and victim.handled(), what="both to hold jobs")
    lost = set(victim.handled())
    victim.stop()  # SIGKILL mid-job

    def finished_within_capacity() -> bool:
        held = small.items.filter(state=WorkItem.State.LEASED).count()
        assert held <= 2, f"{held} jobs sent to an instance that takes 2"
        return Run.objects.get(pk=run.pk).is_finished

    wait_for(finished_within_capacity, timeout=40, what="the run to finish")
    items = assert_each_item_done_once(run)
    assert lost <= set(survivor.handled())  # the victim's jobs, done again
    assert {i.instance_id for i in items} == {small.pk}
    assert any(i.attempts == 2 for i in items)


def test_it_finishes_every_job_once_through_repeated_lost_connections(
    workspace: Any, make_plugin: Any, plugin_runner: Any
) -> None:
    registered = make_plugin(timeout=60)
    Plugin.objects.filter(pk=registered.plugin.pk).update(max_attempts=10)
    slow = {"ECHO_MODE": "slow", "ECHO_SLEEP": "1"}
    process = plugin_runner(ECHO, registered, env=slow)
    run = new_run(workspace, registered.plugin, *ASSETS[:3], dispatch=True)

    for _ in range(3):
        wait_for(lambda p=process: p.handled(), what="a job in the plugin's hands")
        process.stop()  # the socket closes with jobs in flight
        wait_for(lambda: live_count(registered.plugin) == 0, what="the disconnect")
        assert not run.items.filter(state=WorkItem.State.LEASED).exists()
        process = plugin_runner(ECHO, registered, env=slow)

    wait_for(
        lambda: Run.objects.get(pk=run.pk).is_finished,
        timeout=30,
        what="the run to finish",
    )
    items = assert_each_item_done_once(run)
    assert max(i.attempts for i in items) == 4


def test_it_finishes_every_job_once_when_the_network_drops_again_and_again(
    workspace: Any, make_plugin: Any, live_hub: Any, tmp_path: Any, prelabel_writes: Any
) -> None:
    registered = make_plugin(timeout=60, max_attempts=10)
    proxy = CuttableProxy(live_hub.port)
    # The script stays up: the SDK reconnects once on its own (a new socket,
    # so a new instance), and the supervisor covers a reconnect that fails.
    process = start_plugin(
        ECHO,
        sdk="1.4",
        host=f"{proxy.url}/?concurrency=1",  # one job at a time: cuts land mid-run
        plugin_id=registered.plugin.public_id,
        secret=registered.secret,
        log_dir=tmp_path,
        env={"ECHO_MODE": "slow", "ECHO_SLEEP": "1"},
        forever=True,
    )
    try:
        wait_for(lambda: live_count(registered.plugin) == 1, what="the plugin")
        run = new_run(workspace, registered.plugin, *ASSETS, dispatch=True)
        for cut in range(1, 4):
            wait_for(
                lambda: (
                    run.items.filter(state=WorkItem.State.LEASED).exists()
                    and live_count(registered.plugin) == 1
                ),
                what=f"jobs in the plugin's hands before cut {cut}",
            )
            held = len(process.handled())
            wait_for(lambda h=held: len(process.handled()) > h, what="a job taken")
            proxy.cut()  # both ends see their socket closed, jobs in flight
            wait_for(
                lambda c=cut: (
                    PluginInstance.objects.filter(
                        plugin=registered.plugin, disconnected_at__isnull=False
                    ).count()
                    == c
                ),
                what=f"the hub to see cut {cut}",
            )
        wait_for(
            lambda: Run.objects.get(pk=run.pk).is_finished,
            timeout=40,
            what="the run to finish",
        )
        items = assert_each_item_done_once(run)
        assert [n for _task, _run, n in prelabel_writes()] == [1] * len(ASSETS)
        assert proxy.connections >= 4
        assert any(i.attempts >= 2 for i in items)
        # Answers to jobs taken before a cut came back over the new socket,
        # after the job had gone back to the queue: refused, not applied twice.
        ignored = run.log_lines.filter(message__startswith="Ignored a response")
        assert ignored.exists()
    finally:
        process.stop()
        proxy.close()


def test_it_renews_the_lease_of_a_busy_instance_on_every_pong(
    workspace: Any, make_plugin: Any, plugin_runner: Any, settings: Any
) -> None:
    settings.HUB_PING_INTERVAL_MS = 300
    registered = make_plugin(timeout=60)
    process = plugin_runner(
        ECHO, registered, env={"ECHO_MODE": "slow", "ECHO_SLEEP": "3"}
    )
    run = new_run(workspace, registered.plugin, "astronaut", dispatch=True)
    wait_for(lambda: process.handled(), what="the job in the plugin's hands")
    item = run.items.get()
    instance = item.instance

    def renewed() -> bool:
        fresh = WorkItem.objects.get(pk=item.pk)
        return fresh.lease_expires_at > item.lease_expires_at + timedelta(seconds=0.5)

    wait_for(renewed, timeout=2, what="the lease to be renewed by pongs")
    instance.refresh_from_db()
    assert instance.last_seen_at > item.leased_at
    assert WorkItem.objects.get(pk=item.pk).deadline_at == item.deadline_at
    wait_for(lambda: Run.objects.get(pk=run.pk).is_finished, what="the run end")
    assert_each_item_done_once(run)
