"""The account pages: the list, an account's page, and the segment editor."""

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils.timezone import now
from django_scopes import scopes_disabled

from accounts import events
from accounts.models import Segment
from tests.accounts.factories import (
    AccountFactory,
    ContactFactory,
    SegmentFactory,
    SupportTicketFactory,
    UsageSnapshotFactory,
)
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

LIST = reverse("accounts:list")


def today():
    return now().date()


def months_ago(months: int) -> date:
    day = today()
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def names_in(response) -> list[str]:
    return re.findall(r'class="account-name" href="[^"]+">([^<]+)</a>', response.content.decode())


@pytest.fixture
def as_bob(client, bob):
    return client_for(client, bob)


# --- The accounts list ----------------------------------------------------------------------


def test_it_lists_accounts_with_their_plan_arr_owner_health_score_renewal_and_tenure(
    as_alice, org_a, bob
):
    AccountFactory(
        organization=org_a,
        name="Initech",
        domain="initech.test",
        plan="enterprise",
        arr=Decimal("120000"),
        owner=bob,
        health_score=82,
        last_score=2,
        renewal_date=today() + timedelta(days=30),
        signed_up_on=months_ago(27),
    )
    page = as_alice.get(LIST).content.decode()
    assert "Initech" in page
    assert "initech.test" in page
    assert "enterprise" in page
    assert "$120,000" in page
    assert "Bob Manager" in page
    assert 'class="badge health-healthy"' in page
    assert "badge score score-detractor score-danger" in page
    assert "danger zone" in page
    assert "2 y 3 mo" in page
    assert 'class="renewal-soon"' in page
    assert "<strong>1</strong> account" in page


def test_it_formats_arr_in_the_organizations_currency(as_alice, org_a):
    org_a.currency = "EUR"
    org_a.save()
    AccountFactory(organization=org_a, arr=Decimal("48000.50"))
    AccountFactory(organization=org_a, arr=Decimal("9000"))
    page = as_alice.get(LIST).content.decode()
    assert "€48,000.50" in page
    assert "€9,000" in page
    assert "$" not in re.sub(r"<script.*?</script>", "", page, flags=re.S)


def test_it_colours_scores_by_nps_category(as_alice, org_a):
    for score in (9, 7, 5):
        AccountFactory(organization=org_a, last_score=score)
    page = as_alice.get(LIST).content.decode()
    assert "score-promoter" in page
    assert "score-passive" in page
    assert "score-detractor" in page
    assert "score-danger" not in page


def test_it_searches_names_domains_and_external_ids(as_alice, org_a):
    AccountFactory(organization=org_a, name="Initech", domain="initech.test", external_id="A-1")
    AccountFactory(organization=org_a, name="Hooli", domain="hooli.xyz", external_id="crm-77")
    AccountFactory(organization=org_a, name="Globex", domain="globex.test", external_id="A-3")
    assert names_in(as_alice.get(LIST, {"q": "INIT"})) == ["Initech"]
    assert names_in(as_alice.get(LIST, {"q": ".xyz"})) == ["Hooli"]
    assert names_in(as_alice.get(LIST, {"q": "a-3"})) == ["Globex"]


def test_it_filters_by_segment_plan_owner_health_and_stage(as_alice, org_a, alice, bob):
    AccountFactory(organization=org_a, name="Big", plan="enterprise", arr=90000, owner=alice,
                   health_score=30, lifecycle_stage="renewal")  # fmt: skip
    AccountFactory(organization=org_a, name="Mid", plan="growth", arr=40000, owner=bob,
                   health_score=55, lifecycle_stage="active")  # fmt: skip
    AccountFactory(organization=org_a, name="Small", plan="starter", arr=5000, owner=None,
                   health_score=None, lifecycle_stage="onboarding")  # fmt: skip
    AccountFactory(organization=org_a, name="Happy", plan="growth", arr=60000, owner=alice,
                   health_score=88, lifecycle_stage="active")  # fmt: skip
    rich = SegmentFactory(
        organization=org_a,
        name="Rich",
        rules={"match": "all", "conditions": [{"field": "arr", "op": "gte", "value": "50000"}]},
    )
    assert names_in(as_alice.get(LIST, {"segment": rich.pk})) == ["Big", "Happy"]
    assert names_in(as_alice.get(LIST, {"plan": "growth"})) == ["Happy", "Mid"]
    assert names_in(as_alice.get(LIST, {"owner": bob.pk})) == ["Mid"]
    assert names_in(as_alice.get(LIST, {"owner": "none"})) == ["Small"]
    assert names_in(as_alice.get(LIST, {"health": "at_risk"})) == ["Big"]
    assert names_in(as_alice.get(LIST, {"health": "watch"})) == ["Mid"]
    assert names_in(as_alice.get(LIST, {"health": "healthy"})) == ["Happy"]
    assert names_in(as_alice.get(LIST, {"health": "unknown"})) == ["Small"]
    assert names_in(as_alice.get(LIST, {"stage": "active"})) == ["Happy", "Mid"]
    combined = as_alice.get(LIST, {"plan": "growth", "owner": alice.pk, "stage": "active"})
    assert names_in(combined) == ["Happy"]
    assert "<strong>1</strong> account matches" in combined.content.decode()
    page = as_alice.get(LIST).content.decode()
    assert '<option value="growth">growth</option>' in page
    assert f'<option value="{rich.pk}">Rich</option>' in page


