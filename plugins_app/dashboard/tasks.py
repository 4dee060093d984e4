from __future__ import annotations

from celery import shared_task


@shared_task(name="plugins_app.tasks.check_plugin_alerts", ignore_result=True)
def check_plugin_alerts() -> dict[str, int]:
    from plugins_app.dashboard.alerts import alerts_check

    return alerts_check()
