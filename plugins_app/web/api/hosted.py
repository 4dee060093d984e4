"""A plugin's hosted code in the JSON API (plugins_app/hosted/): upload it,
follow its build."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import File, Form, Router, Schema, Status, UploadedFile

from plugins_app.web import access
from plugins_app.web.api.fields import ErrorOut
from plugins_app.web.request_types import AuthenticatedHttpRequest

router = Router()


class HostedCodeOut(Schema):
    plugin_id: int
    # none (nothing uploaded), building, active or failed
    status: str
    filename: str = ""
    version: int = 0
    handler: str = ""
    requirements: str = ""
    memory_limit_mb: int = 0
    build_log: str = ""
    uploaded_at: datetime | None = None
    built_at: datetime | None = None


def _code_out(plugin: Any) -> dict[str, Any]:
    from plugins_app.hosted.models import HostedCode

    code = HostedCode.objects.filter(plugin=plugin).first()
    if code is None:
        return {"plugin_id": plugin.pk, "status": "none"}
    return {
        "plugin_id": plugin.pk,
        "status": code.status,
        "filename": code.filename,
        "version": code.version,
        "handler": code.handler_name,
        "requirements": code.requirements,
        "memory_limit_mb": code.memory_limit_mb,
        "build_log": code.build_log,
        "uploaded_at": code.uploaded_at,
        "built_at": code.built_at,
    }


@router.get("/plugins/{plugin_id}/code", response=HostedCodeOut)
def get_code(request: AuthenticatedHttpRequest, plugin_id: int) -> dict[str, Any]:
    """The hosted code's build: poll `status` until active or failed."""
    return _code_out(access.get_plugin_for_user(request.user, plugin_id))


@router.post("/plugins/{plugin_id}/code", response={202: HostedCodeOut, 400: ErrorOut})
def upload_code(
    request: AuthenticatedHttpRequest,
    plugin_id: int,
    code: UploadedFile = File(...),  # noqa: B008 - ninja's parameter declaration
    memory_limit_mb: int = Form(512),  # noqa: B008
) -> Status[dict[str, Any]]:
    """Upload main.py or a zip (main.py + requirements.txt): the plugin becomes
    hosted and its build starts (multipart form: `code`, `memory_limit_mb`)."""
    from plugins_app.hosted.archive import ArchiveError
    from plugins_app.hosted.forms import CodeUploadForm
    from plugins_app.hosted.services import code_upload

    plugin = access.get_admin_plugin_for_user(request.user, plugin_id)
    form = CodeUploadForm({"memory_limit_mb": memory_limit_mb}, {"code": code})
    if not form.is_valid():
        return Status(400, {"errors": dict(form.errors)})
    try:
        code_upload(
            plugin,
            filename=code.name or "main.py",
            data=code.read(),
            memory_limit_mb=form.cleaned_data["memory_limit_mb"],
            user=request.user,
        )
    except ArchiveError as exc:
        return Status(400, {"errors": {"code": [str(exc)]}})
    return Status(202, _code_out(plugin))
