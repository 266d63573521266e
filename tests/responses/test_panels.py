"""An account's NPS on its page (the panel responses/ adds to it), the explorer's account
filter that its "All answers" link opens, and the cards other apps add to a response's page."""

import csv
import io
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils.timezone import now

from responses import events
from tests.accounts.factories import AccountFactory, ContactFactory
from tests.conftest import client_for
from tests.insights.factories import ResponseFactory

pytestmark = pytest.mark.django_db

EXPLORER = "/responses/"
EXPORT = "/responses/export.csv"


def days_ago(days: int, hours: int = 0):
    return now() - timedelta(days=days, hours=hours)


def answer(account, score, *, contact=None, comment="", when=None):
    return ResponseFactory(
        account=account,
        contact=contact,
        score=score,
        comment=comment,
        submitted_at=when or days_ago(1),
    )


def account_page(client, account) -> str:
    response = client.get(reverse("accounts:detail", args=[account.pk]))
    assert response.status_code == 200
    return response.content.decode().replace("&#x27;", "'")


def panel_of(html: str) -> str:
    start = html.index('data-panel="account-nps"')
    return html[start : html.index('id="contacts-title"', start)]


def trend_links(html: str) -> list[int]:
    trend = re.search(r'<ol class="rx-score-trend".*?</ol>', html, re.S).group(0)
    return [int(pk) for pk in re.findall(r'href="/responses/(\d+)/"', trend)]


def latest_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-answer-id="(\d+)"', html)]


