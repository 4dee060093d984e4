"""State changes of hosted code: upload, build start and end. Views, Celery
tasks and commands call these; the build itself is in build.py."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone

from plugins_app.hosted import archive
from plugins_app.hosted.models import HostedCode
from plugins_app.plugins.models import Delivery, Plugin
from plugins_app.plugins.versions import code_hash


def code_upload(
    plugin: Plugin,
    *,
    filename: str,
    data: bytes,
    memory_limit_mb: int,
    user: User | None,
) -> HostedCode:
    """Store new code for the plugin (it becomes hosted) and queue its build.
    Raises archive.ArchiveError for an upload that cannot work."""
    files = archive.files_of(filename, data)
    archive.check_source(files)
    with transaction.atomic():
        code, created = HostedCode.objects.select_for_update().get_or_create(
            plugin=plugin,
            defaults={"filename": filename, "archive": data},
        )
        if not created:
            code.version = F("version") + 1
        code.filename = filename[:200]
        code.archive = data
        code.requirements = archive.requirements_of(files)
        code.memory_limit_mb = memory_limit_mb
        code.status = HostedCode.Status.BUILDING
        code.build_log = "Queued for building.\n"
        code.uploaded_by = user
        code.uploaded_at = timezone.now()
        code.build_started_at = code.built_at = None
        code.save()
        code.refresh_from_db()
        # The code's hash is the version runs and jobs record from now on
        # (plugins/versions.py); dispatch waits for this build.
        plugin.delivery, plugin.code_version = Delivery.HOSTED, code_hash(data)
        Plugin.objects.filter(pk=plugin.pk).update(
            delivery=plugin.delivery, code_version=plugin.code_version
        )
        code_id = code.pk
        transaction.on_commit(lambda: _queue_build(code_id))
    return code


def _queue_build(code_id: int) -> None:
    from plugins_app.hosted.tasks import build_hosted_code

    build_hosted_code.delay(code_id)


def code_limits_update(code: HostedCode, *, memory_limit_mb: int) -> None:
    HostedCode.objects.filter(pk=code.pk).update(memory_limit_mb=memory_limit_mb)


def build_started(code_id: int) -> HostedCode | None:
    code = HostedCode.objects.select_related("plugin").filter(pk=code_id).first()
    if code is None or code.status != HostedCode.Status.BUILDING:
        return None
    HostedCode.objects.filter(pk=code.pk, version=code.version).update(
        build_started_at=timezone.now(), build_log="Build started.\n"
    )
    return code


def build_log_append(code: HostedCode, text: str) -> None:
    """Progress of a build, visible on the plugin page while it runs."""
    HostedCode.objects.filter(pk=code.pk, version=code.version).update(
        build_log=Concat(F("build_log"), Value(text))
    )


def build_finished(
    code: HostedCode,
    *,
    ok: bool,
    message: str,
    handler_name: str = "",
    code_path: str = "",
    env_path: str = "",
) -> bool:
    """Building → Active or Failed, unless a newer upload replaced this version
    meanwhile. Waiting runs are dispatched (or failed, saying why)."""
    from plugins_app.runs.dispatch import dispatch_pending

    with transaction.atomic():
        changed = HostedCode.objects.transition(
            code.pk,
            HostedCode.Status.BUILDING,
            HostedCode.Status.ACTIVE if ok else HostedCode.Status.FAILED,
            where={"version": code.version},
            build_log=Concat(F("build_log"), Value(message)),
            handler_name=handler_name,
            code_path=code_path,
            env_path=env_path,
            built_at=timezone.now(),
        )
        plugin_id = code.plugin_id
        if changed:
            transaction.on_commit(lambda: dispatch_pending(plugin_id))
    return bool(changed)
