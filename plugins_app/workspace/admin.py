from django.contrib import admin

from plugins_app.workspace.forms import STORAGE_FIELDS, StorageForm
from plugins_app.workspace.models import (
    ApiToken,
    Asset,
    Batch,
    Membership,
    Organization,
    Project,
    Storage,
    Task,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    inlines = [MembershipInline]


class BatchInline(admin.TabularInline):
    model = Batch
    extra = 0


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "created_at"]
    list_filter = ["organization"]
    inlines = [BatchInline]


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ["external_id", "project", "width", "height"]
    list_filter = ["project", "batches"]
    search_fields = ["external_id"]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["asset", "project", "status", "stage", "updated_at"]
    list_filter = ["project", "status"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "created_at"]
    readonly_fields = ["key_hash"]


class StorageAdminForm(StorageForm):
    class Meta(StorageForm.Meta):
        fields = ["organization", *STORAGE_FIELDS]


@admin.register(Storage)
class StorageAdmin(admin.ModelAdmin):
    form = StorageAdminForm
    list_display = ["name", "organization", "project", "provider", "bucket"]
    list_filter = ["organization", "provider"]
