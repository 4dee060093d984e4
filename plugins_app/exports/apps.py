from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "plugins_app.exports"
    label = "exports"
    verbose_name = "Exports"
