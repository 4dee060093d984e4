"""An organization's settings pages: its cloud storages and its members' roles
(admins manage both)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from plugins_app.web import access
from plugins_app.web.dialogs import dialog_done, render_dialog
from plugins_app.web.request_types import AuthenticatedHttpRequest
from plugins_app.workspace.forms import StorageForm
from plugins_app.workspace.members import MemberError, member_set_role
from plugins_app.workspace.models import Membership


# --- cloud storages -------------------------------------------------------------
@require_GET
@login_required
def storage_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    # Members who are not admins see that storages exist only on project pages.
    return render(
        request,
        "storages/storage_list.html",
        {
            "storages": access.admin_storages(request.user),
            "can_manage": access.admin_orgs(request.user).exists(),
        },
    )


@require_http_methods(["GET", "POST"])
@login_required
def storage_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    organization = access.admin_orgs(request.user).first()
    if organization is None:
        raise PermissionDenied("Only admins manage storages")
    form = StorageForm(request.POST or None, organization=organization)
    if request.method == "POST" and form.is_valid():
        form.save()
        return dialog_done(request, reverse("web:storage-list"))
    return render_dialog(
        request,
        "storages/storage_list.html#storage-form",
        {"form": form},
        title="Add a cloud storage",
        back=reverse("web:storage-list"),
    )


@require_POST
@login_required
def storage_delete(request: AuthenticatedHttpRequest, storage_id: int) -> HttpResponse:
    access.get_admin_storage_for_user(request.user, storage_id).delete()
    return HttpResponseClientRedirect(reverse("web:storage-list"))


# --- members and roles ------------------------------------------------------------
@require_GET
@login_required
def member_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(request, "members/member_list.html", _members_context(request))


@require_POST
@login_required
def member_role(request: AuthenticatedHttpRequest, membership_id: int) -> HttpResponse:
    membership = access.get_admin_membership_for_user(request.user, membership_id)
    error = ""
    try:
        member_set_role(membership, request.POST.get("role", ""))
    except MemberError as exc:
        error = str(exc)
        membership.refresh_from_db()
    if not getattr(request, "htmx", False):
        if error:
            context = {**_members_context(request), "error": error}
            return render(request, "members/member_list.html", context, status=409)
        return redirect("web:member-list")
    context = {"membership": membership, "roles": Membership.Role.choices}
    return render(
        request,
        "members/member_list.html#member-row",
        {**context, "row_error": error, "row_saved": not error},
    )


def _members_context(request: AuthenticatedHttpRequest) -> dict[str, Any]:
    return {
        "memberships": access.admin_memberships(request.user),
        "mine": Membership.objects.filter(user=request.user).select_related(
            "organization"
        ),
        "roles": Membership.Role.choices,
    }
