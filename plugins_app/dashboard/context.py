"""The banner of open plugin alerts on every page, for members of the plugin's
organization (the people working on its projects)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from plugins_app.dashboard.models import Alert
from plugins_app.web.access import user_orgs


def plugin_alerts(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def alerts() -> list[Alert]:
        # Called by the template only when base.html renders the banner, so
        # JSON and fragment responses do not pay for the query.
        return list(
            Alert.objects.filter(
                cleared_at__isnull=True,
                plugin__organization__in=user_orgs(user),
                plugin__projects__isnull=False,
            )
            .distinct()
            .select_related("plugin")[:5]
        )

    return {"plugin_alerts": alerts}
