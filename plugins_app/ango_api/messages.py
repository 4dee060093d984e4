"""What the SDK sends and what it is answered: lenient query strings, bounded
JSON bodies, the success reply and the all-or-nothing refusal. (Other
refusals: auth.fail.)"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from plugins_app.ango_api.auth import fail
from plugins_app.inputs import json_loads_bounded
from plugins_app.runs import logs as run_logs
from plugins_app.runs.models import Run


def ok(data: dict[str, Any]) -> JsonResponse:
    return JsonResponse({"status": "success", "data": data})


def json_param(value: str | None, *, default: Any) -> Any:
    if not value:
        return default
    try:
        return json_loads_bounded(value, what="The parameter")
    except ValueError:
        return value


def bulk_json_body(request: HttpRequest, advice: str) -> Any:
    """The JSON body of a bulk write (imports, cloud assets), or a 413 naming
    HUB_IMPORT_MAX_BYTES. read(), not .body: DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)
    is for forms; a 10,000-record import is bigger and has its own limit."""
    limit = settings.HUB_IMPORT_MAX_BYTES
    declared = int(request.headers.get("Content-Length") or 0)
    raw = b"" if declared > limit else request.read(limit + 1)
    if declared > limit or len(raw) > limit:
        return fail(
            f"The body is over the hub's limit of {limit:,} bytes "
            f"(HUB_IMPORT_MAX_BYTES): {advice}.",
            413,
        )
    return json_body(raw)


def json_body(raw: bytes) -> Any:
    """The parsed body, or None (each caller then says what it expects) when
    it is not JSON or nests deeper than HUB_MAX_JSON_DEPTH (stored or shown,
    such a value would recurse past Python's limit)."""
    try:
        # Bulk imports have their own byte limit (HUB_IMPORT_MAX_BYTES), and
        # walking all of a 256 MB body would cost more than its checks do.
        small = len(raw) <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return json_loads_bounded(raw or b"null", max_bytes=len(raw), walk=small)
    except ValueError:
        return None


def as_list(value: Any) -> list[Any]:
    if isinstance(value, dict) and "$in" in value:
        value = value["$in"]
    return list(value) if isinstance(value, list) else [value]


def refused(
    run: Run, errors: list[dict[str, Any]], total: int, what: str, verb: str
) -> JsonResponse:
    """An all-or-nothing write refused: the per-record errors go to the plugin
    and to the run log."""
    run_logs.run_log_import_errors(run, errors, total=total)
    return JsonResponse(
        {
            "status": "fail",
            "message": f"{len(errors)} of {total} {what} are invalid; "
            f"nothing was {verb}.",
            "errors": errors[:1000],
        },
        status=400,
    )
