import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django_scopes import scope, scopes_disabled

from accounts.models import Account, Contact, SupportTicket, UsageSnapshot
from nps_platform.models import Membership, Organization, Role
from responses.models import Response

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_seeds_a_living_demo_once_and_its_printed_logins_reach_the_shell(
    client, django_capture_on_commit_callbacks, settings
):
    settings.DEMO_RESPONSES = 400  # the full 4,000 take minutes; the shape is the same
    # One seeding for all the checks: the demo takes seconds to build. Its on-commit tasks
    # (comment analysis) run as they would after a real commit.
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = run("seed_demo", "--if-empty")
    logins = re.findall(r"(\S+@acme\.test)\s+password: (\S+)", out)
    assert len(logins) == 3
    for email, password in logins:
        client.logout()
        response = client.post(reverse("login"), {"username": email, "password": password})
        assert response.status_code == 302, email
        page = client.get(reverse("home"), follow=True).content.decode()
        assert 'class="mainnav"' in page
        assert "Acme Analytics" in page

    again, _ = run("seed_demo", "--if-empty")
    assert "not re-seeded" in again
    assert "admin@acme.test" in again
    assert Organization.objects.filter(slug="acme").count() == 1

    organization = Organization.objects.get(slug="acme")
    with scope(organization=organization):
        arr = sorted(Account.objects.exclude(arr=None).values_list("arr", flat=True))
        assert Account.objects.count() == 300
        assert 1000 <= Contact.objects.count() <= 1500
        assert SupportTicket.objects.filter(status="open").exists()
        assert UsageSnapshot.objects.count() > 5000
        # A few heavy hitters: the top 5% of accounts hold well over a fifth of the ARR.
        assert sum(arr[-15:]) > sum(arr) / 5
        assert Account.objects.exclude(owner=None).count() > 150
        assert Response.objects.count() == 400
        assert Response.objects.filter(has_comment=True).exclude(themes=[]).exists()


def test_it_creates_an_organization_with_its_first_admin(client):
    run(
        "create_org",
        "globex",
        "--name",
        "Globex",
        "--admin-email",
        "Boss@Globex.example",
        "--admin-password",
        "a-long-and-unusual-pass",
    )
    organization = Organization.objects.get(slug="globex")
    with scopes_disabled():
        membership = Membership.objects.get(organization=organization)
    assert membership.role == Role.ADMIN
    assert membership.user.email == "boss@globex.example"
    response = client.post(
        reverse("login"),
        {"username": "boss@globex.example", "password": "a-long-and-unusual-pass"},
    )
    assert response.status_code == 302


def test_it_refuses_a_taken_slug(org_a):
    with pytest.raises(CommandError, match="taken"):
        run(
            "create_org",
            org_a.slug,
            "--name",
            "Again",
            "--admin-email",
            "x@example.com",
            "--admin-password",
            "pw-pw-pw-pw",
        )


def test_it_prints_a_working_api_key_as_the_last_line(client, org_a):
    out, _ = run("create_api_key", org_a.slug, "--name", "CLI")
    raw_key = out.strip().splitlines()[-1]
    response = client.get(reverse("api:me"), headers={"Authorization": f"Bearer {raw_key}"})
    assert response.status_code == 200
    assert response.json()["organization"]["slug"] == org_a.slug


def test_it_explains_an_unknown_organization_slug(db):
    with pytest.raises(CommandError, match="No organization has the slug"):
        run("create_api_key", "nope")
