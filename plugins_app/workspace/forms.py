"""The storage form shared by the dashboard and the Django admin: the access
keys are write-only (typed, stored encrypted, never shown again)."""

from __future__ import annotations

from typing import Any

from django import forms

from plugins_app.workspace.models import Organization, Storage

STORAGE_FIELDS = ["project", "name", "provider", "bucket", "region", "endpoint_url"]


class StorageForm(forms.ModelForm):
    endpoint_url = forms.URLField(
        label="Endpoint URL",
        required=False,
        assume_scheme="https",
        help_text="S3-compatible storages only.",
    )
    public_key = forms.CharField(
        label="Access key ID",
        required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
    )
    private_key = forms.CharField(
        label="Secret access key",
        required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text="Stored encrypted; never shown again. Leave both keys empty "
        "when editing to keep the stored ones.",
    )

    class Meta:
        model = Storage
        fields = STORAGE_FIELDS

    def __init__(
        self, *args: Any, organization: Organization | None = None, **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        self.organization = organization
        if organization is not None:
            project = self.fields["project"]
            assert isinstance(project, forms.ModelChoiceField)  # Storage.project
            project.queryset = organization.projects.all()

    def clean(self) -> dict[str, Any]:
        super().clean()  # returns cleaned_data, typed optional for overrides
        data = self.cleaned_data
        org = self.organization or data.get("organization")
        project = data.get("project")
        if project and org and project.organization_id != org.pk:
            self.add_error("project", "The project belongs to another organization.")
        keys = (data.get("public_key"), data.get("private_key"))
        if any(keys) and not all(keys) or (not self.instance.pk and not all(keys)):
            raise forms.ValidationError("Give both the access key ID and the secret.")
        if data.get("provider") == Storage.Provider.S3_COMPATIBLE and not data.get(
            "endpoint_url"
        ):
            self.add_error("endpoint_url", "S3-compatible storages need an endpoint.")
        return data

    def save(self, commit: bool = True) -> Storage:
        storage = super().save(commit=False)
        if self.organization is not None:
            storage.organization = self.organization
        if self.cleaned_data.get("public_key"):
            storage.set_credentials(
                self.cleaned_data["public_key"], self.cleaned_data["private_key"]
            )
        if commit:
            storage.save()
        return storage
