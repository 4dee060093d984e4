from __future__ import annotations

from typing import Any

from django import forms

from plugins_app.inputs import parse_id
from plugins_app.plugins.kinds import KINDS, checks, kind_for
from plugins_app.plugins.models import Delivery, Plugin, Preset
from plugins_app.plugins.presets import suggest_mapping
from plugins_app.plugins.services import default_config_errors, parse_class_names
from plugins_app.plugins.triggers import plugin_trigger_events
from plugins_app.web.asset_table import SelectionFormMixin
from plugins_app.workspace.events import TRIGGER_EVENTS
from plugins_app.workspace.models import Batch, Organization, Project


class ModelIdsField(forms.ModelMultipleChoiceField):
    """A multiple choice of objects by id where an id out of the database's
    range (or not ASCII digits) is an invalid choice, not an overflow of the
    IN query (a 500) that ModelMultipleChoiceField would run with it."""

    def clean(self, value: Any) -> Any:
        for pk in value or []:
            if parse_id(str(pk)) is None:
                raise forms.ValidationError(
                    self.error_messages["invalid_choice"],
                    code="invalid_choice",
                    params={"value": pk},
                )
        return super().clean(value)


def _model_choice(form: forms.BaseForm, name: str) -> forms.ModelChoiceField[Any]:
    """The form's model choice field of that name, typed as one."""
    field = form.fields[name]
    assert isinstance(field, forms.ModelChoiceField), name
    return field


