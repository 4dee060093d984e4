"""Organization members and their roles: who registers plugins (Admin), who
accepts or rejects in review (Reviewer, Admin), who labels and runs plugins
(everyone)."""

from __future__ import annotations

from django.db import transaction

from plugins_app.workspace.models import Membership


class MemberError(Exception):
    """The role change cannot be made (shown to the admin)."""


def member_set_role(membership: Membership, role: str) -> Membership:
    """Give a member another role; an organization always keeps one admin."""
    if role not in Membership.Role.values:
        choices = ", ".join(Membership.Role.labels)
        raise MemberError(f"Choose a role: {choices}.")
    with transaction.atomic():
        admins = Membership.objects.select_for_update().filter(
            organization_id=membership.organization_id, role=Membership.Role.ADMIN
        )
        admin_ids = set(admins.values_list("pk", flat=True))
        if role != Membership.Role.ADMIN and admin_ids == {membership.pk}:
            raise MemberError(
                f"{membership.user.get_username()} is the organization's only "
                "admin: make someone else an admin first."
            )
        membership.role = role
        membership.save(update_fields=["role"])
    return membership
