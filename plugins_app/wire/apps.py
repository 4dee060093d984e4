from django.apps import AppConfig


class WireConfig(AppConfig):
    name = "plugins_app.wire"
    label = "wire"
    verbose_name = "Wire protocol"
