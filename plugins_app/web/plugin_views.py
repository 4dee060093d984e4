"""Plugin pages: the list, register and edit dialogs, the secret shown once,
a REST connector's probe, a plugin's page with its instances."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from plugins_app.plugins.models import Plugin, PluginInstance
from plugins_app.plugins.services import (
    PluginCredentials,
    plugin_create,
    plugin_rotate_secret,
)
from plugins_app.plugins.triggers import plugin_set_triggers
from plugins_app.runs import selectors
from plugins_app.runs.tasks import probe_connector
from plugins_app.web import access
from plugins_app.web.dialogs import dialog_done, render_dialog
from plugins_app.web.forms import PluginForm
from plugins_app.web.partials import page_or_partial
from plugins_app.web.request_types import AuthenticatedHttpRequest
from plugins_app.workspace.models import Organization


@require_GET
@login_required
def plugin_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    plugins = selectors.plugins_with_liveness(access.visible_plugins(request.user))
    admin_org = access.admin_orgs(request.user).first()
    return render(
        request,
        page_or_partial(request, "plugins/plugin_list.html", "plugin-table"),
        {"plugins": plugins, "can_manage": admin_org is not None},
    )


@require_http_methods(["GET", "POST"])
@login_required
def plugin_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    organization = access.admin_orgs(request.user).first()
    if organization is None:
        raise PermissionDenied("Only admins register plugins")
    form = PluginForm(request.POST or None, organization=organization)
    if request.method == "POST" and form.is_valid():
        try:
            credentials = _plugin_create_from(form, organization)
        except ValidationError as exc:
            # plugin_create checks again (Plugin.clean): a connector's DNS
            # answer may have changed since the form's check a moment ago.
            form.add_error(None, [m for ms in exc.message_dict.values() for m in ms])
        else:
            Plugin.objects.filter(pk=credentials.plugin.pk).update(
                concurrency=form.cleaned_data["concurrency"],
                max_attempts=form.cleaned_data["max_attempts"],
            )
            _save_triggers(credentials.plugin, form)
            return _secret_once(request, credentials.plugin, credentials.secret)
    return render_dialog(
        request,
        "plugins/plugin_list.html#plugin-form",
        {"form": form, "plugin": None},
        title="Register a plugin",
        back=reverse("web:plugin-list"),
    )


def _plugin_create_from(
    form: PluginForm, organization: Organization
) -> PluginCredentials:
    return plugin_create(
        organization=organization,
        name=form.cleaned_data["name"],
        type=form.cleaned_data["type"],
        description=form.cleaned_data["description"],
        class_names=form.cleaned_data["class_names_text"],
        default_config=form.cleaned_data["default_config"],
        timeout_seconds=form.cleaned_data["timeout_seconds"],
        projects=list(form.cleaned_data["projects"]),
        delivery=form.cleaned_data["delivery"],
        connector_url=form.cleaned_data["connector_url"],
        version=form.cleaned_data["version"],
    )


@require_http_methods(["GET", "POST"])
@login_required
def plugin_edit(request: AuthenticatedHttpRequest, plugin_id: int) -> HttpResponse:
    plugin = access.get_admin_plugin_for_user(request.user, plugin_id)
    form = PluginForm(
        request.POST or None, instance=plugin, organization=plugin.organization
    )
    if request.method == "POST" and form.is_valid():
        plugin = form.save(commit=False)
        plugin.class_names = form.cleaned_data["class_names_text"]
        plugin.save()
        form.save_m2m()
        _save_triggers(plugin, form)
        return dialog_done(request, reverse("web:plugin-detail", args=[plugin.pk]))
    return render_dialog(
        request,
        "plugins/plugin_list.html#plugin-form",
        {"form": form, "plugin": plugin},
        title=f"Edit {plugin.name}",
        back=reverse("web:plugin-detail", args=[plugin.pk]),
    )


def _save_triggers(plugin: Plugin, form: PluginForm) -> None:
    plugin_set_triggers(
        plugin,
        projects=list(form.cleaned_data["projects"]),
        event_names=form.cleaned_data["trigger_events"],
    )


@require_POST
@login_required
def plugin_rotate(request: AuthenticatedHttpRequest, plugin_id: int) -> HttpResponse:
    plugin = access.get_admin_plugin_for_user(request.user, plugin_id)
    credentials = plugin_rotate_secret(plugin=plugin)
    return _secret_once(request, plugin, credentials.secret)


def _secret_once(request: HttpRequest, plugin: Plugin, secret: str) -> HttpResponse:
    response = render_dialog(
        request,
        "plugins/plugin_list.html#secret-once",
        {"plugin": plugin, "secret": secret, "host": request.build_absolute_uri("/")},
        title=f"Credentials for {plugin.name}",
    )
    # Nothing may cache the only copy of a secret.
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@login_required
def plugin_probe(request: AuthenticatedHttpRequest, plugin_id: int) -> HttpResponse:
    """Probe a REST connector now (in Celery; the instances table refreshes)."""
    plugin = access.get_admin_plugin_for_user(request.user, plugin_id)
    probe_connector.delay(plugin.pk)
    return HttpResponse("Probe requested; the table below updates in a few seconds.")


@require_GET
@login_required
def plugin_detail(request: AuthenticatedHttpRequest, plugin_id: int) -> HttpResponse:
    plugin = access.get_plugin_for_user(request.user, plugin_id)
    is_admin = access.is_org_admin(request.user, plugin.organization_id)
    return render(
        request,
        page_or_partial(request, "plugins/plugin_detail.html", "instances"),
        {
            "plugin": plugin,
            "is_admin": is_admin,
            "instances": PluginInstance.objects.live().filter(plugin=plugin),
            "failures": plugin.failures.all()[:20] if is_admin else [],
            "runs": plugin.runs.select_related("project", "created_by")[:10],
        },
    )
