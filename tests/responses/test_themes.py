"""Comment-theme settings: the default taxonomy, the organization's keywords and themes,
validation, deletion, re-analysis in the background, roles and tenant isolation."""

import pytest
from django.urls import reverse
from django_scopes import scope, scopes_disabled

from accounts import services as account_services
from responses import services
from responses.analysis import DEFAULT_THEMES, responses_analyze
from responses.models import Response, ResponseTheme, Theme
from responses.services import responses_record
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

THEMES = "/settings/themes/"


def _delete_url(theme):
    return reverse("response_settings:theme_delete", args=[theme.pk])


@pytest.fixture
def comments(org_a):
    """Four analysed responses of org A: three with comments, one without."""
    with scope(organization=org_a):
        account_services.records_upsert(
            organization=org_a, kind="contacts", items=[{"email": "ann@initech.example"}]
        )
        report = responses_record(
            organization=org_a,
            channel="api",
            items=[
                {"email": "ann@initech.example", "score": 3, "comment": "SSO login keeps failing"},
                {"email": "ann@initech.example", "score": 9, "comment": "Great value, cheap!"},
                {"email": "ann@initech.example", "score": 6, "comment": "Needs 2FA for admins."},
                {"email": "ann@initech.example", "score": 8},
            ],
        )
        ids = [result.response.pk for result in report.results]
        responses_analyze(organization=org_a, response_ids=ids)
    return ids


@pytest.fixture
def enqueued(monkeypatch):
    """The (organization_id, response_ids) of every analysis the views enqueue."""
    calls = []
    monkeypatch.setattr(
        services.analyze_responses,
        "delay_on_commit",
        lambda organization_id, ids: calls.append((organization_id, list(ids))),
    )
    return calls


def _themes(org):
    with scopes_disabled():
        return {t.slug: (t.name, t.keywords) for t in Theme.objects.filter(organization=org)}


def test_it_shows_the_default_taxonomy_and_the_organizations_additions(as_alice, org_a):
    with scopes_disabled():
        Theme.objects.create(organization=org_a, slug="pricing", name="Pricing", keywords=["tco"])
        Theme.objects.create(organization=org_a, slug="security", name="Security", keywords=["sso"])

    response = as_alice.get(THEMES)

    assert response.status_code == 200
    html = response.content.decode()
    for name, words in DEFAULT_THEMES.values():
        assert name.replace("&", "&amp;") in html
        assert f'<span class="rx-keyword">{words[0]}</span>' in html
    assert '<span class="rx-keyword rx-keyword-added" title="Added by Acme A">tco</span>' in html
    assert 'data-theme="security"' in html
    assert 'aria-current="page">Comment themes</a>' in html


def test_it_adds_keywords_to_a_default_theme_and_reanalyses(as_alice, org_a, comments, enqueued):
    response = as_alice.post(
        THEMES, {"theme": "pricing", "keywords": "Cheap, TCO,  price , cheap"}, follow=True
    )

    # "price" is a default keyword already; repeats and case collapse.
    assert _themes(org_a) == {"pricing": ("Pricing", ["cheap", "tco"])}
    assert "Added 2 keywords to Pricing." in response.content.decode()
    commented = sorted(comments[:3])
    assert enqueued == [(org_a.pk, commented)]


def test_it_creates_a_new_theme_from_a_name(as_alice, org_a, comments, enqueued):
    response = as_alice.post(
        THEMES,
        {"theme": "__new__", "name": "  Security &  SSO ", "keywords": "SSO\nsingle sign-on, 2FA"},
        follow=True,
    )

    assert _themes(org_a) == {"security_sso": ("Security & SSO", ["sso", "single sign-on", "2fa"])}
    assert "Created the theme “Security &amp; SSO” with 3 keywords." in response.content.decode()
    assert len(enqueued) == 1


def test_it_merges_a_new_theme_whose_slug_exists(as_alice, org_a, comments, enqueued):
    as_alice.post(THEMES, {"theme": "__new__", "name": "Security", "keywords": "sso"})
    response = as_alice.post(
        THEMES, {"theme": "__new__", "name": "security", "keywords": "sso, 2fa"}, follow=True
    )
    assert _themes(org_a) == {"security": ("Security", ["sso", "2fa"])}
    assert "“Security” already exists: added 1 keyword to it." in response.content.decode()

    response = as_alice.post(
        THEMES, {"theme": "__new__", "name": "Pricing", "keywords": "tco"}, follow=True
    )
    assert _themes(org_a)["pricing"] == ("Pricing", ["tco"])
    assert "“Pricing” already exists: added 1 keyword to it." in response.content.decode()
    assert len(enqueued) == 3


def test_it_adds_keywords_to_one_of_the_organizations_themes(as_alice, org_a, enqueued):
    as_alice.post(THEMES, {"theme": "__new__", "name": "Mobile app", "keywords": "ios"})

    as_alice.post(THEMES, {"theme": "mobile_app", "keywords": "android, ios"})

    assert _themes(org_a) == {"mobile_app": ("Mobile app", ["ios", "android"])}


