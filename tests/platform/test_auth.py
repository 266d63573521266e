from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core import mail
from django.urls import reverse

from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def sign_in(client, email, password):
    return client.post(reverse("login"), {"username": email, "password": password})


def test_it_signs_in_by_email_and_lands_on_the_roles_start_page(client, bob):
    response = sign_in(client, "bob@a.example", PASSWORD)
    assert response.status_code == 302
    assert response.url == reverse("home")
    assert client.get(reverse("home")).url == reverse("followups:queue")


def test_it_sends_the_exec_to_the_dashboard(client, carol):
    sign_in(client, "carol@a.example", PASSWORD)
    assert client.get(reverse("home")).url == reverse("insights:dashboard")


def test_it_accepts_the_email_in_any_case(client, bob):
    response = sign_in(client, "BOB@a.example", PASSWORD)
    assert response.status_code == 302


def test_it_explains_a_wrong_password(client, bob):
    response = sign_in(client, "bob@a.example", "wrong-password")
    assert response.status_code == 200
    assert "do not match" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_it_locks_out_after_repeated_failures_then_cools_off(client, bob, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        sign_in(client, "bob@a.example", "wrong-password")
    locked = sign_in(client, "bob@a.example", PASSWORD)
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert "Try again in 15 minutes" in locked.content.decode()
    assert "_auth_user_id" not in client.session

    # The cool-off passes: the failures are older than AXES_COOLOFF_TIME.
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.first().attempt_time - timedelta(hours=1)
    )
    assert sign_in(client, "bob@a.example", PASSWORD).status_code == 302


def test_it_locks_out_an_address_that_tries_many_accounts(client, bob, carol, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for email in ["x1@a.example", "x2@a.example", "x3@a.example"]:
        sign_in(client, email, "whatever-password")
    # Carol's own password is right, but this address is paused.
    assert sign_in(client, "carol@a.example", PASSWORD).status_code == 429


def test_it_signs_out(as_alice):
    response = as_alice.post(reverse("logout"))
    assert response.status_code == 302
    assert as_alice.get(reverse("settings:organization")).status_code == 302


def test_it_resets_a_password_by_email(client, bob):
    response = client.post(reverse("password_reset"), {"email": "bob@a.example"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    link = next(line for line in body.splitlines() if "/password-reset/" in line)
    path = link.split("testserver", 1)[1]
    form_page = client.get(path, follow=True)
    assert form_page.status_code == 200
    set_url = form_page.redirect_chain[-1][0]
    done = client.post(
        set_url, {"new_password1": "a-brand-new-pass-42", "new_password2": "a-brand-new-pass-42"}
    )
    assert done.status_code == 302
    assert sign_in(client, "bob@a.example", "a-brand-new-pass-42").status_code == 302


def test_it_does_not_reveal_whether_an_email_has_an_account(client, db):
    response = client.post(reverse("password_reset"), {"email": "nobody@nowhere.example"})
    assert response.status_code == 302
    assert len(mail.outbox) == 0


def test_it_sends_a_signed_in_person_without_a_seat_to_the_no_organization_page(client, db):
    from tests.factories import UserFactory

    client.force_login(UserFactory(email="lonely@example.com"))
    response = client.get(reverse("home"))
    assert response.url == reverse("no_organization")
    assert "not in an organization" in client.get(response.url).content.decode()


def test_it_changes_ones_own_password(as_alice):
    response = as_alice.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "another-long-passphrase",
            "new_password2": "another-long-passphrase",
        },
    )
    assert response.status_code == 302
    as_alice.logout()
    assert sign_in(as_alice, "alice@a.example", "another-long-passphrase").status_code == 302


def test_it_counts_failures_per_account_whatever_the_case_of_the_email(client, bob, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for email in ["bob@a.example", "BOB@a.example", "Bob@A.example"]:
        client.post(
            reverse("login"),
            {"username": email, "password": "wrong"},
            REMOTE_ADDR=f"10.0.0.{len(email) + email.count('B')}",
        )
    assert sign_in(client, "bob@a.example", PASSWORD).status_code == 429