def test_it_ignores_another_tenants_segment_in_the_filter(as_alice, org_a, org_b):
    AccountFactory(organization=org_a, name="Mine", arr=10)
    theirs = SegmentFactory(
        organization=org_b,
        rules={"match": "all", "conditions": [{"field": "arr", "op": "gt", "value": "1000"}]},
    )
    response = as_alice.get(LIST, {"segment": theirs.pk})
    assert response.status_code == 200
    assert names_in(response) == ["Mine"]
    assert theirs.name not in response.content.decode()


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("name", ["Alpha", "Bravo", "Charlie", "Delta"]),
        ("arr_desc", ["Charlie", "Alpha", "Bravo", "Delta"]),
        ("arr", ["Bravo", "Alpha", "Charlie", "Delta"]),
        ("score", ["Bravo", "Charlie", "Alpha", "Delta"]),
        ("score_desc", ["Alpha", "Charlie", "Bravo", "Delta"]),
        ("nonsense", ["Alpha", "Bravo", "Charlie", "Delta"]),
    ],
)
def test_it_sorts_by_name_arr_and_last_score_with_blanks_last(as_alice, org_a, sort, expected):
    AccountFactory(organization=org_a, name="Charlie", arr=Decimal("90000"), last_score=6)
    AccountFactory(organization=org_a, name="Alpha", arr=Decimal("50000"), last_score=10)
    AccountFactory(organization=org_a, name="Delta", arr=None, last_score=None)
    AccountFactory(organization=org_a, name="Bravo", arr=Decimal("1000"), last_score=0)
    assert names_in(as_alice.get(LIST, {"sort": sort})) == expected


def test_it_paginates_fifty_a_page_and_keeps_the_filters_in_page_links(as_alice, org_a):
    for number in range(55):
        AccountFactory(organization=org_a, name=f"Growth {number:02d}", plan="growth")
    AccountFactory(organization=org_a, name="Other", plan="starter")
    first = as_alice.get(LIST, {"plan": "growth", "sort": "name"})
    page = first.content.decode()
    assert len(names_in(first)) == 50
    assert "<strong>55</strong> accounts match" in page
    assert "showing 1–50" in page
    assert "Page 1 of 2" in page
    assert 'href="?plan=growth&amp;sort=name&amp;page=2"' in page
    second = as_alice.get(LIST, {"plan": "growth", "sort": "name", "page": 2})
    assert names_in(second) == [f"Growth {n}" for n in range(50, 55)]
    assert 'href="?plan=growth&amp;sort=name&amp;page=1"' in second.content.decode()
    assert len(names_in(as_alice.get(LIST, {"plan": "growth", "page": "999"}))) == 5


def _make_accounts(org, members, count):
    for number in range(count):
        AccountFactory(
            organization=org,
            owner=members[number % len(members)],
            arr=1000 * number,
            last_score=number % 11,
            health_score=number % 100,
            renewal_date=today() + timedelta(days=number),
            signed_up_on=today() - timedelta(days=30 * number),
        )


