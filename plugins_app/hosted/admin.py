from django.contrib import admin

from plugins_app.hosted.models import HostedCode


@admin.register(HostedCode)
class HostedCodeAdmin(admin.ModelAdmin):
    list_display = ["plugin", "filename", "version", "status", "built_at"]
    list_filter = ["status"]
    readonly_fields = ["archive", "build_log", "code_path", "env_path"]
