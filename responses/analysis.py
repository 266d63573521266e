"""Comment analysis: sentiment (VADER, a lexicon-based model) and themes from a keyword
taxonomy that admins extend per organization. Deterministic: the same comment and taxonomy
always give the same result, and re-running changes nothing (a hash of both is kept)."""

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cached_property, lru_cache

from django.db import transaction
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from responses import events
from responses.models import Response, ResponseTheme, Theme

# slug: (name, keywords and phrases). A keyword matches at word starts, so "price" also
# matches "prices" and "pricey"; a phrase matches as written.
DEFAULT_THEMES: dict[str, tuple[str, list[str]]] = {
    "pricing": (
        "Pricing",
        ["price", "pricing", "expensive", "cost", "costly", "overpriced", "cheaper", "afford",
         "too much money", "value for money", "per seat", "discount", "licen"],
    ),
    "support": (
        "Support",
        ["support", "customer service", "help desk", "helpdesk", "response time", "ticket",
         "agent", "answered", "no one replied", "never replied", "got back to me", "csm",
         "account manager"],
    ),
    "bugs": (
        "Bugs & reliability",
        ["bug", "crash", "broken", "error", "glitch", "outage", "downtime", "unreliable",
         "doesn't work", "does not work", "not working", "fails", "failed", "data loss",
         "lost data"],
    ),
    "usability": (
        "Usability",
        ["confusing", "intuitive", "easy to use", "hard to use", "difficult to use", "clunky",
         "user friendly", "user-friendly", "interface", "ui", "ux", "navigation", "too many clicks",
         "complicated", "learning curve"],
    ),
    "onboarding": (
        "Onboarding",
        ["onboarding", "setup", "set up", "getting started", "implementation", "training",
         "migration", "documentation", "docs", "tutorial", "first week"],
    ),
    "missing_features": (
        "Missing features",
        ["missing", "feature request", "wish", "would love", "lack", "lacks", "no way to",
         "can't export", "cannot export", "integration", "integrate", "roadmap", "please add",
         "need a", "needs a", "api"],
    ),
    "performance": (
        "Performance",
        ["slow", "sluggish", "lag", "laggy", "load time", "loading", "takes forever", "timeout",
         "times out", "performance", "speed", "fast", "faster", "snappy"],
    ),
    "billing": (
        "Billing",
        ["billing", "invoice", "charged", "charge", "refund", "payment", "credit card", "receipt",
         "subscription", "renewal", "overcharged", "billed"],
    ),
    "praise": (
        "Praise",
        ["love", "great", "amazing", "awesome", "excellent", "fantastic", "best", "recommend",
         "game changer", "game-changer", "delight", "happy with", "thank", "brilliant", "superb"],
    ),
}  # fmt: skip

# VADER's lexicon is written for social media: it misses the words customers use about a
# product ("too expensive", "buggy", "nightmare" score 0) and reads "honestly", which
# opens many complaints, as strongly positive. These entries, on VADER's −4 … +4 scale,
# are added to it (or replace its value) for every comment.
FEEDBACK_LEXICON: dict[str, float] = {
    # Neutral in feedback: emphasis, not praise.
    "honestly": 0.0, "frankly": 0.0, "justify": 0.0,
    # Price and billing.
    "expensive": -1.5, "overpriced": -2.2, "pricey": -1.0, "overcharged": -2.2,
    "unaffordable": -1.8, "affordable": 1.3,
    # Reliability and speed.
    "nightmare": -2.5, "buggy": -2.0, "bug": -1.0, "bugs": -1.2, "glitch": -1.3,
    "glitches": -1.5, "glitchy": -1.8, "crashes": -1.8, "crashed": -1.8, "crashing": -1.8,
    "outage": -2.0, "outages": -2.0, "downtime": -1.6, "unreliable": -2.0, "unusable": -2.6,
    "unstable": -1.6, "freezes": -1.5, "slow": -1.3, "slower": -1.3, "laggy": -1.5,
    "timeout": -1.0, "reliable": 1.5, "fast": 1.0, "snappy": 1.3, "seamless": 1.8,
    # Usability and service.
    "clunky": -1.5, "cumbersome": -1.5, "unintuitive": -1.6, "intuitive": 1.8,
    "unresponsive": -1.6, "lacks": -0.8, "lacking": -1.0,
}  # fmt: skip

ANALYSIS_VERSION = "2"  # 2: FEEDBACK_LEXICON


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    analyzer = SentimentIntensityAnalyzer()
    analyzer.lexicon.update(FEEDBACK_LEXICON)
    return analyzer