def test_it_lists_in_a_number_of_queries_that_does_not_grow_with_the_rows(
    as_alice, org_a, alice, bob, django_assert_max_num_queries
):
    SegmentFactory(organization=org_a)
    _make_accounts(org_a, [alice, bob, None], 5)
    as_alice.get(LIST)  # the first request also saves the session's organization
    with django_assert_max_num_queries(8) as few:
        assert as_alice.get(LIST).status_code == 200
    _make_accounts(org_a, [alice, bob, None], 55)
    with django_assert_max_num_queries(8) as many:
        response = as_alice.get(LIST, {"sort": "arr_desc"})
    assert len(names_in(response)) == 50
    assert len(many.captured_queries) == len(few.captured_queries)


def test_it_explains_an_empty_list_and_links_admins_to_the_import(as_alice):
    page = as_alice.get(LIST).content.decode()
    assert "No accounts yet" in page
    assert f'href="{reverse("accounts:imports")}"' in page
    assert f'href="{reverse("accounts:segments")}"' in page


def test_it_does_not_offer_imports_or_segments_to_cs_managers(as_bob):
    page = as_bob.get(LIST).content.decode()
    assert "No accounts yet" in page
    assert reverse("accounts:imports") not in page
    assert reverse("accounts:segments") not in page
    assert "Ask an admin" in page


def test_it_says_when_no_account_matches_the_filters(as_alice, org_a):
    AccountFactory(organization=org_a, name="Initech")
    page = as_alice.get(LIST, {"q": "nothing-like-it"}).content.decode()
    assert "No account matches these filters" in page
    assert "Clear filters" in page
    assert f'href="{LIST}"' in page
    assert "No accounts yet" not in page


def test_it_answers_only_the_results_to_an_htmx_filter_request(as_alice, org_a):
    AccountFactory(organization=org_a, name="Initech")
    AccountFactory(organization=org_a, name="Hooli")
    response = as_alice.get(
        LIST, {"q": "hoo"}, headers={"HX-Request": "true", "HX-Target": "account-results"}
    )
    page = response.content.decode()
    assert '<div id="account-results"' in page
    assert "<html" not in page
    assert names_in(response) == ["Hooli"]


# --- An account's page ----------------------------------------------------------------------


@pytest.fixture
def initech(org_a, alice):
    account = AccountFactory(
        organization=org_a,
        name="Initech",
        domain="initech.test",
        plan="enterprise",
        arr=Decimal("120000"),
        owner=alice,
        health_score=35,
        lifecycle_stage="renewal",
        renewal_date=today() + timedelta(days=45),
        signed_up_on=months_ago(27),
        industry="Software",
        properties={"region": "EU", "tier": "gold"},
    )
    ContactFactory(account=account, name="Anna Berg", email="anna@initech.test", title="CTO")
    ContactFactory(
        account=account,
        name="Ben Cole",
        email="ben@initech.test",
        suppressed_reason="unsubscribed",
        suppressed_at=now(),
    )
    SupportTicketFactory(
        account=account,
        subject="Export is slow",
        status="open",
        priority="high",
        url="https://help.example/tickets/1",
    )
    SupportTicketFactory(
        account=account, subject="Password reset", status="solved", opened_at=now() - timedelta(5)
    )
    for day in range(1, 30):
        UsageSnapshotFactory(account=account, date=today() - timedelta(days=day), active_users=112)
    for day in range(31, 60):
        UsageSnapshotFactory(account=account, date=today() - timedelta(days=day), active_users=100)
    return account


def test_it_shows_an_accounts_facts_contacts_tickets_and_usage(as_alice, initech):
    page = as_alice.get(reverse("accounts:detail", args=[initech.pk])).content.decode()
    assert "<h1>Initech</h1>" in page
    assert "$120,000" in page
    assert "2 y 3 mo" in page
    assert "2 years 3 months" in page
    assert "in 45 days" in page
    assert "fact-alert" in page
    assert "Alice Admin" in page
    assert "health-at-risk" in page
    assert "Up for renewal" in page
    assert "not churned" in page
    assert "Anna Berg" in page
    assert "anna@initech.test" in page
    assert "CTO" in page
    assert "Suppressed: unsubscribed" in page
    assert "1 open" in page
    assert '<a href="https://help.example/tickets/1"' in page
    assert "Export is slow" in page
    assert "Password reset" in page
    assert "High priority" in page
    assert "Rising 12%" in page
    assert '<svg class="sparkline"' in page
    assert "polyline" in page
    assert "<dt>region</dt><dd>EU</dd>" in page
    assert "<dt>Industry</dt><dd>Software</dd>" in page
    assert "No responses yet — NPS history appears here once this account's contacts answer." in (
        page.replace("&#x27;", "'")
    )


