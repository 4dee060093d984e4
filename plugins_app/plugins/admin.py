from django.contrib import admin
from django.http import HttpRequest

from plugins_app.plugins.models import FailedHeartbeat, Plugin, PluginInstance, Preset


@admin.register(Plugin)
class PluginAdmin(admin.ModelAdmin):
    list_display = ["name", "type", "organization", "public_id", "timeout_seconds"]
    list_filter = ["type", "organization"]
    readonly_fields = ["public_id", "secret_hash", "secret_rotated_at"]
    filter_horizontal = ["projects"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Plugins get their secret from plugin_create, shown once in the dashboard.
        return False


@admin.register(PluginInstance)
class PluginInstanceAdmin(admin.ModelAdmin):
    list_display = [
        "plugin",
        "address",
        "connected_at",
        "last_heartbeat",
        "disconnected_at",
    ]
    list_filter = ["plugin"]


@admin.register(FailedHeartbeat)
class FailedHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["at", "claimed_id", "plugin", "address", "reason"]


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    list_display = ["name", "plugin", "project", "created_by", "updated_at"]
    list_filter = ["plugin", "project"]