def shown(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-response-id="(\d+)"', response.content.decode())]


def exported(client, query) -> list[int]:
    response = client.get(f"{EXPORT}?{query}")
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    return [int(row["id"]) for row in csv.DictReader(io.StringIO(body))]


@pytest.fixture
def initech(org_a):
    """Initech with Ann and Ben: in the last 12 months three promoters, a passive and two
    detractors (NPS +17), and one answer from two years ago."""
    account = AccountFactory(organization=org_a, name="Initech")
    ann = ContactFactory(account=account, name="Ann Berg")
    ben = ContactFactory(account=account, name="Ben Cole")
    old = answer(account, 3, contact=ann, comment="Slow as ever", when=days_ago(730))
    recent = [
        answer(account, 10, contact=ann, comment="Love the new reports", when=days_ago(200)),
        answer(account, 9, contact=ben, when=days_ago(120)),
        answer(account, 7, contact=ann, comment="Fine", when=days_ago(60)),
        answer(
            account, 2, contact=ben, comment="<script>alert('x')</script> Broken", when=days_ago(30)
        ),
        answer(account, 9, contact=ann, comment="Better now", when=days_ago(10)),
        answer(account, 5, contact=None, comment="", when=days_ago(2)),
    ]
    return {"account": account, "old": old, "recent": recent, "ann": ann, "ben": ben}


# --- The account page -------------------------------------------------------------------------


def test_it_shows_the_accounts_nps_mix_and_latest_answers(as_alice, initech):
    account, recent = initech["account"], initech["recent"]
    html = account_page(as_alice, account)
    panel = panel_of(html)

    assert "No responses yet" not in html
    assert 'data-stat="nps" class="rx-nps-up">+17<' in panel  # (3 − 2) / 6
    assert 'data-stat="count">6<' in panel
    assert re.search(r'data-mix="promoter">.*?<strong>3</strong>', panel)
    assert re.search(r'data-mix="passive">.*?<strong>1</strong>', panel)
    assert re.search(r'data-mix="detractor">.*?<strong>2</strong>', panel)
    assert "7 answers in all" in panel
    # The five newest, newest first, each linking to its page, with who answered.
    newest_five = [r.pk for r in reversed(recent)][:5]
    assert latest_ids(panel) == newest_five
    for pk in newest_five:
        assert f'href="/responses/{pk}/"' in panel
    assert "Better now" in panel
    assert "Ann Berg" in panel
    assert "Ben Cole" in panel
    assert "No comment" in panel
    assert "Contact erased" in panel
    assert "Love the new reports" not in panel  # the sixth newest
    assert f'href="/responses/?account={account.pk}">All 7 answers →</a>' in panel


def test_it_escapes_comments_on_the_account_page(as_alice, initech):
    panel = panel_of(account_page(as_alice, initech["account"]))

    assert "<script>alert(" not in panel
    assert "&lt;script&gt;alert('x')&lt;/script&gt; Broken" in panel


def test_it_shows_the_trend_of_the_last_twelve_answers_oldest_first(as_alice, org_a):
    account = AccountFactory(organization=org_a)
    answers = [answer(account, n % 11, when=days_ago(30 - n)) for n in range(15)]

    html = account_page(as_alice, account)

    assert trend_links(html) == [r.pk for r in answers[-12:]]
    assert "last 12 answers, oldest first" in html
    assert "All 15 answers →" in html


def test_it_counts_only_the_last_twelve_months_in_the_nps(as_alice, org_a):
    account = AccountFactory(organization=org_a)
    answer(account, 0, when=days_ago(500))
    answer(account, 10, when=days_ago(400))

    panel = panel_of(account_page(as_alice, account))

    assert 'data-stat="nps" class="rx-nps-none">—<' in panel
    assert 'data-stat="count">0<' in panel
    assert "No answer since" in panel
    assert "2 before then" in panel
    assert "All 2 answers →" in panel


def test_it_keeps_the_empty_state_for_an_account_without_answers(as_alice, org_a, initech):
    quiet = AccountFactory(organization=org_a, name="Quiet Ltd")

    html = account_page(as_alice, quiet)

    assert "No responses yet — NPS history appears here once this account's contacts answer." in (
        html
    )
    assert 'data-panel="account-nps"' not in html


def test_it_keeps_another_organizations_answers_out_of_the_panel(
    client, as_alice, org_a, org_b, mallory, initech
):
    account = initech["account"]
    theirs = AccountFactory(organization=org_b, name="Theirs Inc")
    # A row of organization B that points at A's account must not count either.
    stray = ResponseFactory(
        organization=org_b, account=account, score=0, comment="Not yours", submitted_at=now()
    )
    answer(theirs, 0, comment="Their secret gripe")

    panel = panel_of(account_page(as_alice, account))

    assert "Not yours" not in panel
    assert f"/responses/{stray.pk}/" not in panel
    assert 'data-stat="count">6<' in panel
    assert "All 7 answers →" in panel
    other = client_for(client, mallory)
    assert other.get(reverse("accounts:detail", args=[account.pk])).status_code == 404
    their_page = account_page(other, theirs)
    assert "Their secret gripe" in their_page
    assert "Love the new reports" not in their_page


def test_it_shows_the_panel_in_a_constant_number_of_queries(
    as_alice, org_a, django_assert_max_num_queries
):
    account = AccountFactory(organization=org_a)
    contact = ContactFactory(account=account)
    url = reverse("accounts:detail", args=[account.pk])
    answer(account, 9, contact=contact, comment="Good")
    as_alice.get(url)
    with django_assert_max_num_queries(13) as few:
        as_alice.get(url)
    for n in range(40):
        answer(account, n % 11, contact=ContactFactory(account=account), comment=f"Note {n}")
    with django_assert_max_num_queries(13) as many:
        html = account_page(as_alice, account)
    assert len(many.captured_queries) == len(few.captured_queries)
    assert "All 41 answers →" in html


# --- The explorer's account filter --------------------------------------------------------------


@pytest.fixture
def two_accounts(org_a, initech):
    globex = AccountFactory(organization=org_a, name="Globex")
    others = [answer(globex, 8, comment="Globex says hi", when=days_ago(n)) for n in (3, 40)]
    return {**initech, "globex": globex, "others": others}


def test_it_narrows_the_explorer_to_one_account_with_a_removable_chip(as_alice, two_accounts):
    account = two_accounts["account"]
    everything = shown(as_alice.get(EXPLORER))
    response = as_alice.get(f"{EXPLORER}?account={account.pk}&category=detractor")
    html = response.content.decode()

    assert len(everything) == 9
    recent, old = two_accounts["recent"], two_accounts["old"]
    assert shown(response) == [recent[5].pk, recent[3].pk, old.pk]  # its detractors, newest first
    assert response.context["summary"].total == 3
    assert "Account: Initech" in html
    # The form carries the filter, so changing another one keeps it; the chip drops it.
    assert f'<input type="hidden" name="account" value="{account.pk}"' in html
    assert 'href="/responses/?category=detractor"' in html
    assert "Globex says hi" not in html
    assert shown(as_alice.get(f"{EXPLORER}?account={two_accounts['globex'].pk}")) == [
        r.pk for r in two_accounts["others"]
    ]


def test_it_exports_only_the_accounts_answers(as_alice, two_accounts):
    account = two_accounts["account"]
    query = f"account={account.pk}"

    rows = exported(as_alice, query)

    assert rows == shown(as_alice.get(f"{EXPLORER}?{query}"))
    assert sorted(rows) == sorted([two_accounts["old"].pk] + [r.pk for r in two_accounts["recent"]])


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "²", "99999999999999999999", ""])
def test_it_ignores_an_account_filter_it_cannot_read(as_alice, two_accounts, value):
    response = as_alice.get(f"{EXPLORER}?account={value}")

    assert response.status_code == 200
    assert len(shown(response)) == 9
    assert "Account:" not in response.content.decode()
    assert len(exported(as_alice, f"account={value}")) == 9