def test_it_shows_the_panels_other_apps_register(as_alice, initech, monkeypatch):
    def history(*, organization, account):
        return {
            "title": "Last answers",
            "template": "nps_platform/empty_state.html",
            "context": {"message": f"{account.name} scored 9 in March."},
        }

    def nothing(*, organization, account):
        return None

    monkeypatch.setattr(events, "_account_panels", [history, nothing])
    page = as_alice.get(reverse("accounts:detail", args=[initech.pk])).content.decode()
    assert "Last answers" in page
    assert "Initech scored 9 in March." in page
    assert "No responses yet" not in page


def test_it_shows_an_account_page_in_a_bounded_number_of_queries(
    as_alice, initech, django_assert_max_num_queries
):
    url = reverse("accounts:detail", args=[initech.pk])
    as_alice.get(url)
    with django_assert_max_num_queries(14) as few:
        as_alice.get(url)
    for _ in range(30):
        ContactFactory(account=initech)
        SupportTicketFactory(account=initech)
    with django_assert_max_num_queries(14) as many:
        as_alice.get(url)
    assert len(many.captured_queries) == len(few.captured_queries)


def test_it_marks_a_renewal_far_away_without_alarm_and_a_blank_account_with_dashes(as_alice, org_a):
    far = AccountFactory(organization=org_a, renewal_date=today() + timedelta(days=200))
    blank = AccountFactory(organization=org_a, plan="", arr=None, lifecycle_stage="")
    page = as_alice.get(reverse("accounts:detail", args=[far.pk])).content.decode()
    assert "in 200 days" in page
    assert "fact-alert" not in page
    page = as_alice.get(reverse("accounts:detail", args=[blank.pk])).content.decode()
    assert "No usage recorded" in page
    assert "No support tickets." in page
    assert "No contacts at this account yet." in page


# --- Roles and tenants ----------------------------------------------------------------------


def test_it_lets_cs_managers_read_accounts_but_not_segments(as_bob, org_a):
    account = AccountFactory(organization=org_a)
    segment = SegmentFactory(organization=org_a)
    assert as_bob.get(LIST).status_code == 200
    assert as_bob.get(reverse("accounts:detail", args=[account.pk])).status_code == 200
    for url in [
        reverse("accounts:segments"),
        reverse("accounts:segment_create"),
        reverse("accounts:segment_edit", args=[segment.pk]),
        reverse("accounts:segment_preview") + f"?segment={segment.pk}",
    ]:
        assert as_bob.get(url).status_code == 403, url
    assert as_bob.post(reverse("accounts:segment_delete", args=[segment.pk])).status_code == 403
    with scopes_disabled():
        assert Segment.objects.filter(pk=segment.pk).exists()


def test_it_keeps_executives_out_of_account_pages(client, carol, org_a):
    account = AccountFactory(organization=org_a)
    client_for(client, carol)
    assert client.get(LIST).status_code == 403
    assert client.get(reverse("accounts:detail", args=[account.pk])).status_code == 403
    assert client.get(reverse("accounts:segments")).status_code == 403


def test_it_hides_another_tenants_account_and_segments(client, mallory, org_a):
    account = AccountFactory(organization=org_a, name="Secret Initech")
    segment = SegmentFactory(organization=org_a, name="Secret segment")
    client_for(client, mallory)
    assert client.get(reverse("accounts:detail", args=[account.pk])).status_code == 404
    assert client.get(reverse("accounts:segment_edit", args=[segment.pk])).status_code == 404
    assert (
        client.post(
            reverse("accounts:segment_edit", args=[segment.pk]), segment_data(name="Mine now")
        ).status_code
        == 404
    )
    assert client.get(reverse("accounts:segment_delete", args=[segment.pk])).status_code == 404
    assert client.post(reverse("accounts:segment_delete", args=[segment.pk])).status_code == 404
    preview = client.get(reverse("accounts:segment_preview"), {"segment": segment.pk})
    assert preview.status_code == 404
    page = client.get(LIST).content.decode()
    assert "Secret" not in page
    with scopes_disabled():
        segment.refresh_from_db()
        assert segment.name == "Secret segment"


# --- Segments -------------------------------------------------------------------------------


