"""`apikey` authentication for the Ango-compatible API: the key of one job,
valid only for its run's project and only while the run lasts."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from plugins_app.plugins.secrets import token_hash
from plugins_app.runs.models import Run, RunApiKey


def fail(message: str, status: int) -> JsonResponse:
    return JsonResponse({"status": "fail", "message": message}, status=status)


def run_for_api_key(request: HttpRequest) -> Run | None:
    key = request.headers.get("apikey", "")
    if not key:
        return None
    found = (
        RunApiKey.objects.select_related("run__project", "run__plugin")
        .filter(key_hash=token_hash(key))
        .first()
    )
    if found is None or not found.is_valid():
        return None
    return found.run


# The calls a preview (Run.dry_run) may make besides reads: its logs, its REST
# answer, and import_labels, whose labels it holds instead of writing
# (runs/preview.py). Every other write (issues, metadata, batches, assets,
# requeues, annotate) is refused, so a preview changes nothing.
DRY_RUN_POSTS = frozenset({"plugin_log", "plugin_response", "import_labels"})


def api_key_required(view: Callable[..., JsonResponse]) -> Callable[..., JsonResponse]:
    """Passes the key's run to the view; refuses with JSON (the SDK reads JSON)."""

    @csrf_exempt
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
        run = run_for_api_key(request)
        if run is None:
            return fail("Missing, unknown or expired apikey.", 401)
        if (
            run.dry_run
            and request.method not in ("GET", "HEAD")
            and view.__name__ not in DRY_RUN_POSTS
        ):
            return fail(
                "This run is a preview (dry run): it writes nothing, so this call "
                "is refused; run it for real to do this.",
                403,
            )
        return view(request, run, *args, **kwargs)

    # Marks the view for tests that try every apikey endpoint (test_api_key_scope).
    wrapper.requires_api_key = True  # type: ignore[attr-defined]
    return wrapper


def same_project(run: Run, project_id: str) -> bool:
    return str(run.project_id) == str(project_id)
