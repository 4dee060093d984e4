from django.apps import AppConfig


class PluginsConfig(AppConfig):
    name = "plugins_app.plugins"
    label = "plugins"
    verbose_name = "Plugins"
