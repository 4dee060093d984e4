"""The Members page: admins see their organization's members and change their
roles (the Reviewer role lets a member accept or reject in review); nobody sees
or changes another organization's members, and an organization keeps an admin."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.test import Client

from plugins_app.workspace.lifecycle import may_review
from plugins_app.workspace.models import Membership


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def membership(user: Any) -> Membership:
    return Membership.objects.get(user=user)


def test_an_admin_makes_an_annotator_a_reviewer(workspace: Any) -> None:
    admin = client_for(workspace.admin)
    page = admin.get("/members/").content.decode()
    assert 'id="member-table"' in page and "bob" in page and "charlie" not in page
    bob = membership(workspace.annotator)
    assert not may_review(workspace.annotator, workspace.org.pk)

    row = admin.post(
        f"/members/{bob.pk}/role/", {"role": "reviewer"}, HTTP_HX_REQUEST="true"
    ).content.decode()

    assert f'id="member-{bob.pk}"' in row and "Saved." in row
    assert '<option value="reviewer" selected>' in row
    assert may_review(workspace.annotator, workspace.org.pk)
    # A plain form post works too, and goes back to the page.
    plain = admin.post(f"/members/{bob.pk}/role/", {"role": "annotator"})
    assert plain.status_code == 302 and plain["Location"] == "/members/"
    assert membership(workspace.annotator).role == Membership.Role.ANNOTATOR


def test_bad_roles_and_removing_the_last_admin_are_refused(workspace: Any) -> None:
    admin = client_for(workspace.admin)
    alice = membership(workspace.admin)

    unknown = admin.post(
        f"/members/{alice.pk}/role/", {"role": "owner"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert "Choose a role: Admin, Reviewer, Annotator." in unknown
    last = admin.post(f"/members/{alice.pk}/role/", {"role": "reviewer"})
    assert last.status_code == 409
    assert "only admin: make someone else an admin first" in last.content.decode()
    assert membership(workspace.admin).role == Membership.Role.ADMIN


def test_nobody_sees_or_changes_members_they_do_not_administer(
    workspace: Any,
) -> None:
    bob = membership(workspace.annotator)
    # An annotator: no table, and no change (404: it is not theirs to see).
    annotator = client_for(workspace.annotator)
    page = annotator.get("/members/").content.decode()
    assert 'id="member-table"' not in page and "Only your organization" in page
    assert "Annotator of Acme" in page
    url = f"/members/{bob.pk}/role/"
    assert annotator.post(url, {"role": "admin"}).status_code == 404
    # An admin of another organization.
    rival_admin = Membership.objects.create(
        user=get_user_model().objects.create_user("rita", password="x"),
        organization=workspace.other_project.organization,
        role=Membership.Role.ADMIN,
    ).user
    rival = client_for(rival_admin)
    assert "bob" not in rival.get("/members/").content.decode()
    assert rival.post(url, {"role": "admin"}).status_code == 404
    assert membership(workspace.annotator).role == Membership.Role.ANNOTATOR


def test_names_are_escaped_and_forms_carry_csrf(workspace: Any) -> None:
    workspace.annotator.email = "<b>bob</b>@x.test"
    workspace.annotator.save()
    page = client_for(workspace.admin).get("/members/").content.decode()
    assert "&lt;b&gt;bob&lt;/b&gt;@x.test" in page and "<b>bob</b>" not in page
    assert page.count('name="csrfmiddlewaretoken"') >= 2  # one per row (+ logout)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(workspace.admin)
    bob = membership(workspace.annotator)
    refused = strict.post(f"/members/{bob.pk}/role/", {"role": "admin"})
    assert refused.status_code == 403
    assert membership(workspace.annotator).role == Membership.Role.ANNOTATOR
