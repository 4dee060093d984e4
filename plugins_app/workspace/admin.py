from typing import Any

from django import forms
from django.contrib import admin

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


class StorageForm(forms.ModelForm):
    """The keys are write-only: typed here, stored encrypted, never shown."""

    public_key = forms.CharField(
        label="Access key ID", required=False, widget=forms.PasswordInput
    )
    private_key = forms.CharField(
        label="Secret access key", required=False, widget=forms.PasswordInput
    )

    class Meta:
        model = Storage
        fields = [
            "organization",
            "project",
            "name",
            "provider",
            "bucket",
            "region",
            "endpoint_url",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        project, org = data.get("project"), data.get("organization")
        if project and org and project.organization_id != org.pk:
            self.add_error("project", "The project belongs to another organization.")
        if not self.instance.pk and not (
            data.get("public_key") and data.get("private_key")
        ):
            raise forms.ValidationError("Give both keys for a new storage.")
        return data

    def save(self, commit: bool = True) -> Storage:
        storage = super().save(commit=False)
        # Left empty on edit: keep the stored keys.
        if self.cleaned_data.get("public_key") and self.cleaned_data.get("private_key"):
            storage.set_credentials(
                self.cleaned_data["public_key"], self.cleaned_data["private_key"]
            )
        if commit:
            storage.save()
        return storage


@admin.register(Storage)
class StorageAdmin(admin.ModelAdmin):
    form = StorageForm
    list_display = ["name", "organization", "project", "provider", "bucket"]
    list_filter = ["organization", "provider"]
