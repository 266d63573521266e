from datetime import timedelta

import pytest
from django.urls import reverse
from django_scopes import scopes_disabled

from nps_platform import services
from nps_platform.models import Membership, Role, User
from tests.factories import TeammateInvitationFactory, UserFactory

pytestmark = pytest.mark.django_db


def accept_url(invitation):
    return reverse("invitation_accept", kwargs={"token": services.invitation_token(invitation)})


def test_it_creates_the_account_and_joins_with_the_invited_role(client, org_a):
    invitation = TeammateInvitationFactory(organization=org_a, email="new@a.example", role="exec")
    page = client.get(accept_url(invitation))
    assert "Join Acme A" in page.content.decode()

    response = client.post(
        accept_url(invitation), {"name": "Nia New", "password": "a-long-and-unusual-pass"}
    )
    assert response.status_code == 302
    user = User.objects.get(email="new@a.example")
    with scopes_disabled():
        assert Membership.objects.get(user=user).role == Role.EXEC
    assert client.get(reverse("home")).url == reverse("insights:dashboard")


def test_it_rejects_a_weak_password_and_keeps_the_invitation_open(client, org_a):
    invitation = TeammateInvitationFactory(organization=org_a, email="new@a.example")
    response = client.post(accept_url(invitation), {"name": "Nia", "password": "password"})
    assert response.status_code == 200
    assert "too common" in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.accepted_at is None
    assert not User.objects.filter(email="new@a.example").exists()


def test_it_asks_an_existing_user_to_sign_in_first(client, org_a, mallory):
    invitation = TeammateInvitationFactory(organization=org_a, email=mallory.email)
    response = client.post(accept_url(invitation))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))

    client.force_login(mallory)
    assert client.post(accept_url(invitation)).status_code == 302
    with scopes_disabled():
        assert {m.organization.slug for m in Membership.objects.filter(user=mallory)} == {
            "acme-a",
            "borealis-b",
        }


def test_it_refuses_an_invitation_for_someone_else(client, org_a, bob):
    someone = UserFactory(email="someone@example.com")
    invitation = TeammateInvitationFactory(organization=org_a, email=someone.email)
    client.force_login(bob)
    client.post(accept_url(invitation))
    with scopes_disabled():
        assert not Membership.objects.filter(user=someone).exists()


def test_it_refuses_an_expired_link(client, org_a, settings):
    invitation = TeammateInvitationFactory(organization=org_a)
    url = accept_url(invitation)
    settings.TEAMMATE_INVITATION_MAX_AGE = timedelta(seconds=-1)
    response = client.get(url)
    assert response.status_code == 410
    assert "expired" in response.content.decode()


def test_it_refuses_a_forged_link(client, org_a):
    invitation = TeammateInvitationFactory(organization=org_a)
    response = client.get(accept_url(invitation)[:-6] + "xx/")
    assert response.status_code == 410
    assert "not valid" in response.content.decode()


def test_it_refuses_a_used_or_withdrawn_link(client, org_a):
    used = TeammateInvitationFactory(organization=org_a, email="used@a.example")
    client.post(accept_url(used), {"name": "U", "password": "a-long-and-unusual-pass"})
    client.logout()
    second = client.post(accept_url(used), {"name": "U", "password": "a-long-and-unusual-pass"})
    assert second.status_code == 410
    assert "already used" in second.content.decode()

    withdrawn = TeammateInvitationFactory(organization=org_a)
    with scopes_disabled():
        services.invitation_revoke(organization=org_a, invitation=withdrawn)
    assert "withdrawn" in client.get(accept_url(withdrawn)).content.decode()


def test_it_signs_in_the_new_member_with_their_password_later(client, org_a):
    invitation = TeammateInvitationFactory(organization=org_a, email="later@a.example")
    client.post(accept_url(invitation), {"name": "L", "password": "a-long-and-unusual-pass"})
    client.logout()
    response = client.post(
        reverse("login"), {"username": "later@a.example", "password": "a-long-and-unusual-pass"}
    )
    assert response.status_code == 302


def test_it_purges_expired_invitations(org_a, settings):
    from django.utils import timezone

    old = TeammateInvitationFactory(
        organization=org_a, created=timezone.now() - settings.TEAMMATE_INVITATION_MAX_AGE * 2
    )
    fresh = TeammateInvitationFactory(organization=org_a)
    from nps_platform.tasks import purge_expired_teammate_invitations

    assert purge_expired_teammate_invitations.delay().get() == 1
    with scopes_disabled():
        remaining = set(services.TeammateInvitation.objects.values_list("pk", flat=True))
    assert remaining == {fresh.pk}
    assert old.pk not in remaining
