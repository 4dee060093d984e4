"""REST connector mode (CONNECTOR=REST): the SDK posts its logs and results
here instead of over the socket."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from plugins_app.ango_api.auth import api_key_required, fail
from plugins_app.ango_api.messages import json_body, ok
from plugins_app.runs.dispatch.rest import connector_logs_ingest, connector_respond
from plugins_app.runs.models import Run


@require_POST
@api_key_required
def plugin_log(request: HttpRequest, run: Run) -> JsonResponse:
    """The SDK's REST-mode logger posts each record here with the job's apikey
    (the same dict as the socket `log` event)."""
    if not connector_logs_ingest(run, json_body(request.body)):
        return fail("A log record needs the session of a job of this apikey.", 400)
    return ok({})


@require_POST
@api_key_required
def plugin_response(request: HttpRequest, run: Run) -> JsonResponse:
    """Results the SDK sends outside the /plugin reply (export links, errors of
    exports), applied once like a socket `response`."""
    outcome = connector_respond(run, json_body(request.body))
    if outcome == "unknown-session":
        return fail("The response needs the session of a job of this apikey.", 400)
    return ok({"result": outcome})
