from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "plugins_app.runs"
    label = "runs"
    verbose_name = "Runs"
