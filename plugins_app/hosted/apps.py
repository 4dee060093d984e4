from django.apps import AppConfig


class HostedConfig(AppConfig):
    name = "plugins_app.hosted"
    label = "hosted"
    verbose_name = "Hosted plugins"

    def ready(self) -> None:
        # Hosted items are handed to workers by this app's dispatch: runs finds
        # it here rather than importing hosted (which calls into runs).
        from plugins_app.hosted.dispatch import dispatch_hosted
        from plugins_app.plugins.models import Delivery
        from plugins_app.runs.dispatch import DELIVERIES

        DELIVERIES[Delivery.HOSTED] = dispatch_hosted
