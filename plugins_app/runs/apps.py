from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "plugins_app.runs"
    label = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        from plugins_app.runs import wakeup
        from plugins_app.runs.dispatch import dispatch_created, dispatch_pending
        from plugins_app.runs.listeners import on_stage_entered, on_task_event
        from plugins_app.workspace import events

        wakeup.connect(dispatch_pending, dispatch_created)
        # In this order, as when the plugins app registered on_task_event.
        events.listen(on_task_event)
        events.listen(on_stage_entered)
