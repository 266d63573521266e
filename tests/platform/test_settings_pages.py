import pytest
from django.core import mail
from django.urls import reverse
from django_scopes import scopes_disabled

from nps_platform.models import ApiKey, Membership, Role, TeammateInvitation, api_key_hash
from tests.factories import MembershipFactory, TeammateInvitationFactory

pytestmark = pytest.mark.django_db


def test_it_saves_the_organization_settings(as_alice, org_a):
    response = as_alice.post(
        reverse("settings:organization"),
        {"name": "Acme Renamed", "timezone": "Europe/Paris", "currency": "eur"},
    )
    assert response.status_code == 302
    org_a.refresh_from_db()
    assert (org_a.name, org_a.timezone, org_a.currency) == ("Acme Renamed", "Europe/Paris", "EUR")


def test_it_explains_a_bad_currency(as_alice, org_a):
    response = as_alice.post(
        reverse("settings:organization"),
        {"name": "Acme", "timezone": "Europe/Paris", "currency": "euros"},
    )
    assert response.status_code == 200
    assert "three-letter currency code" in response.content.decode()
    org_a.refresh_from_db()
    assert org_a.currency == "USD"


@pytest.mark.parametrize("who", ["bob", "carol"])
def test_it_keeps_settings_to_admins(client, who, request):
    client.force_login(request.getfixturevalue(who))
    for name in ["settings:organization", "settings:team", "settings:api_keys"]:
        response = client.get(reverse(name))
        assert response.status_code == 403
        assert "Your role cannot open this page" in response.content.decode()


def test_it_lists_the_team_in_a_fixed_number_of_queries(
    as_alice, org_a, django_assert_max_num_queries
):
    for _ in range(15):
        MembershipFactory(organization=org_a)
    for _ in range(5):
        TeammateInvitationFactory(organization=org_a)
    with django_assert_max_num_queries(12):
        response = as_alice.get(reverse("settings:team"))
    assert response.status_code == 200
    assert response.content.decode().count("data-email=") == 16


def test_it_invites_a_teammate_by_email(as_alice, org_a):
    response = as_alice.post(
        reverse("settings:team"), {"email": "New.Person@Example.com", "role": Role.EXEC}
    )
    assert response.status_code == 302
    with scopes_disabled():
        invitation = TeammateInvitation.objects.get(organization=org_a)
    assert invitation.email == "new.person@example.com"
    assert invitation.role == Role.EXEC
    assert mail.outbox[0].to == ["new.person@example.com"]
    assert "/invitations/" in mail.outbox[0].body
    assert "Acme A" in mail.outbox[0].subject


def test_it_refuses_to_invite_an_existing_member(as_alice, bob):
    response = as_alice.post(reverse("settings:team"), {"email": bob.email, "role": Role.EXEC})
    assert response.status_code == 200
    assert "already a member" in response.content.decode()
    assert mail.outbox == []


def test_it_replaces_an_open_invitation_when_inviting_again(as_alice, org_a):
    for role in [Role.EXEC, Role.CS_MANAGER]:
        as_alice.post(reverse("settings:team"), {"email": "twice@example.com", "role": role})
    with scopes_disabled():
        pending = TeammateInvitation.objects.filter(
            organization=org_a, revoked_at__isnull=True, accepted_at__isnull=True
        )
        assert [i.role for i in pending] == [Role.CS_MANAGER]


def test_it_changes_a_members_role(as_alice, org_a, bob):
    with scopes_disabled():
        membership = Membership.objects.get(organization=org_a, user=bob)
    as_alice.post(reverse("settings:member_role", args=[membership.pk]), {"role": Role.EXEC})
    membership.refresh_from_db()
    assert membership.role == Role.EXEC


def test_it_refuses_an_unknown_role(as_alice, org_a, bob):
    with scopes_disabled():
        membership = Membership.objects.get(organization=org_a, user=bob)
    response = as_alice.post(
        reverse("settings:member_role", args=[membership.pk]), {"role": "overlord"}, follow=True
    )
    assert "Unknown role" in response.content.decode()
    membership.refresh_from_db()
    assert membership.role == Role.CS_MANAGER


def test_it_keeps_at_least_one_admin(as_alice, org_a, alice):
    with scopes_disabled():
        membership = Membership.objects.get(organization=org_a, user=alice)
    response = as_alice.post(
        reverse("settings:member_role", args=[membership.pk]), {"role": Role.EXEC}, follow=True
    )
    assert "at least one admin" in response.content.decode()
    response = as_alice.post(reverse("settings:member_remove", args=[membership.pk]), follow=True)
    assert "at least one admin" in response.content.decode()
    membership.refresh_from_db()
    assert membership.role == Role.ADMIN


def test_it_removes_a_member(as_alice, org_a, bob):
    with scopes_disabled():
        membership = Membership.objects.get(organization=org_a, user=bob)
    as_alice.post(reverse("settings:member_remove", args=[membership.pk]))
    with scopes_disabled():
        assert not Membership.objects.filter(pk=membership.pk).exists()


def test_it_withdraws_an_invitation(as_alice, org_a):
    invitation = TeammateInvitationFactory(organization=org_a)
    as_alice.post(reverse("settings:invitation_revoke", args=[invitation.pk]))
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None


def test_it_shows_a_new_api_key_once_and_stores_only_its_hash(as_alice, org_a):
    response = as_alice.post(reverse("settings:api_keys"), {"name": "Segment"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.content.decode()
    start = body.index('id="new-api-key"')
    raw_key = body[body.index(">", start) + 1 : body.index("</code>", start)]
    assert raw_key.startswith("nps_")
    with scopes_disabled():
        key = ApiKey.objects.get(organization=org_a)
    assert key.hashed_key == api_key_hash(raw_key)
    assert raw_key not in {key.prefix, key.hashed_key, key.name}
    assert raw_key.startswith(key.prefix)

    listing = as_alice.get(reverse("settings:api_keys")).content.decode()
    assert raw_key not in listing
    assert f"{key.prefix}…" in listing
    assert "never" in listing


def test_it_asks_for_a_key_name(as_alice, org_a):
    response = as_alice.post(reverse("settings:api_keys"), {"name": ""})
    assert "This field is required" in response.content.decode()
    with scopes_disabled():
        assert not ApiKey.objects.exists()


def test_it_revokes_an_api_key(as_alice, api_key_a):
    key, raw = api_key_a
    as_alice.post(reverse("settings:api_key_revoke", args=[key.pk]))
    key.refresh_from_db()
    assert key.revoked_at is not None
    response = as_alice.get(reverse("api:me"), headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 401


def test_it_lists_api_keys_in_a_fixed_number_of_queries(
    as_alice, org_a, alice, django_assert_max_num_queries
):
    from tests.factories import make_api_key

    for n in range(12):
        make_api_key(org_a, name=f"key {n}")
    with django_assert_max_num_queries(10):
        response = as_alice.get(reverse("settings:api_keys"))
    assert response.content.decode().count('aria-label="Revoke') == 12
