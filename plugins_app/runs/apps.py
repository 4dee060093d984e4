from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "plugins_app.runs"
    label = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        from plugins_app.runs.listeners import on_stage_entered
        from plugins_app.workspace import events

        events.listen(on_stage_entered)
