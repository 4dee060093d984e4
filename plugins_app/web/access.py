"""Access helpers: return the object or raise 404 (outsiders) / 403 (members
without the right role). Every view and consumer goes through these, which is
what keeps organizations apart."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from plugins_app.plugins.models import Plugin, Preset
from plugins_app.runs.models import Run

# One rule for who administers an organization: the workspace's (web, runs
# and the API call it through here).
from plugins_app.workspace.bulk import quoted
from plugins_app.workspace.lifecycle import is_org_admin
from plugins_app.workspace.models import (
    Asset,
    Membership,
    Organization,
    Project,
    Storage,
    Task,
)
from plugins_app.workspace.rows import ModelRows

M = TypeVar("M", Project, Plugin)


def user_orgs(user: Any) -> QuerySet[Organization]:
    if not getattr(user, "is_authenticated", False):
        return Organization.objects.none()
    return Organization.objects.filter(memberships__user=user)


def visible_projects(user: Any) -> QuerySet[Project]:
    return Project.objects.filter(organization__in=user_orgs(user))


def visible_plugins(user: Any) -> QuerySet[Plugin]:
    return Plugin.objects.filter(organization__in=user_orgs(user))


def visible_runs(user: Any) -> QuerySet[Run]:
    return Run.objects.filter(organization__in=user_orgs(user))


NO_PROJECT, NO_PLUGIN = "No such project", "No such plugin"


def get_project_for_user(user: Any, project_id: int) -> Project:
    project = _member_row(Project, user, project_id)
    if project is None:
        raise Http404(NO_PROJECT)
    return project


def get_asset_for_user(user: Any, project: Project, asset_id: int) -> Asset:
    try:
        return project.assets.select_related("task").get(pk=asset_id)
    except Asset.DoesNotExist:
        raise Http404("No such asset") from None


def get_task_for_user(user: Any, task_id: int, project: Project | None = None) -> Task:
    tasks = Task.objects.filter(project__in=visible_projects(user))
    if project is not None:
        tasks = tasks.filter(project=project)
    try:
        return tasks.select_related("asset", "project").get(pk=task_id)
    except Task.DoesNotExist:
        raise Http404("No such task") from None


def get_plugin_for_user(user: Any, plugin_id: int) -> Plugin:
    plugin = _member_row(Plugin, user, plugin_id)
    if plugin is None:
        raise Http404(NO_PLUGIN)
    return plugin


_MAX_ID = 2**63 - 1


def _member_row(model: type[M], user: Any, pk: Any) -> M | None:
    """The row `pk` of an organization-owned model (Project, Plugin) if the
    user is a member of its organization, else None: the rule of
    visible_projects/visible_plugins as one SELECT written once per model, its
    rows made into instances as `Model.objects.raw` makes them (these two run
    on every API call that names a plugin or project, and the ORM's query
    building, or RawQuerySet's column mapping, cost several times the query)."""
    if not getattr(user, "is_authenticated", False):
        return None
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        return None
    if not 0 < pk <= _MAX_ID:
        return None
    rows = _ROWS[model]
    found = rows.fetch(_member_row_sql(model), [pk, user.pk])
    return found[0] if found else None


_ROWS: dict[type[models.Model], ModelRows[Any]] = {
    Project: ModelRows(Project),
    Plugin: ModelRows(Plugin),
}


@functools.cache
def _member_row_sql(model: type[models.Model]) -> str:
    return (
        f"SELECT {_ROWS[model].select('r')} FROM {quoted(model)} r "  # noqa: S608
        f"WHERE r.{quoted(model, 'id')} = %s AND {member_of_sql(model, 'r', '%s')}"
    )


def member_of_sql(model: type[models.Model], alias: str, user: str) -> str:
    """The rule of visible_projects/visible_plugins as SQL: the row `alias` of
    an organization-owned model (Project, Plugin) is visible to the user
    `user` (a parameter mark or a column) if they are a member of its
    organization. Only quoted names from the models are formatted in."""
    q, m = quoted, Membership
    return (
        f"EXISTS (SELECT 1 FROM {q(m)} m "  # noqa: S608
        f"WHERE m.{q(m, 'organization')} = {alias}.{q(model, 'organization')} "
        f"AND m.{q(m, 'user')} = {user})"
    )


def member_rows(model: type[M]) -> ModelRows[M]:
    """How _member_row reads the model's rows (also read in one statement
    with a token's user: web/api/auth.py)."""
    rows: ModelRows[M] = _ROWS[model]
    return rows


def get_admin_plugin_for_user(user: Any, plugin_id: int) -> Plugin:
    plugin = get_plugin_for_user(user, plugin_id)
    if not is_org_admin(user, plugin.organization_id):
        raise PermissionDenied("Only admins manage plugins")
    return plugin


def get_run_for_user(user: Any, run_id: int) -> Run:
    try:
        return (
            visible_runs(user)
            .select_related("plugin", "project", "created_by")
            .get(pk=run_id)
        )
    except Run.DoesNotExist:
        raise Http404("No such run") from None


def user_can_view_run(user: Any, run_id: int) -> bool:
    return visible_runs(user).filter(pk=run_id).exists()


def admin_orgs(user: Any) -> QuerySet[Organization]:
    return user_orgs(user).filter(
        memberships__user=user, memberships__role=Membership.Role.ADMIN
    )


def get_preset(project: Project, plugin: Plugin, preset_id: Any) -> Preset | None:
    """The chosen preset of this project and plugin; None when none is chosen.
    An id of another project's (or organization's) preset is a 404."""
    if preset_id in (None, ""):
        return None
    try:
        return Preset.objects.select_related("plugin").get(
            pk=int(preset_id), project=project, plugin=plugin
        )
    except (Preset.DoesNotExist, ValueError, TypeError):
        raise Http404("No such preset") from None


def admin_memberships(user: Any) -> QuerySet[Membership]:
    """Every membership of the organizations the user administers."""
    return (
        Membership.objects.filter(organization__in=admin_orgs(user))
        .select_related("user", "organization")
        .order_by("organization__name", "user__username")
    )


def get_admin_membership_for_user(user: Any, membership_id: int) -> Membership:
    """404 unless the user administers the membership's organization."""
    return get_object_or_404(admin_memberships(user), pk=membership_id)


def admin_storages(user: Any) -> QuerySet[Storage]:
    """Storages of the organizations the user administers (members see only
    names on project pages; keys are never shown to anyone)."""
    return Storage.objects.filter(
        organization__memberships__user=user,
        organization__memberships__role=Membership.Role.ADMIN,
    ).select_related("organization", "project")


def get_admin_storage_for_user(user: Any, storage_id: int) -> Storage:
    try:
        return admin_storages(user).get(pk=storage_id)
    except Storage.DoesNotExist:
        raise Http404("No such storage") from None
