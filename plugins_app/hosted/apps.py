from django.apps import AppConfig


class HostedConfig(AppConfig):
    name = "plugins_app.hosted"
    label = "hosted"
    verbose_name = "Hosted plugins"
