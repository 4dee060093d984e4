"""Celery tasks of hosted plugins: take ids, call the build and the runner."""

from __future__ import annotations

from celery import shared_task


@shared_task
def build_hosted_code(code_id: int) -> str:
    from plugins_app.hosted.build import build

    return build(code_id)


@shared_task
def run_hosted_item(item_id: int) -> str:
    from plugins_app.hosted.runner import run_item

    return run_item(item_id)
