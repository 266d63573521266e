"""The follow-up card on a response's page: status, owner, due date, priority and the link
to the follow-up for the members who work the queue; roles, tenants and query counts."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils.timezone import now

from tests.accounts.factories import AccountFactory, ContactFactory
from tests.conftest import client_for
from tests.insights.factories import FollowUpFactory, ResponseFactory

pytestmark = pytest.mark.django_db


def card_of(html: str) -> str:
    match = re.search(r'<div data-panel="followup".*?</div>\s*</section>', html, re.S)
    assert match, "no follow-up card"
    return match.group(0)


def page(client, response) -> str:
    answer = client.get(reverse("responses:detail", args=[response.pk]))
    assert answer.status_code == 200
    return answer.content.decode()


@pytest.fixture
def answered(org_a):
    account = AccountFactory(organization=org_a, name="Initech")
    contact = ContactFactory(account=account, name="Ann Berg")
    return ResponseFactory(
        account=account, contact=contact, score=3, comment="Slow", submitted_at=now()
    )


def test_it_shows_the_followups_status_owner_due_date_priority_and_link(as_alice, answered, bob):
    followup = FollowUpFactory(
        response=answered,
        assignee=bob,
        status="in_progress",
        priority=87,
        playbook="recover",
        due_at=now() + timedelta(hours=30),
    )

    card = card_of(page(as_alice, answered))

    assert 'data-status="in_progress">In progress<' in card
    assert "Bob Manager" in card
    assert "due in 30 h" in card
    assert 'data-sla="ok"' in card
    assert ">87</span>" in card
    assert "Recover a detractor" in card
    assert f'<a href="/queue/{followup.pk}/">Open follow-up →</a>' in card


def test_it_says_unassigned_and_overdue(as_alice, answered):
    FollowUpFactory(response=answered, assignee=None, due_at=now() - timedelta(days=3))

    card = card_of(page(as_alice, answered))

    assert "Unassigned" in card
    assert 'data-sla="overdue"' in card
    assert "overdue 3 d" in card


def test_it_shows_a_closed_followups_outcome(as_alice, answered, bob):
    FollowUpFactory(
        response=answered,
        assignee=bob,
        status="closed",
        outcome="resolved",
        closed_at=now() - timedelta(days=1),
        due_at=now() - timedelta(days=2),
    )

    card = card_of(page(as_alice, answered))

    assert "Closed: Resolved" in card
    assert "<dt>Closed</dt>" in card
    assert "overdue" not in card


def test_it_shows_the_card_to_cs_managers_with_the_link(client, answered, bob):
    followup = FollowUpFactory(response=answered, assignee=bob)

    card = card_of(page(client_for(client, bob), answered))

    assert f'href="/queue/{followup.pk}/"' in card


def test_it_hides_the_followup_link_from_executives(client, answered, carol):
    followup = FollowUpFactory(response=answered)

    html = page(client_for(client, carol), answered)

    assert 'data-status="new"' in card_of(html)
    assert f"/queue/{followup.pk}/" not in html
    assert "Open follow-up" not in html


def test_it_shows_no_card_while_the_response_has_no_followup(as_alice, answered):
    html = page(as_alice, answered)

    assert 'data-panel="followup"' not in html
    assert "Open follow-up" not in html


def test_it_never_shows_another_responses_or_tenants_followup(
    client, as_alice, org_a, org_b, answered, mallory
):
    other = ResponseFactory(account=answered.account, score=9, submitted_at=now())
    theirs = ResponseFactory(
        account=AccountFactory(organization=org_b), score=1, submitted_at=now()
    )
    followup = FollowUpFactory(response=other)
    their_followup = FollowUpFactory(response=theirs)

    html = page(as_alice, answered)
    assert 'data-panel="followup"' not in html
    assert f"/queue/{followup.pk}/" not in html
    assert f"/queue/{their_followup.pk}/" not in html

    as_mallory = client_for(client, mallory)
    assert as_mallory.get(reverse("responses:detail", args=[other.pk])).status_code == 404
    assert f"/queue/{their_followup.pk}/" in page(as_mallory, theirs)


def test_it_shows_the_card_in_a_constant_number_of_queries(
    as_alice, answered, django_assert_max_num_queries
):
    url = reverse("responses:detail", args=[answered.pk])
    as_alice.get(url)
    with django_assert_max_num_queries(12) as without:
        as_alice.get(url)
    FollowUpFactory(response=answered)
    for n in range(10):
        ResponseFactory(account=answered.account, contact=answered.contact, score=n)
    with django_assert_max_num_queries(12) as with_card:
        html = as_alice.get(url).content.decode()
    assert 'data-panel="followup"' in html
    assert len(with_card.captured_queries) == len(without.captured_queries)