class PluginForm(forms.ModelForm):
    # Plugin.clean() refuses userinfo, ?, # and internal addresses (ops/egress.py).
    connector_url = forms.URLField(
        label="Connector URL",
        required=False,
        assume_scheme="https",
        help_text="REST delivery: the base URL of the plugin started with "
        "CONNECTOR=REST (the hub POSTs jobs to <url>/plugin and probes "
        "<url>/heartbeat).",
    )
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
            "delivery",
            "connector_url",
            "default_config",
            "timeout_seconds",
            "concurrency",
            "max_attempts",
            "version",
            "projects",
        ]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "default_config": forms.Textarea(attrs={"rows": 4, "class": "mono"}),
            "projects": forms.CheckboxSelectMultiple,
        }
        labels = {"projects": "Active on projects"}
        field_classes = {"projects": ModelIdsField}

    def __init__(self, *args: Any, organization: Organization, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.organization = organization
        # Left out, a plugin connects out (forms posted before delivery existed).
        self.fields["delivery"].required = False
        # Hosted: code uploaded on the plugin's page (plugins_app/hosted/).
        delivery = self.fields["delivery"]
        assert isinstance(delivery, forms.ChoiceField)  # a model field with choices
        delivery.choices = Delivery.choices
        _model_choice(self, "projects").queryset = organization.projects.all()
        # Left empty, it keeps the model's default (scripts posting older forms).
        self.fields["max_attempts"].required = False
        if self.instance.pk:
            self.fields["class_names_text"].initial = "\n".join(
                self.instance.class_names
            )
            self.fields["trigger_events"].initial = plugin_trigger_events(self.instance)

    def clean(self) -> dict[str, Any]:
        super().clean()  # returns cleaned_data, typed optional for overrides
        cleaned = self.cleaned_data
        cleaned["delivery"] = cleaned.get("delivery") or Delivery.SOCKET
        url = cleaned.get("connector_url") or ""
        if cleaned["delivery"] == Delivery.REST and not url.startswith(
            ("http://", "https://")
        ):
            self.add_error(
                "connector_url", "REST delivery needs the connector's http(s) URL."
            )
        kind = KINDS.get(cleaned.get("type") or "")
        if cleaned.get("trigger_events") and (
            kind is None or "trigger_events" not in kind.register_fields
        ):
            self.add_error(
                "trigger_events", "Only Event-triggered plugins run on events."
            )
        return cleaned

    def kinds_having(self) -> dict[str, str]:
        """For the register dialog: each type-specific field and the types
        that have it, space-separated (data-kinds; hub.js hides the field
        for other types, and without JS every field shows)."""
        having: dict[str, list[str]] = {}
        for kind in KINDS.values():
            for name in kind.register_fields:
                having.setdefault(name, []).append(kind.type)
        return {name: " ".join(types) for name, types in having.items()}

    def kind_descriptions(self) -> list[tuple[str, str, str]]:
        """(type, label, description) of every kind, for the dialog's notes."""
        return [(k.type, k.label, k.description) for k in KINDS.values()]

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
        kind = KINDS.get(self.cleaned_data.get("type") or "")
        if kind is not None and kind.needs_classes and not names:
            raise forms.ValidationError("Model plugins need at least one class name.")
        return names


class RunForm(SelectionFormMixin):
    """The Run dialog: class mapping, scope (assets, batches or the asset
    table's selection) and config."""

    external_ids = forms.CharField(
        label="Asset external IDs",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "astronaut\ncoins"}),
        help_text="One per line or comma-separated.",
    )
    batches = ModelIdsField(
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
    preset = forms.ModelChoiceField(
        queryset=Preset.objects.none(),
        required=False,
        empty_label="— no preset —",
        label="Preset",
    )
    preset_name = forms.CharField(
        label="Save as preset", required=False, max_length=100
    )

    # Model and Batch Model, admins only: write over people's answers too.
    replace_submitted = forms.BooleanField(
        label="Replace submitted answers",
        required=False,
        help_text="Off: tasks people submitted or reviewed keep their answer and "
        "are skipped. On: their answer is replaced too (undo restores it).",
    )

    # Model and Batch Model: off, the first timeout fails the job (explained).
    retry_timeouts = forms.BooleanField(
        label="Retry jobs that time out",
        required=False,
        help_text="Off: a job the plugin does not answer in time fails at once, "
        "with the known causes. On: it is tried again, up to the plugin's attempts.",
    )

    def __init__(
        self,
        *args: Any,
        plugin: Plugin,
        project: Project,
        preset: Preset | None = None,
        may_replace: bool = False,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.plugin = plugin
        self.project = project
        # Shown to admins only; a non-admin's forged tick is refused in clean.
        self.may_replace = may_replace
        # What differs by plugin type comes from its kind (plugins/kinds/).
        self.kind = kind = kind_for(plugin.type)
        if not kind.writes_answers:
            del self.fields["replace_submitted"]
            del self.fields["retry_timeouts"]
        self.fields["config_json"].initial = plugin.default_config
        if kind.scope != "assets":
            del self.fields["external_ids"]
        if kind.scope != "batches":
            del self.fields["batches"]
        else:
            _model_choice(self, "batches").queryset = project.batches.all()
        self.kind_field_names = list(kind.run_fields(project))
        self.fields.update(kind.run_fields(project))
        entries = [e for e in project.ontology_entries() if e.get("schemaId")]
        choices = [("", "— not mapped —")] + [
            (e["schemaId"], f"{e.get('title', e['schemaId'])} ({e.get('tool', '?')})")
            for e in entries
        ]
        self.known_schema_ids = {e["schemaId"] for e in entries}
        saved = preset.class_mapping if preset else {}
        # Only kinds that label with classes have a mapping (an export's dialog
        # does not mention one).
        mapped_classes = plugin.class_names if kind.needs_classes else []
        for index, model_class in enumerate(mapped_classes):
            field_choices = list(choices)
            initial = saved.get(model_class) or suggest_mapping(model_class, entries)
            if initial and initial not in self.known_schema_ids:
                # Keep a broken preset visible instead of silently unmapping it.
                field_choices.append(
                    (initial, f"⚠ {initial} (no longer in the ontology)")
                )
            self.fields[f"map_{index}"] = forms.ChoiceField(
                label=model_class,
                choices=field_choices,
                required=False,
                initial=initial,
            )
        presets = Preset.objects.filter(project=project, plugin=plugin)
        _model_choice(self, "preset").queryset = presets
        self.fields["preset"].initial = preset.pk if preset else None
        # Not self.preset: the `preset` field's name on the form class.
        self.chosen_preset = preset
        if preset is not None:
            self.fields["config_json"].initial = preset.config_json
            self.fields["preset_name"].initial = preset.name

    def input_fields(self) -> list[forms.BoundField]:
        """The kind's own inputs (a storage, a CSV, stages...), in order."""
        return [self[name] for name in self.kind_field_names]

    def mapping_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name.startswith("map_")]

    def clean(self) -> dict[str, Any]:
        super().clean()  # returns cleaned_data, typed optional for overrides
        cleaned = self.cleaned_data
        # The one mapping check (the API, presets and workflow stages run it
        # too); a mapping loaded from a preset says so.
        preset = self.chosen_preset
        source = f" (from preset “{preset.name}”)" if preset else ""
        for problem in checks.mapping_problems(
            self.plugin, self.project, self.class_mapping(), source=source
        ):
            self.add_error(None, problem)
        return cleaned

    def clean_replace_submitted(self) -> bool:
        wanted = bool(self.cleaned_data.get("replace_submitted"))
        if wanted and not self.may_replace:
            raise forms.ValidationError(
                "Only admins of this organization can replace submitted answers."
            )
        return wanted

    def clean_config_json(self) -> str:
        text = self.cleaned_data.get("config_json")
        if problems := checks.config_problems(text):
            raise forms.ValidationError(problems)
        return checks.normal_config(text)

    def run_inputs(self) -> dict[str, Any]:
        """The kind-specific part of the request (checked again by the service)."""
        return self.kind.run_inputs(self.cleaned_data)

    def class_mapping(self) -> dict[str, str]:
        classes = self.plugin.class_names if self.kind.needs_classes else []
        return {
            model_class: self.cleaned_data.get(f"map_{index}") or ""
            for index, model_class in enumerate(classes)
        }

    def external_id_list(self) -> list[str]:
        text = self.cleaned_data.get("external_ids") or ""
        return [p.strip() for line in text.splitlines() for p in line.split(",")]