def test_it_ignores_another_tenants_account_in_the_filter(client, two_accounts, org_b, mallory):
    theirs = AccountFactory(organization=org_b, name="Theirs Inc")
    answer(theirs, 10, comment="Their answer")
    as_mallory = client_for(client, mallory)

    response = as_mallory.get(f"{EXPLORER}?account={two_accounts['account'].pk}")

    assert response.status_code == 200
    assert "Initech" not in response.content.decode()
    assert "Love the new reports" not in response.content.decode()
    assert len(shown(response)) == 1
    assert len(exported(as_mallory, f"account={two_accounts['account'].pk}")) == 1


def test_it_filters_by_account_in_a_constant_number_of_queries(
    as_alice, two_accounts, django_assert_max_num_queries
):
    account = two_accounts["account"]
    url = f"{EXPLORER}?account={account.pk}"
    as_alice.get(url)
    with django_assert_max_num_queries(11) as few:
        as_alice.get(url)
    for n in range(30):
        answer(account, n % 11, contact=ContactFactory(account=account), comment=f"More {n}")
    with django_assert_max_num_queries(11) as many:
        assert len(shown(as_alice.get(url))) == 37
    assert len(many.captured_queries) == len(few.captured_queries)


# --- Cards on a response's page ---------------------------------------------------------------


def test_it_shows_the_cards_other_apps_register_on_a_response_page(as_alice, initech, monkeypatch):
    seen = {}

    def card(*, organization, response, request):
        seen["member"] = request.user.email
        return {
            "title": "Escalation",
            "template": "nps_platform/empty_state.html",
            "context": {"message": f"Score {response.score} was escalated."},
        }

    def nothing(*, organization, response, request):
        return None

    monkeypatch.setattr(events, "_response_panels", [card, nothing])
    target = initech["recent"][3]
    html = as_alice.get(reverse("responses:detail", args=[target.pk])).content.decode()

    assert '<h2 id="panel-1-title">Escalation</h2>' in html
    assert "Score 2 was escalated." in html
    assert "panel-2-title" not in html
    assert seen["member"] == "alice@a.example"
