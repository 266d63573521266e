"""Segment rules against a hand-counted world: ten accounts, fifteen contacts, and one
outsider in org B that every rule would match if tenancy leaked."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils.timezone import now
from django_scopes import scope

from accounts import segments, selectors
from tests.accounts.factories import AccountFactory, ContactFactory

pytestmark = pytest.mark.django_db


def days(n):
    return now().date() + timedelta(days=n)


# name: plan, arr, industry, lifecycle, health, renewal (days from today), signed up (days
# from today), properties, owner, churned
ACCOUNTS = {
    "Initech": ("enterprise", "120000", "software", "active", 82, 30, -800, {"region": "EU"}, "alice", False),  # noqa: E501
    "Hooli": ("growth", "48000", "software", "expansion", 41, 200, -400, {"region": "US"}, "bob", False),  # noqa: E501
    "Globex": ("growth", "75000", "manufacturing", "renewal", 35, 60, -1200, {"region": "eu"}, None, False),  # noqa: E501
    "Umbrella": ("starter", "5000", "healthcare", "onboarding", None, None, -20, {}, "alice", False),  # noqa: E501
    "Stark": ("enterprise", "250000", "manufacturing", "active", 90, 400, -2000, {"region": "APAC"}, "bob", False),  # noqa: E501
    "Wayne": ("enterprise", "30000", "finance", "churned", 15, -10, -500, {"region": "US"}, None, True),  # noqa: E501
    "Acme": ("", None, "", "trial", None, None, None, {}, None, False),
    "Soylent": ("growth", "50000", "food", "onboarding", 65, 90, -100, {"region": "EU"}, "alice", False),  # noqa: E501
    "Tyrell": ("enterprise", "49999.99", "software", "active", 70, 91, -365, {"region": "US", "tier": "gold"}, "alice", False),  # noqa: E501
    "Cyberdyne": ("starter", "12000", "software", "renewal", 55, 0, -364, {}, "bob", False),
}  # fmt: skip

# email: account, locale, title, suppressed reason, properties
CONTACTS = {
    "anna@initech.test": ("Initech", "de", "CTO", "", {"role": "champion"}),
    "ben@initech.test": ("Initech", "en", "Engineer", "unsubscribed", {}),
    "carla@hooli.test": ("Hooli", "de-DE", "VP Sales", "", {}),
    "dan@hooli.test": ("Hooli", "en", "", "bounced", {}),
    "eva@globex.test": ("Globex", "de", "Head of Ops", "bounced", {}),
    "finn@globex.test": ("Globex", "fr", "CFO", "", {"role": "champion"}),
    "gus@umbrella.test": ("Umbrella", "en", "CEO", "", {}),
    "hana@stark.test": ("Stark", "ja", "", "complained", {}),
    "ivan@stark.test": ("Stark", "DE", "CTO", "", {}),
    "jo@wayne.test": ("Wayne", "en", "CTO", "", {}),
    "kim@soylent.test": ("Soylent", "", "Buyer", "", {"role": "champion"}),
    "lea@tyrell.test": ("Tyrell", "de", "cto", "unsubscribed", {}),
    "max@cyberdyne.test": ("Cyberdyne", "en", "Admin", "", {}),
    "nora@free.test": (None, "de", "", "", {}),
    "omar@acme.test": ("Acme", "", "", "unsubscribed", {}),
}


@pytest.fixture
def world(org_a, org_b, alice, bob):
    owners = {"alice": alice, "bob": bob, None: None}
    accounts = {}
    for name, row in ACCOUNTS.items():
        plan, arr, industry, stage, health, renewal, signup, props, owner, churned = row
        accounts[name] = AccountFactory(
            organization=org_a,
            name=name,
            plan=plan,
            arr=Decimal(arr) if arr else None,
            industry=industry,
            lifecycle_stage=stage,
            health_score=health,
            renewal_date=days(renewal) if renewal is not None else None,
            signed_up_on=days(signup) if signup is not None else None,
            properties=props,
            owner=owners[owner],
            churned_at=now() - timedelta(days=10) if churned else None,
        )
    for email, (account, locale, title, reason, props) in CONTACTS.items():
        ContactFactory(
            organization=org_a,
            account=accounts[account] if account else None,
            email=email,
            locale=locale,
            title=title,
            suppressed_reason=reason,
            suppressed_at=now() if reason else None,
            properties=props,
        )
    # The outsider: it matches nearly every rule below, but lives in org B.
    outsider = AccountFactory(
        organization=org_b,
        name="Outsider",
        plan="enterprise",
        arr=Decimal("999999"),
        lifecycle_stage="onboarding",
        renewal_date=days(5),
        signed_up_on=days(-3000),
        properties={"region": "EU"},
    )
    ContactFactory(organization=org_b, account=outsider, email="x@outsider.test", locale="de")
    with scope(organization=org_a):
        yield org_a


def account_names(org, rules):
    return set(selectors.accounts_matching(org, segments.validate_rules(rules)).values_list(
        "name", flat=True
    ))  # fmt: skip


def contact_emails(org, rules):
    return {
        email.split("@")[0]
        for email in selectors.contacts_matching(org, segments.validate_rules(rules)).values_list(
            "email", flat=True
        )
    }


def rule(*conditions, match="all"):
    return {
        "match": match,
        "conditions": [{"field": f, "op": o, "value": v} for f, o, v in conditions],
    }


ALL_ACCOUNTS = set(ACCOUNTS)
ALL_CONTACTS = {email.split("@")[0] for email in CONTACTS}


@pytest.mark.parametrize(
    ("rules", "accounts", "contacts"),
    [
        pytest.param(
            rule(("plan", "in", "enterprise, growth"), ("arr", "gte", "50000")),
            {"Initech", "Globex", "Stark", "Soylent"},
            {"anna", "ben", "eva", "finn", "hana", "ivan", "kim"},
            id="plan-in-and-arr-gte",
        ),
        pytest.param(
            rule(("lifecycle_stage", "eq", "onboarding")),
            {"Umbrella", "Soylent"},
            {"gus", "kim"},
            id="lifecycle-eq",
        ),
        pytest.param(
            rule(("lifecycle_stage", "eq", "trial"), ("health_score", "lt", "40"), match="any"),
            {"Acme", "Globex", "Wayne"},
            {"omar", "eva", "finn", "jo"},
            id="any-of",
        ),
        pytest.param(
            rule(("tenure_days", "gte", "365")),
            {"Initech", "Hooli", "Globex", "Stark", "Wayne", "Tyrell"},
            {"anna", "ben", "carla", "dan", "eva", "finn", "hana", "ivan", "jo", "lea"},
            id="tenure-at-least-a-year",
        ),
        pytest.param(
            rule(("tenure_days", "lt", "365")),
            {"Umbrella", "Soylent", "Cyberdyne"},
            {"gus", "kim", "max"},
            id="tenure-under-a-year",
        ),
        pytest.param(
            rule(("renewal_date", "within_next_days", "90")),
            {"Initech", "Globex", "Soylent", "Cyberdyne"},
            {"anna", "ben", "eva", "finn", "kim", "max"},
            id="renewal-within-90-days",
        ),
        pytest.param(
            rule(("renewal_date", "within_last_days", "30")),
            {"Wayne", "Cyberdyne"},
            {"jo", "max"},
            id="renewal-within-last-30-days",
        ),
        pytest.param(
            rule(("renewal_date", "before", str(days(61)))),
            {"Initech", "Globex", "Wayne", "Cyberdyne"},
            {"anna", "ben", "eva", "finn", "jo", "max"},
            id="renewal-before",
        ),
        pytest.param(rule(("churned", "is_true", None)), {"Wayne"}, {"jo"}, id="churned"),
        pytest.param(
            rule(("churned", "is_false", None)),
            ALL_ACCOUNTS - {"Wayne"},
            ALL_CONTACTS - {"jo"},
            id="not-churned",
        ),
        pytest.param(
            rule(("properties.region", "eq", "EU")),
            {"Initech", "Globex", "Soylent"},
            {"anna", "ben", "eva", "finn", "kim"},
            id="property-eq-ignores-case",
        ),
        pytest.param(
            rule(("properties.region", "neq", "EU")),
            {"Hooli", "Stark", "Wayne", "Tyrell", "Umbrella", "Acme", "Cyberdyne"},
            {"carla", "dan", "hana", "ivan", "jo", "lea", "gus", "omar", "max", "nora"},
            id="property-neq-includes-missing",
        ),
        pytest.param(
            rule(("properties.region", "is_empty", None)),
            {"Umbrella", "Acme", "Cyberdyne"},
            {"gus", "omar", "max", "nora"},
            id="property-is-empty",
        ),
        pytest.param(
            rule(("contact.locale", "eq", "de")),
            {"Initech", "Globex", "Stark", "Tyrell"},
            {"anna", "eva", "ivan", "lea", "nora"},
            id="contact-locale-eq",
        ),
        pytest.param(
            rule(("contact.locale", "in", "fr, ja")),
            {"Globex", "Stark"},
            {"finn", "hana"},
            id="contact-locale-in",
        ),
        pytest.param(
            rule(("contact.suppressed", "is_false", None)),
            ALL_ACCOUNTS - {"Acme", "Tyrell"},
            {"anna", "carla", "finn", "gus", "ivan", "jo", "kim", "max", "nora"},
            id="contact-not-suppressed",
        ),
        pytest.param(
            rule(("contact.suppressed", "is_true", None)),
            {"Initech", "Hooli", "Globex", "Stark", "Tyrell", "Acme"},
            {"ben", "dan", "eva", "hana", "lea", "omar"},
            id="contact-suppressed",
        ),
        pytest.param(
            rule(("contact.title", "eq", "cto")),
            {"Initech", "Stark", "Wayne", "Tyrell"},
            {"anna", "ivan", "jo", "lea"},
            id="contact-title-ignores-case",
        ),
        pytest.param(
            rule(("contact.properties.role", "eq", "champion")),
            {"Initech", "Globex", "Soylent"},
            {"anna", "finn", "kim"},
            id="contact-property",
        ),
        pytest.param(
            rule(("owner", "eq", "alice@a.example")),
            {"Initech", "Umbrella", "Soylent", "Tyrell"},
            {"anna", "ben", "gus", "kim", "lea"},
            id="owner-eq",
        ),
        pytest.param(
            rule(("owner", "neq", "ALICE@a.example")),
            {"Hooli", "Globex", "Stark", "Wayne", "Acme", "Cyberdyne"},
            {"carla", "dan", "eva", "finn", "hana", "ivan", "jo", "omar", "max", "nora"},
            id="owner-neq-includes-unowned",
        ),
        pytest.param(
            rule(("owner", "is_empty", None)),
            {"Globex", "Wayne", "Acme"},
            {"eva", "finn", "jo", "omar", "nora"},
            id="owner-is-empty",
        ),
        pytest.param(
            rule(("plan", "neq", "enterprise")),
            {"Hooli", "Globex", "Umbrella", "Acme", "Soylent", "Cyberdyne"},
            {"carla", "dan", "eva", "finn", "gus", "omar", "kim", "max", "nora"},
            id="plan-neq-includes-blank",
        ),
        pytest.param(
            rule(("arr", "neq", "48000")),
            ALL_ACCOUNTS - {"Hooli"},
            ALL_CONTACTS - {"carla", "dan"},
            id="arr-neq-includes-null",
        ),
        pytest.param(
            rule(("industry", "is_empty", None)),
            {"Acme"},
            {"omar", "nora"},
            id="industry-is-empty",
        ),
        pytest.param(
            rule(("health_score", "is_empty", None)),
            {"Umbrella", "Acme"},
            {"gus", "omar", "nora"},
            id="health-is-empty",
        ),
        pytest.param(
            rule(("health_score", "gte", "64.5")),
            {"Initech", "Stark", "Soylent", "Tyrell"},
            {"anna", "ben", "hana", "ivan", "kim", "lea"},
            id="health-gte-a-fraction-rounds-up",
        ),
        pytest.param(
            rule(("plan", "eq", "enterprise"), ("contact.locale", "eq", "de")),
            {"Initech", "Stark", "Tyrell"},
            {"anna", "ivan", "lea"},
            id="account-and-contact-conditions",
        ),
        pytest.param(
            rule(("plan", "eq", "starter"), ("contact.locale", "eq", "ja"), match="any"),
            {"Umbrella", "Stark", "Cyberdyne"},
            {"gus", "hana", "max"},
            id="account-or-contact-conditions",
        ),
        pytest.param(
            rule(("name", "contains", "YN")),
            {"Wayne", "Cyberdyne"},
            {"jo", "max"},
            id="name-contains",
        ),
        pytest.param(rule(), ALL_ACCOUNTS, ALL_CONTACTS, id="no-conditions-is-everyone"),
    ],
)
def test_it_matches_exactly_the_hand_counted_accounts_and_contacts(
    world, rules, accounts, contacts
):
    assert account_names(world, rules) == accounts
    assert contact_emails(world, rules) == contacts


def test_it_counts_a_segment_in_accounts_and_contacts(world):
    counts = selectors.segment_counts(world, rule(("contact.locale", "eq", "de")))
    assert counts == {"accounts": 4, "contacts": 5}


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        (rule(("planet", "eq", "x")), "Condition 1: Unknown field “planet”."),
        (
            rule(("plan", "eq", "growth"), ("arr", "contains", "5")),
            "Condition 2: arr takes one of eq, gt, gte, is_empty, is_not_empty, lt, lte, neq, "
            "not “contains”.",
        ),
        (rule(("arr", "gte", "lots")), "Condition 1: “lots” is not a number."),
        (rule(("arr", "gte", "")), "Condition 1: give a number."),
        (rule(("arr", "gte", "NaN")), "Condition 1: “NaN” is not a number."),
        (rule(("arr", "gte", "1e40")), "Condition 1: 1e40 is too large."),
        (
            rule(("renewal_date", "before", "soon")),
            "Condition 1: “soon” is not a date; use YYYY-MM-DD.",
        ),
        (
            rule(("renewal_date", "within_next_days", "-5")),
            "Condition 1: give a whole number of days, 0 or more.",
        ),
        (
            rule(("renewal_date", "within_next_days", "99999999")),
            "Condition 1: use at most 36500 days.",
        ),
        (
            rule(("lifecycle_stage", "eq", "zombie")),
            "Condition 1: zombie is not a lifecycle stage "
            "(trial, onboarding, active, expansion, renewal, churned).",
        ),
        (rule(("plan", "in", " , ")), "Condition 1: list at least one value."),
        (rule(("plan", "eq", "  ")), "Condition 1: give a value."),
        (
            rule(("properties.a b", "eq", "x")),
            "Condition 1: “a b” is not a property name (letters, digits, _ or -, "
            "not only digits, no double underscore).",
        ),
        (
            rule(("properties.region__contains", "eq", "x")),
            "Condition 1: “region__contains” is not a property name (letters, digits, _ or -, "
            "not only digits, no double underscore).",
        ),
        (
            rule(("churned", "eq", "yes")),
            "Condition 1: churned takes one of is_false, is_true, not “eq”.",
        ),  # fmt: skip
        ({"match": "some", "conditions": []}, "match must be “all” or “any”."),
        ({"match": "all", "conditions": "plan"}, "conditions must be a list."),
        ({"conditions": [["plan"]]}, "Condition 1 must be an object."),
        ({"conditions": [{"field": ["plan"], "op": "eq"}]}, "Condition 1: Choose a field."),
        ("plan = growth", "Rules must be an object with match and conditions."),
    ],
)
def test_it_explains_what_is_wrong_with_a_rule(rules, message):
    with pytest.raises(ValidationError) as caught:
        segments.validate_rules(rules)
    assert caught.value.messages == [message]


def test_it_puts_valid_rules_in_canonical_form():
    cleaned = segments.validate_rules(
        rule(
            ("arr", "gte", "50,000"),
            ("lifecycle_stage", "in", "Onboarding, up for renewal"),
            ("renewal_date", "before", "2026-03-01T10:00"),
            ("churned", "is_true", "ignored"),
            ("tenure_days", "gte", "365"),
        )
    )
    assert cleaned == {
        "match": "all",
        "conditions": [
            {"field": "arr", "op": "gte", "value": "50000"},
            {"field": "lifecycle_stage", "op": "in", "value": ["onboarding", "renewal"]},
            {"field": "renewal_date", "op": "before", "value": "2026-03-01"},
            {"field": "churned", "op": "is_true", "value": None},
            {"field": "tenure_days", "op": "gte", "value": "365"},
        ],
    }


def test_it_describes_a_rule_in_words():
    words = segments.describe(
        segments.validate_rules(
            rule(
                ("plan", "in", "enterprise, growth"),
                ("arr", "gte", "50000"),
                ("renewal_date", "within_next_days", "90"),
                ("churned", "is_false", None),
            )
        )
    )
    assert words == (
        "plan is one of enterprise, growth and arr ≥ 50000 and "
        "renewal_date within the next 90 days and not churned"
    )
    assert segments.describe({"match": "all", "conditions": []}) == "every account"
    assert segments.describe(rule(("plan", "eq", "a"), ("plan", "eq", "b"), match="any")) == (
        "plan is a or plan is b"
    )
