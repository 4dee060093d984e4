from django.urls import path

from plugins_app.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path(
        "plugins/<int:plugin_id>/dashboard/",
        views.plugin_dashboard,
        name="plugin-dashboard",
    ),
    path(
        "plugins/<int:plugin_id>/dashboard/figures/",
        views.plugin_dashboard_figures,
        name="plugin-dashboard-figures",
    ),
    path(
        "plugins/<int:plugin_id>/alerts/",
        views.plugin_alert_rule,
        name="plugin-alert-rule",
    ),
]
