from __future__ import annotations

import difflib
import json
from typing import Any

from django import forms

from plugins_app.plugins.models import Plugin, PluginType
from plugins_app.plugins.services import (
    MODEL_TYPES,
    default_config_errors,
    parse_class_names,
)
from plugins_app.plugins.triggers import plugin_trigger_events
from plugins_app.workspace.events import TRIGGER_EVENTS
from plugins_app.workspace.models import Batch, Organization, Project


class PluginForm(forms.ModelForm):
    class_names_text = forms.CharField(
        label="Class names",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "face\ncoin"}),
        help_text="One per line (or comma-separated): the classes your model returns.",
    )
    trigger_events = forms.MultipleChoiceField(
        label="Run on events",
        choices=[(name, name) for name in TRIGGER_EVENTS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Event-triggered plugins: a run for each of these events of a "
        "task, on the projects it is active on.",
    )

    class Meta:
        model = Plugin
        fields = [
            "name",
            "description",
            "type",
            "default_config",
            "timeout_seconds",
            "concurrency",
            "max_attempts",
            "projects",
        ]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "default_config": forms.Textarea(attrs={"rows": 4, "class": "mono"}),
            "projects": forms.CheckboxSelectMultiple,
        }
        labels = {"projects": "Active on projects"}

    def __init__(self, *args: Any, organization: Organization, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.organization = organization
        self.fields["projects"].queryset = organization.projects.all()
        # Left empty, it keeps the model's default (scripts posting older forms).
        self.fields["max_attempts"].required = False
        if self.instance.pk:
            self.fields["class_names_text"].initial = "\n".join(
                self.instance.class_names
            )
            self.fields["trigger_events"].initial = plugin_trigger_events(self.instance)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("trigger_events") and cleaned.get("type") != PluginType.EVENT:
            self.add_error(
                "trigger_events", "Only Event-triggered plugins run on events."
            )
        return cleaned

    def clean_default_config(self) -> str:
        text = self.cleaned_data.get("default_config") or "{}"
        if errors := default_config_errors(text):
            raise forms.ValidationError(errors)
        return text

    def clean_max_attempts(self) -> int:
        value = self.cleaned_data.get("max_attempts")
        if value is None:
            return self.instance.max_attempts
        return value

    def clean_class_names_text(self) -> list[str]:
        names = parse_class_names(self.cleaned_data.get("class_names_text", ""))
        if self.cleaned_data.get("type") in MODEL_TYPES and not names:
            raise forms.ValidationError("Model plugins need at least one class name.")
        return names


class RunForm(forms.Form):
    """The Run dialog: class mapping, scope (assets or batches) and config."""

    external_ids = forms.CharField(
        label="Asset external IDs",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "astronaut\ncoins"}),
        help_text="One per line or comma-separated.",
    )
    batches = forms.ModelMultipleChoiceField(
        queryset=Batch.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None chosen runs over the whole project.",
    )
    config_json = forms.CharField(
        label="Config JSON",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "class": "mono"}),
    )

    def __init__(self, *args: Any, plugin: Plugin, project: Project, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.plugin = plugin
        self.project = project
        self.fields["config_json"].initial = plugin.default_config
        if plugin.type == PluginType.MODEL:
            del self.fields["batches"]
        else:
            del self.fields["external_ids"]
            self.fields["batches"].queryset = project.batches.all()
        choices = [("", "— not mapped —")] + [
            (e["schemaId"], f"{e.get('title', e['schemaId'])} ({e.get('tool', '?')})")
            for e in project.ontology_entries()
            if e.get("schemaId")
        ]
        titles = {e.get("title", ""): e["schemaId"] for e in project.ontology_entries()}
        for index, model_class in enumerate(plugin.class_names):
            self.fields[f"map_{index}"] = forms.ChoiceField(
                label=model_class,
                choices=choices,
                required=False,
                initial=suggest_mapping(model_class, titles),
            )

    def mapping_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name.startswith("map_")]

    def clean_config_json(self) -> str:
        text = (self.cleaned_data.get("config_json") or "").strip() or "{}"
        try:
            json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Config JSON is not valid: {exc}") from exc
        return text

    def class_mapping(self) -> dict[str, str]:
        return {
            model_class: self.cleaned_data.get(f"map_{index}") or ""
            for index, model_class in enumerate(self.plugin.class_names)
        }

    def external_id_list(self) -> list[str]:
        text = self.cleaned_data.get("external_ids") or ""
        return [p.strip() for line in text.splitlines() for p in line.split(",")]


def suggest_mapping(model_class: str, titles: dict[str, str]) -> str:
    """Exact, then case-insensitive, then close title matches."""
    if model_class in titles:
        return titles[model_class]
    lowered = {t.lower(): sid for t, sid in titles.items()}
    if model_class.lower() in lowered:
        return lowered[model_class.lower()]
    close = difflib.get_close_matches(
        model_class.lower(), list(lowered), n=1, cutoff=0.75
    )
    return lowered[close[0]] if close else ""
