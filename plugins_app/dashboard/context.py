"""The banner of open plugin alerts on every page, for the people an alert
concerns: the admins of the plugin's organization, and the members of the
projects the plugin is active on.

The hub has no project membership of its own (every member of an
organization may open its projects), so a project's members are the people
who work on it: those in one of its labeling jobs, those with an event in one
of its tasks' history (they submitted, reviewed, sent back) and those who ran
a plugin on it. Someone who works only on another project of the same
organization is not shown an alert about a plugin they never meet."""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest

from plugins_app.dashboard.models import Alert
from plugins_app.runs.models import Run
from plugins_app.web.access import user_orgs
from plugins_app.workspace.models import LabelingJob, Membership, Project, TaskEvent


def member_projects(user: Any) -> QuerySet[Project]:
    """The projects `user` works on (see the module's docstring)."""
    return Project.objects.filter(
        Exists(LabelingJob.objects.filter(project=OuterRef("pk"), members=user))
        | Exists(TaskEvent.objects.filter(task__project=OuterRef("pk"), actor=user))
        | Exists(Run.objects.filter(project=OuterRef("pk"), created_by=user))
    )


def alerts_for(user: Any) -> QuerySet[Alert]:
    """The open alerts `user` is shown, of plugins active on a project."""
    administered = Membership.objects.filter(
        user=user, role=Membership.Role.ADMIN
    ).values("organization_id")
    return (
        Alert.objects.filter(
            cleared_at__isnull=True,
            plugin__organization__in=user_orgs(user),
            plugin__projects__isnull=False,
        )
        .filter(
            Q(plugin__organization__in=administered)
            | Q(plugin__projects__in=member_projects(user).values("pk"))
        )
        .distinct()
    )


def plugin_alerts(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def alerts() -> list[Alert]:
        # Called by the template only when base.html renders the banner, so
        # JSON and fragment responses do not pay for the query.
        return list(alerts_for(user).select_related("plugin")[:5])

    return {"plugin_alerts": alerts}