def segment_data(name="Big EU customers", description="", match="all", conditions=(), rows=5):
    data = {
        "name": name,
        "description": description,
        "match": match,
        "conditions-TOTAL_FORMS": str(max(rows, len(conditions))),
        "conditions-INITIAL_FORMS": "0",
        "conditions-MIN_NUM_FORMS": "0",
        "conditions-MAX_NUM_FORMS": "50",
    }
    for index in range(max(rows, len(conditions))):
        field, op, value = conditions[index] if index < len(conditions) else ("", "eq", "")
        key = ""
        for prefix in ("contact.properties", "properties"):
            if field.startswith(prefix + "."):
                field, key = prefix, field.removeprefix(prefix + ".")
                break
        data.update(
            {
                f"conditions-{index}-field": field,
                f"conditions-{index}-key": key,
                f"conditions-{index}-op": op,
                f"conditions-{index}-value": value,
            }
        )
    return data


@pytest.fixture
def accounts_abc(org_a):
    a = AccountFactory(organization=org_a, name="A", plan="enterprise", arr=90000,
                       properties={"region": "EU"})  # fmt: skip
    b = AccountFactory(organization=org_a, name="B", plan="growth", arr=60000,
                       properties={"region": "US"})  # fmt: skip
    c = AccountFactory(organization=org_a, name="C", plan="starter", arr=1000)
    ContactFactory(account=a, locale="de")
    ContactFactory(account=a, locale="en")
    ContactFactory(account=b, locale="de")
    ContactFactory(account=c, locale="fr")
    return a, b, c


def test_it_creates_a_segment_from_the_condition_rows_ignoring_empty_ones(as_alice, org_a, alice):
    data = segment_data(
        description="Worth a call",
        conditions=[
            ("plan", "in", "enterprise, growth"),
            ("", "eq", ""),
            ("arr", "gte", "50,000"),
            ("properties.region", "eq", "EU"),
        ],
    )
    response = as_alice.post(reverse("accounts:segment_create"), data)
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:segments")
    with scopes_disabled():
        segment = Segment.objects.get(organization=org_a)
    assert segment.name == "Big EU customers"
    assert segment.description == "Worth a call"
    assert segment.created_by == alice
    assert segment.rules == {
        "match": "all",
        "conditions": [
            {"field": "plan", "op": "in", "value": ["enterprise", "growth"]},
            {"field": "arr", "op": "gte", "value": "50000"},
            {"field": "properties.region", "op": "eq", "value": "EU"},
        ],
    }


def test_it_renders_five_condition_rows_and_the_live_count_without_javascript(as_alice):
    page = as_alice.get(reverse("accounts:segment_create")).content.decode()
    assert page.count('<li class="condition-row') == 5 + 1  # five rows and the template
    assert 'name="conditions-TOTAL_FORMS" value="5"' in page
    assert '<optgroup label="Account">' in page
    assert '<optgroup label="Contact">' in page
    assert 'value="contact.properties"' in page
    assert f'hx-post="{reverse("accounts:segment_preview")}"' in page
    assert 'hx-trigger="change, keyup changed delay:400ms"' in page
    assert 'id="add-condition"' in page


def test_it_shows_errors_next_to_the_segment_form(as_alice, org_a):
    SegmentFactory(organization=org_a, name="Taken")
    response = as_alice.post(
        reverse("accounts:segment_create"),
        segment_data(name="taken", conditions=[("arr", "gte", "10")]),
    )
    assert response.status_code == 200
    assert "A segment named “taken” exists already." in response.content.decode()
    response = as_alice.post(
        reverse("accounts:segment_create"),
        segment_data(name="Fine", conditions=[("plan", "eq", "x"), ("arr", "gte", "lots")]),
    )
    page = response.content.decode()
    assert "“lots” is not a number." in page
    assert "Condition 2" in page
    response = as_alice.post(
        reverse("accounts:segment_create"),
        segment_data(name="", conditions=[("churned", "eq", "")]),
    )
    page = response.content.decode()
    assert "This field is required." in page
    assert "Churned cannot be “is”; use “is yes”, “is no”." in page
    with scopes_disabled():
        assert Segment.objects.filter(organization=org_a).count() == 1


