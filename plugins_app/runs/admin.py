from django.contrib import admin

from plugins_app.runs.models import Run, RunLogLine, WorkItem


class WorkItemInline(admin.TabularInline):
    model = WorkItem
    extra = 0
    readonly_fields = [
        "asset",
        "session",
        "state",
        "attempts",
        "instance",
        "failure",
        "error",
    ]
    can_delete = False


class RunLogLineInline(admin.TabularInline):
    model = RunLogLine
    extra = 0
    readonly_fields = ["created_at", "level", "message", "extra"]
    can_delete = False


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "plugin", "project", "status", "created_by", "created_at"]
    list_filter = ["status", "plugin", "project"]
    readonly_fields = ["status", "error", "started_at", "finished_at"]
    inlines = [WorkItemInline, RunLogLineInline]
