"""Celery tasks of hosted plugins: take ids, call the build and the runner."""

from __future__ import annotations

from celery import current_task, shared_task


@shared_task
def build_hosted_code(code_id: int) -> str:
    from plugins_app.hosted.build import build

    return build(code_id)


@shared_task
def run_hosted_item(item_id: int, start_attempt: int = 1) -> str:
    from plugins_app.hosted.runner import run_item

    return run_item(item_id, start_attempt)


# Tasks whose whole job is to start one event's run: when they lease a hosted
# item, they may run it themselves. Others (the sweep, dispatch after a settle)
# have other work to finish and always go through the broker.
INLINE_FROM = frozenset(
    {"plugins_app.tasks.create_event_run", "plugins_app.tasks.workflow_stage_entered"}
)


def hand_off(item_ids: list[int]) -> None:
    """Give leased hosted items to workers. In a task that just created the
    event's run, the first item runs right here: one broker round trip less
    (~100 ms with the embedded broker's 0.2 s polling). The others go through
    the broker, to whichever worker is free."""
    from plugins_app.hosted import runner

    task_name = getattr(current_task, "name", None) if current_task else None
    inline = bool(item_ids) and task_name in INLINE_FROM and not runner.busy()
    for item_id in item_ids[1:] if inline else item_ids:
        run_hosted_item.delay(item_id)
    if inline:
        runner.run_item(item_ids[0])