def test_it_edits_a_segment_with_its_conditions_filled_in(as_alice, org_a, accounts_abc):
    segment = SegmentFactory(
        organization=org_a,
        name="Germans",
        rules={
            "match": "any",
            "conditions": [
                {"field": "contact.locale", "op": "eq", "value": "de"},
                {"field": "contact.properties.role", "op": "in", "value": ["cto", "ceo"]},
            ],
        },
    )
    url = reverse("accounts:segment_edit", args=[segment.pk])
    page = as_alice.get(url).content.decode()
    assert 'value="Germans"' in page
    assert '<option value="contact.locale" selected>' in page
    assert '<option value="contact.properties" selected>' in page
    assert 'value="role"' in page
    assert 'value="cto, ceo"' in page
    assert 'value="any" id="id_match_1" required checked' in page
    assert 'class="count-accounts">2</strong>' in page  # A and B have a German contact
    response = as_alice.post(
        url, segment_data(name="Enterprise", conditions=[("plan", "eq", "enterprise")])
    )
    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.name == "Enterprise"
    assert segment.rules == {
        "match": "all",
        "conditions": [{"field": "plan", "op": "eq", "value": "enterprise"}],
    }


def test_it_deletes_a_segment_after_confirmation(as_alice, org_a):
    segment = SegmentFactory(organization=org_a, name="Old")
    url = reverse("accounts:segment_delete", args=[segment.pk])
    confirm = as_alice.get(url)
    assert confirm.status_code == 200
    assert "Delete the segment “Old”?" in confirm.content.decode()
    response = as_alice.post(url)
    assert response.status_code == 302
    with scopes_disabled():
        assert not Segment.objects.filter(pk=segment.pk).exists()
    assert "Segment “Old” deleted." in as_alice.get(response["Location"]).content.decode()


def test_it_previews_the_count_of_a_draft_segment(as_alice, accounts_abc):
    response = as_alice.post(
        reverse("accounts:segment_preview"),
        segment_data(name="", conditions=[("arr", "gte", "50000"), ("contact.locale", "eq", "de")]),
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert 'class="count-accounts">2</strong> accounts' in page
    assert 'class="count-contacts">2</strong> contacts' in page
    any_of = segment_data(
        match="any", conditions=[("plan", "eq", "starter"), ("contact.locale", "eq", "de")]
    )
    page = as_alice.post(reverse("accounts:segment_preview"), any_of).content.decode()
    assert 'class="count-accounts">3</strong>' in page
    assert 'class="count-contacts">3</strong>' in page


def test_it_previews_a_validation_message_instead_of_failing(as_alice, accounts_abc):
    for conditions, message in [
        ([("plan", "eq", "x"), ("arr", "gte", "lots")], "Condition 2: “lots” is not a number."),
        ([("renewal_date", "within_next_days", "1e99")], "Condition 1: 1e99 is too large."),
        ([("properties", "eq", "EU")], "Condition 1: Name the property, e.g. region."),
        ([("lifecycle_stage", "eq", "zombie")], "zombie is not a lifecycle stage"),
    ]:
        response = as_alice.post(
            reverse("accounts:segment_preview"), segment_data(conditions=conditions)
        )
        assert response.status_code == 200
        assert 'role="alert"' in response.content.decode()
        assert message in response.content.decode()
    broken = as_alice.post(reverse("accounts:segment_preview"), {"match": "all"})
    assert broken.status_code == 200
    assert 'role="alert"' in broken.content.decode()


def test_it_lists_segments_with_rules_in_words_and_lazy_counts(
    as_alice, org_a, accounts_abc, django_assert_max_num_queries
):
    for number in range(3):
        SegmentFactory(organization=org_a, name=f"Segment {number}")
    rich = SegmentFactory(
        organization=org_a,
        name="Rich",
        rules={"match": "all", "conditions": [{"field": "arr", "op": "gte", "value": "50000"}]},
    )
    as_alice.get(reverse("accounts:segments"))
    with django_assert_max_num_queries(5) as few:
        page = as_alice.get(reverse("accounts:segments")).content.decode()
    for number in range(3, 20):
        SegmentFactory(organization=org_a, name=f"Segment {number}")
    with django_assert_max_num_queries(5) as many:
        as_alice.get(reverse("accounts:segments"))
    assert len(few.captured_queries) == len(many.captured_queries)
    assert "arr ≥ 50000" in page
    preview = reverse("accounts:segment_preview")
    assert f'hx-get="{preview}?segment={rich.pk}" hx-trigger="load"' in page
    count = as_alice.get(preview, {"segment": rich.pk}).content.decode()
    assert "<strong>2</strong> accounts" in count
    assert "3 contacts" in count
    assert f'href="{LIST}?segment={rich.pk}"' in count