@dataclass(frozen=True)
class Taxonomy:
    themes: tuple[tuple[str, str, tuple[str, ...]], ...]  # (slug, name, keywords)

    @cached_property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.themes).encode()).hexdigest()[:16]

    @cached_property
    def patterns(self) -> tuple[tuple[str, re.Pattern], ...]:
        """Each theme's keywords as one compiled expression, built once per taxonomy."""
        return tuple((slug, _pattern(words)) for slug, _, words in self.themes if words)

    def names(self) -> dict[str, str]:
        return {slug: name for slug, name, _ in self.themes}


def taxonomy_for(organization) -> Taxonomy:
    """The default themes, with the organization's keywords and themes added."""
    merged = {slug: [name, list(words)] for slug, (name, words) in DEFAULT_THEMES.items()}
    for theme in Theme.objects.filter(organization=organization).order_by("slug"):
        entry = merged.setdefault(theme.slug, [theme.name, []])
        entry[0] = theme.name or entry[0]
        entry[1] = sorted({*entry[1], *(k.lower().strip() for k in theme.keywords if k.strip())})
    return Taxonomy(
        tuple((slug, name, tuple(words)) for slug, (name, words) in sorted(merged.items()))
    )


@lru_cache(maxsize=256)
def _pattern(keywords: tuple[str, ...]) -> re.Pattern:
    parts = []
    for keyword in sorted(keywords, key=len, reverse=True):
        escaped = re.escape(keyword.lower()).replace(r"\ ", r"\s+")
        # Short words must match whole ("ui", "api"); longer ones match word starts.
        parts.append(rf"\b{escaped}\b" if len(keyword) <= 3 else rf"\b{escaped}")
    return re.compile("|".join(parts))


def themes_of(comment: str, taxonomy: Taxonomy) -> list[str]:
    """The taxonomy's themes the comment is about, in the taxonomy's order. A pure function:
    the analysis stores it, and a follow-up's draft computes it again when it cannot wait."""
    if not comment:
        return []
    text = comment.lower().replace("’", "'")
    return [slug for slug, pattern in taxonomy.patterns if pattern.search(text)]


def sentiment_of(comment: str) -> float | None:
    if not comment.strip():
        return None
    return round(_analyzer().polarity_scores(comment)["compound"], 4)


def analysis_hash(comment: str, taxonomy: Taxonomy) -> str:
    raw = f"{ANALYSIS_VERSION}|{taxonomy.fingerprint}|{comment}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _store(rows: list[tuple[int, float | None, list[str], str]]) -> None:
    """Writes (id, sentiment, themes, hash) rows. On PostgreSQL one UPDATE … FROM (VALUES …)
    for the lot (bulk_update's CASE per row and field takes seconds for 1,000 rows);
    elsewhere one prepared UPDATE per row."""
    from django.db import connection

    qn = connection.ops.quote_name
    table = qn(Response._meta.db_table)
    sentiment, themes, digest = (
        qn(Response._meta.get_field(name).column)
        for name in ("sentiment", "themes", "analyzed_hash")
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            values = ", ".join(["(%s, %s::double precision, %s::jsonb, %s)"] * len(rows))
            cursor.execute(
                f"UPDATE {table} AS r SET {sentiment} = v.sentiment, {themes} = v.themes, "  # noqa: S608 - names from _meta
                f"{digest} = v.digest FROM (VALUES {values}) AS v(id, sentiment, themes, digest) "
                "WHERE r.id = v.id",
                [
                    value
                    for pk, score, slugs, hashed in rows
                    for value in (pk, score, json.dumps(slugs), hashed)
                ],
            )
        else:
            cursor.executemany(
                f"UPDATE {table} SET {sentiment} = %s, {themes} = %s, {digest} = %s WHERE id = %s",  # noqa: S608
                [(score, json.dumps(slugs), hashed, pk) for pk, score, slugs, hashed in rows],
            )


def responses_analyze(*, organization, response_ids: list[int]) -> int:
    """Analyses the responses whose comment or taxonomy changed since their last analysis.
    Returns how many were (re)analysed."""
    taxonomy = taxonomy_for(organization)
    changed = []
    for pk, comment, analyzed_hash in Response.objects.filter(
        organization=organization, pk__in=response_ids
    ).values_list("id", "comment", "analyzed_hash"):
        digest = analysis_hash(comment, taxonomy)
        if digest == analyzed_hash:
            continue
        changed.append((pk, sentiment_of(comment), themes_of(comment, taxonomy), digest))
    if not changed:
        return 0
    with transaction.atomic():
        _store(changed)
        ResponseTheme.objects.filter(
            organization=organization, response_id__in=[pk for pk, *_ in changed]
        ).delete()
        ResponseTheme.objects.bulk_create(
            ResponseTheme(organization=organization, response_id=pk, theme=slug)
            for pk, _, slugs, _ in changed
            for slug in slugs
        )
        # In the same transaction: what counts the themes commits with them.
        events.response_themes_changed.send(
            sender=ResponseTheme,
            organization_id=organization.pk,
            response_ids=[pk for pk, *_ in changed],
        )
    return len(changed)
