from django.apps import AppConfig


class PluginsConfig(AppConfig):
    name = "plugins_app.plugins"
    label = "plugins"
    verbose_name = "Plugins"

    def ready(self) -> None:
        from plugins_app.plugins.triggers import on_task_event
        from plugins_app.workspace import events

        events.listen(on_task_event)
