from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "plugins_app.dashboard"
    label = "dashboard"
    verbose_name = "Plugin dashboard and alerts"
