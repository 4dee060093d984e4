from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "plugins_app.web"
    label = "web"
    verbose_name = "Web UI"
