"""Comment analysis on a corpus of real-looking comments: themes (keywords, phrases, case,
punctuation, word starts), sentiment, determinism, idempotency and the organization's own
keywords and themes."""

import io

import pytest
from django.core.management import CommandError, call_command
from django_scopes import scope

from accounts import services as account_services
from responses.analysis import (
    DEFAULT_THEMES,
    analysis_hash,
    responses_analyze,
    sentiment_of,
    taxonomy_for,
    themes_of,
)
from responses.models import Response, ResponseTheme, Theme
from responses.services import response_record
from responses.templatetags.responses_tags import sentiment_word

pytestmark = pytest.mark.django_db

# (comment, the themes it is about). Every default theme appears at least twice.
CORPUS = [
    ("Way too EXPENSIVE for what we get. The price went up again.", {"pricing"}),
    ("Honestly the pricing is fair, great value for money!", {"pricing", "praise"}),
    ("Too pricey for a team of five.", {"pricing"}),
    ("Support never replied to my ticket. Three days and counting, terrible.", {"support"}),
    ("Customer   service was quick; Maria answered within an hour.", {"support"}),
    ("Our account manager got back to me the same day.", {"support"}),
    ("The app crashed twice this week and we lost data.", {"bugs"}),
    ("Exports are NOT WORKING since the last update.", {"bugs"}),
    ("It doesn’t work on mobile (curly apostrophe).", {"bugs"}),
    ("Dashboard is confusing, too many clicks to find anything.", {"usability"}),
    ("Really easy to use, the interface is clean.", {"usability"}),
    ("Onboarding took forever and the documentation is outdated.", {"onboarding"}),
    ("Set up was painless; the training session helped.", {"onboarding"}),
    ("No way to schedule a report. Please add a Salesforce integration!", {"missing_features"}),
    ("Missing basic reporting", {"missing_features"}),
    ("Pages are slow to load; search times out on big projects.", {"performance"}),
    ("Much faster after the upgrade.", {"performance"}),
    ("We were charged twice and still wait for the refund.", {"billing"}),
    ("The invoice shows the wrong VAT number.", {"billing"}),
    ("Fantastic product, I recommend it to every PM I know.", {"praise"}),
    ("Thank you! Brilliant tool.", {"praise"}),
    ("Your REST API is flaky: 500 error on every bulk call.", {"bugs", "missing_features"}),
    ("It works.", set()),
    ("The report is due on Monday.", set()),
    ("", set()),
]

# Decided on purpose: a keyword matches at the start of a word ("price" → "pricey"), never
# in the middle of one, and keywords of three letters or fewer match only whole words.
WORD_BOUNDARIES = [
    ("The unsupported browser warning is annoying.", set()),  # not "support"
    ("We feel supported by the team.", {"support"}),  # a word start: it is about support
    ("A rapid build with a nice guide.", set()),  # not "api", not "ui"
    ("The flag feature toggles.", set()),  # not "lag"
    ("The capital city.", set()),  # not "api"
    ("The UI is dated.", {"usability"}),
]


@pytest.fixture
def taxonomy(org_a):
    with scope(organization=org_a):
        return taxonomy_for(org_a)


def test_it_has_a_corpus_covering_every_default_theme_at_least_twice():
    for slug in DEFAULT_THEMES:
        assert sum(slug in expected for _, expected in CORPUS) >= 2, slug


@pytest.mark.parametrize(("comment", "expected"), CORPUS)
def test_it_finds_the_themes_of_a_comment(taxonomy, comment, expected):
    assert set(themes_of(comment, taxonomy)) == expected


@pytest.mark.parametrize(("comment", "expected"), WORD_BOUNDARIES)
def test_it_matches_keywords_at_word_starts_only(taxonomy, comment, expected):
    assert set(themes_of(comment, taxonomy)) == expected


def test_it_lists_themes_in_a_stable_order(taxonomy):
    comment = "Great tool but the price is too high and it crashes."
    assert themes_of(comment, taxonomy) == ["bugs", "praise", "pricing"]


@pytest.mark.parametrize(
    ("comment", "word"),
    [
        ("Really easy to use, the interface is clean.", "positive"),
        ("Fantastic product, I recommend it to every PM I know.", "positive"),
        ("The app crashed twice this week and we lost data.", "negative"),
        ("Missing basic reporting. No way to schedule a report.", "negative"),
        ("The report is due on Monday.", "neutral"),
        # Product feedback, which VADER's own lexicon reads as neutral or positive.
        (
            "Honestly the billing is a nightmare and the price per seat is hard to justify.",
            "negative",
        ),
        ("Too expensive for a team our size.", "negative"),
        ("Buggy since the last release, and laggy on Mondays.", "negative"),
        ("Not expensive at all, and fast and reliable.", "positive"),
        ("Honestly, the interface is intuitive.", "positive"),
    ],
)
def test_it_scores_sentiment(comment, word):
    score = sentiment_of(comment)
    assert -1 <= score <= 1
    assert sentiment_word(score) == word


def test_it_gives_no_sentiment_without_words():
    assert sentiment_of("") is None
    assert sentiment_of("   \n") is None
    assert sentiment_word(None) == ""