def test_it_changes_nothing_when_every_keyword_is_known(as_alice, org_a, enqueued):
    response = as_alice.post(
        THEMES, {"theme": "bugs", "keywords": "Bug, crash, NOT working"}, follow=True
    )

    assert _themes(org_a) == {}
    assert enqueued == []
    assert "already in Bugs &amp; reliability: no change." in response.content.decode()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"theme": "pricing", "keywords": ""}, "keywords", "Enter at least one keyword or phrase."),
        ({"theme": "pricing", "keywords": " , ,\n"}, "keywords", "Enter at least one keyword"),
        ({"theme": "pricing", "keywords": "a, tco"}, "keywords", "is too short"),
        ({"theme": "pricing", "keywords": "?!, tco"}, "keywords", "is too short"),
        ({"theme": "pricing", "keywords": "x" * 101}, "keywords", "under 100 characters"),
        ({"theme": "__new__", "name": "", "keywords": "sso"}, "name", "Name the new theme."),
        ({"theme": "__new__", "name": "!!!", "keywords": "sso"}, "name", "Use letters or digits"),
        ({"theme": "nope", "keywords": "sso"}, "theme", "Select a valid choice"),
    ],
)
def test_it_explains_what_is_wrong(as_alice, org_a, enqueued, data, field, message):
    response = as_alice.post(THEMES, data)

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert any(message in error for error in errors[field]), errors
    assert message.split("“")[0] in response.content.decode()
    assert _themes(org_a) == {}
    assert enqueued == []


def test_it_deletes_an_organizations_theme_and_reanalyses(as_alice, org_a, comments, enqueued):
    with scopes_disabled():
        theme = Theme.objects.create(
            organization=org_a, slug="security", name="Security", keywords=["sso"]
        )

    response = as_alice.post(_delete_url(theme), follow=True)

    assert _themes(org_a) == {}
    assert "Deleted the theme “Security”." in response.content.decode()
    assert enqueued == [(org_a.pk, sorted(comments[:3]))]


def test_it_removes_the_organizations_keywords_from_a_default_theme(as_alice, org_a, enqueued):
    with scopes_disabled():
        theme = Theme.objects.create(
            organization=org_a, slug="pricing", name="Pricing", keywords=["tco"]
        )

    response = as_alice.post(_delete_url(theme), follow=True)

    assert _themes(org_a) == {}
    assert "Removed your keywords from Pricing; its default keywords stay." in (
        response.content.decode()
    )


def test_it_deletes_only_by_post(as_alice, org_a):
    with scopes_disabled():
        theme = Theme.objects.create(organization=org_a, slug="x_y", name="X", keywords=["xy"])

    assert as_alice.get(_delete_url(theme)).status_code == 405
    assert _themes(org_a) == {"x_y": ("X", ["xy"])}


def test_it_enqueues_the_reanalysis_in_chunks(as_alice, org_a, comments, enqueued, monkeypatch):
    monkeypatch.setattr(services, "REANALYZE_CHUNK", 2)

    as_alice.post(THEMES, {"theme": "pricing", "keywords": "tco"})

    first, second = sorted(comments[:3])[:2], sorted(comments[:3])[2:]
    assert enqueued == [(org_a.pk, first), (org_a.pk, second)]


def test_it_reanalyses_after_commit_and_finds_the_new_theme(
    as_alice, org_a, comments, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        as_alice.post(
            THEMES, {"theme": "__new__", "name": "Security", "keywords": "sso, 2fa"}, follow=True
        )

    assert len(callbacks) == 1
    with scopes_disabled():
        themes = dict(Response.objects.filter(pk__in=comments).values_list("pk", "themes"))
        rows = set(
            ResponseTheme.objects.filter(theme="security").values_list("response_id", flat=True)
        )
    assert "security" in themes[comments[0]]
    assert "security" in themes[comments[2]]
    assert "security" not in themes[comments[1]]
    assert rows == {comments[0], comments[2]}


# --- Roles and tenants ------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["bob", "carol"])
def test_it_is_for_admins_only(client, org_a, request, who, enqueued):
    with scopes_disabled():
        theme = Theme.objects.create(organization=org_a, slug="sec", name="Sec", keywords=["sso"])
    client_for(client, request.getfixturevalue(who))

    assert client.get(THEMES).status_code == 403
    assert client.post(THEMES, {"theme": "pricing", "keywords": "tco"}).status_code == 403
    assert client.post(_delete_url(theme)).status_code == 403
    assert _themes(org_a) == {"sec": ("Sec", ["sso"])}
    assert enqueued == []


def test_it_answers_404_for_another_tenants_theme(client, org_a, mallory, enqueued):
    with scopes_disabled():
        theme = Theme.objects.create(organization=org_a, slug="sec", name="Sec", keywords=["sso"])
    client_for(client, mallory)

    assert client.post(_delete_url(theme)).status_code == 404
    assert _themes(org_a) == {"sec": ("Sec", ["sso"])}
    assert enqueued == []


def test_it_keeps_each_organizations_themes_apart(client, org_a, org_b, alice, mallory, enqueued):
    with scopes_disabled():
        Theme.objects.create(organization=org_a, slug="sec", name="Secret A", keywords=["zzz"])
    client_for(client, mallory)

    html = client.get(THEMES).content.decode()
    assert "Secret A" not in html
    client.post(THEMES, {"theme": "__new__", "name": "Sec", "keywords": "yyy"})
    assert _themes(org_a) == {"sec": ("Secret A", ["zzz"])}
    assert _themes(org_b) == {"sec": ("Sec", ["yyy"])}
    assert enqueued == []  # org B has no commented response
