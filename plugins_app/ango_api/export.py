"""`/v2/export` and `/v2/exportV3`: an export plugin's v3 NDJSON export, built
by a Celery worker (or here when none takes it)."""

from __future__ import annotations

import asyncio
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import reverse

from plugins_app.ango_api.auth import fail, run_for_api_key, same_project
from plugins_app.ango_api.messages import json_param, ok
from plugins_app.exports import services as exports
from plugins_app.exports.models import ExportSnapshot

EXPORT_POLL_SECONDS = 0.2


async def export(request: HttpRequest) -> JsonResponse:
    """`GET /v2/export` (1.4.x) and `/v2/exportV3` (1.3.x): queue the build of the
    v3 NDJSON export (a Celery task) and answer with its link once it is ready.
    Async, so waiting for the worker holds no thread."""
    if request.method != "GET":
        return fail("Use GET.", 405)
    run = await sync_to_async(run_for_api_key)(request)
    if run is None:
        return fail("Missing, unknown or expired apikey.", 401)
    if not same_project(run, request.GET.get("project", "")):
        return fail("This apikey is not valid for that project.", 403)
    try:
        snapshot, token = await sync_to_async(exports.snapshot_request)(
            run,
            stages=_str_list(request.GET.get("stage")),
            batch_ids=_str_list(request.GET.get("batches")),
            base_url=request.build_absolute_uri("/"),
            path=request.path,
        )
    except exports.ExportError as exc:
        return fail(str(exc), exc.status)
    started = time.monotonic()
    while True:
        state, error = await sync_to_async(exports.snapshot_state)(snapshot.pk)
        if state == ExportSnapshot.State.READY:
            link = reverse("ango_api:export-file", args=[token])
            return ok({"exportPath": request.build_absolute_uri(link)})
        if state == ExportSnapshot.State.FAILED:
            return fail(f"The export could not be built: {error}", 500)
        waited = time.monotonic() - started
        if waited > settings.HUB_EXPORT_WAIT_SECONDS:
            wait = settings.HUB_EXPORT_WAIT_SECONDS
            return fail(f"The export was not built within {wait} s.", 504)
        if (
            state == ExportSnapshot.State.PENDING
            and waited >= settings.HUB_EXPORT_BUILD_HERE_AFTER_SECONDS
        ):
            # No worker took it: every one may be holding a REST connector job
            # of the very plugin asking. Build it here rather than wait forever.
            await _build_here(snapshot.pk, waited)
            continue
        await asyncio.sleep(EXPORT_POLL_SECONDS)


@sync_to_async(thread_sensitive=False)  # not on the consumers' database thread
def _build_here(snapshot_id: int, waited: float) -> None:
    try:
        exports.snapshot_build(
            snapshot_id,
            where=f"by the web process (no Celery worker took it in {waited:.0f} s)",
        )
    finally:
        connection.close()  # this pool thread's own connection


# Async, so not wrapped by api_key_required; marked for test_api_key_scope.
export.requires_api_key = True  # type: ignore[attr-defined]


def _str_list(value: str | None) -> list[str]:
    """`stage=["Complete"]`, `stage=Complete` or nothing."""
    parsed = json_param(value, default=[])
    items = parsed if isinstance(parsed, list) else [parsed]
    return [str(i) for i in items if i not in (None, "")]
