"""The JSON API: everything the dashboard does, for scripts. OpenAPI schema at
/api/openapi.json, interactive docs at /api/docs.

Authentication: `Authorization: Bearer <token>` with a personal token from
`manage.py create_api_token` (a refused one is a 401), or, for calls without
that header, the browser session with CSRF (auth.py).

One module per area, each with its Router, mounted here without a prefix:
plugins.py, hosted.py (a plugin's hosted code), runs.py, projects.py (and
their tasks); fields.py holds the field types they share. Apps above the web
app mount their own Routers in plugins_app/urls.py.
"""

from __future__ import annotations

from ninja import NinjaAPI
from ninja.operation import Operation

from plugins_app.web.api import hosted, plugins, projects, runs
from plugins_app.web.api.auth import TokenAuth, session_auth
from plugins_app.web.api.fields import DbId
from plugins_app.web.api.runs import run_out

__all__ = ["DbId", "api", "run_out"]


class _HubApi(NinjaAPI):
    def get_openapi_operation_id(self, operation: Operation) -> str:
        # Generated clients name their methods after the operationId, which
        # ninja derives from the module: the routes of this package keep the
        # ids they had when they all lived in one module, plugins_app.web.api.
        if operation.view_func.__module__.startswith(f"{__name__}."):
            return f"{__name__}_{operation.view_func.__name__}".replace(".", "_")
        return super().get_openapi_operation_id(operation)


api = _HubApi(
    title="Plugin Hub API",
    version="1",
    description="Register plugins, start runs and follow them.",
    # Token first: the session's CSRF check is for calls without a token.
    auth=[TokenAuth(), session_auth],
    urls_namespace="api",
)
for _area in (projects, plugins, hosted, runs):
    api.add_router("", _area.router)
