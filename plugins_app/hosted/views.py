"""The hosted-code panel of a plugin's page: upload (admins) and the build's
status and log (members; polled while the build runs)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from plugins_app.hosted.archive import ArchiveError
from plugins_app.hosted.forms import CodeUploadForm
from plugins_app.hosted.models import HostedCode
from plugins_app.hosted.services import code_upload
from plugins_app.plugins.models import Plugin
from plugins_app.web import access
from plugins_app.web.request_types import AuthenticatedHttpRequest

PANEL = "hosted/panel.html#hosted-panel"


@require_POST
@login_required
def code_upload_view(request: AuthenticatedHttpRequest, plugin_id: int) -> HttpResponse:
    plugin = access.get_admin_plugin_for_user(request.user, plugin_id)
    form = CodeUploadForm(request.POST, request.FILES, code=_code(plugin))
    if form.is_valid():
        upload = form.cleaned_data["code"]
        try:
            code_upload(
                plugin,
                filename=upload.name,
                data=upload.read(),
                memory_limit_mb=form.cleaned_data["memory_limit_mb"],
                user=request.user,
            )
        except ArchiveError as exc:
            form.add_error("code", str(exc))
        else:
            form = CodeUploadForm(code=_code(plugin))
    # Errors come back with 200: htmx swaps only successful responses.
    return _panel(request, plugin, form)


@require_GET
@login_required
def code_status_view(request: AuthenticatedHttpRequest, plugin_id: int) -> HttpResponse:
    plugin = access.get_plugin_for_user(request.user, plugin_id)
    return _panel(request, plugin, CodeUploadForm(code=_code(plugin)))


def _panel(request: HttpRequest, plugin: Plugin, form: CodeUploadForm) -> HttpResponse:
    is_admin = access.is_org_admin(request.user, plugin.organization_id)
    return render(
        request,
        PANEL,
        {"plugin": plugin, "code": _code(plugin), "form": form, "is_admin": is_admin},
    )


def _code(plugin: Plugin) -> HostedCode | None:
    return HostedCode.objects.filter(plugin=plugin).first()