def test_it_is_deterministic(taxonomy):
    first = [
        (themes_of(c, taxonomy), sentiment_of(c), analysis_hash(c, taxonomy)) for c, _ in CORPUS
    ]
    second = [
        (themes_of(c, taxonomy), sentiment_of(c), analysis_hash(c, taxonomy)) for c, _ in CORPUS
    ]
    assert first == second


# --- Analysing stored responses ---------------------------------------------------------------


@pytest.fixture
def recorded(org_a):
    """The corpus recorded as responses of one contact (not analysed yet)."""
    with scope(organization=org_a):
        account_services.records_upsert(
            organization=org_a,
            kind="contacts",
            items=[{"email": "ann@initech.example", "name": "Ann"}],
        )
        ids = [
            response_record(
                organization=org_a,
                channel="api",
                email="ann@initech.example",
                score=n % 11,
                comment=comment,
            )[0].pk
            for n, (comment, _) in enumerate(CORPUS)
        ]
        yield org_a, ids


def _state(ids):
    return {
        r.pk: (r.themes, r.sentiment, r.analyzed_hash)
        for r in Response.objects.filter(pk__in=ids).order_by("pk")
    }


def test_it_analyses_responses_and_keeps_a_row_per_theme(recorded):
    org, ids = recorded

    assert responses_analyze(organization=org, response_ids=ids) == len(ids)

    for response_id, (comment, expected) in zip(ids, CORPUS, strict=True):
        response = Response.objects.get(pk=response_id)
        assert set(response.themes) == expected, comment
        assert (response.sentiment is None) == (not comment.strip())
        rows = set(ResponseTheme.objects.filter(response=response).values_list("theme", flat=True))
        assert rows == expected


def test_it_skips_what_is_already_analysed(recorded):
    org, ids = recorded
    responses_analyze(organization=org, response_ids=ids)
    before = _state(ids)
    theme_rows = ResponseTheme.objects.count()

    assert responses_analyze(organization=org, response_ids=ids) == 0
    assert _state(ids) == before
    assert ResponseTheme.objects.count() == theme_rows


def test_it_reanalyses_only_the_comments_that_changed(recorded):
    org, ids = recorded
    responses_analyze(organization=org, response_ids=ids)
    Response.objects.filter(pk=ids[-2]).update(comment="Support is slow to answer.")

    assert responses_analyze(organization=org, response_ids=ids) == 1
    assert Response.objects.get(pk=ids[-2]).themes == ["performance", "support"]


def test_it_changes_the_themes_and_the_hash_with_the_organizations_keywords(recorded):
    org, ids = recorded
    responses_analyze(organization=org, response_ids=ids)
    report = ids[CORPUS.index(("The report is due on Monday.", set()))]
    before = Response.objects.get(pk=report)
    assert before.themes == []

    Theme.objects.create(
        organization=org, slug="missing_features", name="Missing features", keywords=["Report"]
    )
    taxonomy = taxonomy_for(org)
    assert "report" in {s: w for s, _, w in taxonomy.themes}["missing_features"]

    changed = responses_analyze(organization=org, response_ids=ids)

    after = Response.objects.get(pk=report)
    assert after.themes == ["missing_features"]
    assert after.analyzed_hash != before.analyzed_hash
    # Every hash moved (the taxonomy is part of it); only comments that mention it changed.
    assert changed == len(ids)
    assert ResponseTheme.objects.filter(response_id=report, theme="missing_features").exists()
    assert responses_analyze(organization=org, response_ids=ids) == 0


def test_it_finds_a_new_theme_of_the_organization(recorded):
    org, ids = recorded
    responses_analyze(organization=org, response_ids=ids)
    Theme.objects.create(
        organization=org, slug="mobile", name="Mobile app", keywords=["mobile", "ios app"]
    )

    responses_analyze(organization=org, response_ids=ids)

    mobile = ids[CORPUS.index(("It doesn’t work on mobile (curly apostrophe).", {"bugs"}))]
    assert Response.objects.get(pk=mobile).themes == ["bugs", "mobile"]
    assert set(
        ResponseTheme.objects.filter(theme="mobile").values_list("response_id", flat=True)
    ) == {mobile}
    assert taxonomy_for(org).names()["mobile"] == "Mobile app"


def test_it_leaves_another_organization_alone_with_one_organizations_keywords(recorded, org_b):
    org, _ = recorded
    Theme.objects.create(organization=org, slug="mobile", name="Mobile", keywords=["mobile"])
    with scope(organization=org_b):
        other = taxonomy_for(org_b)
    assert "mobile" not in other.names()
    assert other.fingerprint != taxonomy_for(org).fingerprint


def test_it_reanalyses_what_an_older_version_analysed_from_the_command(
    recorded, django_capture_on_commit_callbacks
):
    org, ids = recorded
    responses_analyze(organization=org, response_ids=ids)
    current = _state(ids)
    stale = ids[CORPUS.index(next(entry for entry in CORPUS if entry[0].strip()))]
    Response.objects.filter(pk=stale).update(sentiment=0.99, analyzed_hash="version-1-hash")
    out = io.StringIO()

    with django_capture_on_commit_callbacks(execute=True):
        call_command("reanalyze_responses", org.slug, stdout=out)

    assert _state(ids) == current
    assert f"{org.slug}: " in out.getvalue()


def test_it_names_an_unknown_organization_in_the_command(db):
    with pytest.raises(CommandError, match="No organization nowhere"):
        call_command("reanalyze_responses", "nowhere", stdout=io.StringIO())
