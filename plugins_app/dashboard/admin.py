from django.contrib import admin

from plugins_app.dashboard.models import Alert, AlertRule


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("plugin", "error_rate", "window", "no_instance_minutes")


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("plugin", "kind", "raised_at", "cleared_at")
    list_filter = ("kind",)
