"""The executives' weekly digest: last week's NPS and its change, revenue at risk, loop
health and the top themes, with a link to the dashboard showing the same week.

Sent once per organization and week: the week's `WeeklyDigest` row is claimed under a row
lock before the emails go out and marked sent in the same transaction, so a retried or
duplicated task finds it sent and sends nothing. If sending fails, the transaction rolls
back and a retry sends the week again.
"""

from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from insights import metrics
from insights.models import WeeklyDigest
from nps_platform.models import Membership, Organization, Role

TOP_THEMES = 3

# Executives read the dashboard; there is no per-person mail preference yet, so the digest
# goes to every executive of the organization.
RECIPIENT_ROLES = (Role.EXEC,)


def digest_week(today: date) -> tuple[date, date]:
    """The last complete week (Monday to Sunday) before `today`."""
    monday = today - timedelta(days=today.weekday() + 7)
    return monday, monday + timedelta(days=6)


@dataclass(frozen=True)
class DigestFigures:
    filters: metrics.Filters
    headline: metrics.Nps
    previous: metrics.Nps
    change: metrics.Change
    revenue_at_risk: metrics.RevenueAtRisk
    loop: metrics.LoopHealth
    themes: list


def digest_figures(*, organization: Organization, week_start: date) -> DigestFigures:
    """The week's figures, from the same metrics the dashboard shows."""
    filters = metrics.Filters(since=week_start, until=week_start + timedelta(days=6), period="week")
    current = metrics.headline(organization, filters)
    before = metrics.previous(organization, filters)
    return DigestFigures(
        filters=filters,
        headline=current,
        previous=before,
        change=metrics.change(current, before),
        revenue_at_risk=metrics.revenue_at_risk(organization, filters),
        loop=metrics.loop_health(organization, filters),
        themes=metrics.themes(organization, filters)[:TOP_THEMES],
    )


def digest_recipients(organization: Organization) -> list[str]:
    return list(
        Membership.objects.filter(
            organization=organization, role__in=RECIPIENT_ROLES, user__is_active=True
        )
        .order_by("user__email")
        .values_list("user__email", flat=True)
    )


def render_digest(*, organization: Organization, figures: DigestFigures) -> tuple[str, str, str]:
    """(subject, text, html) of the digest."""
    filters = figures.filters
    dashboard_url = (
        f"{settings.SITE_URL}{reverse('insights:dashboard')}?{urlencode(filters.as_params())}"
    )
    context = {
        "organization": organization,
        "figures": figures,
        "filters": filters,
        "dashboard_url": dashboard_url,
        "currency": organization.currency,
        "min_sample": metrics.MIN_SAMPLE,
    }
    subject = f"{organization.name}: NPS for the week of {filters.since:%-d %b %Y}"
    text = render_to_string("insights/email/weekly_digest.txt", context)
    html = render_to_string("insights/email/weekly_digest.html", context)
    return subject, text, html


def weekly_digest_send(*, organization: Organization, today: date | None = None) -> int:
    """Sends last week's digest to the organization's executives, once per week. Returns
    the emails sent (0 when the week was already sent or nobody is to receive it)."""
    today = today or timezone.localdate()
    week_start, _ = digest_week(today)
    recipients = digest_recipients(organization)
    if not recipients:
        return 0
    with transaction.atomic():
        claim, _ = WeeklyDigest.objects.select_for_update().get_or_create(
            organization=organization, week_start=week_start
        )
        if claim.sent_at is not None:
            return 0
        figures = digest_figures(organization=organization, week_start=week_start)
        subject, text, html = render_digest(organization=organization, figures=figures)
        for email in recipients:  # one email each: executives do not see each other's address
            message = EmailMultiAlternatives(subject=subject, body=text, to=[email])
            message.attach_alternative(html, "text/html")
            message.send()
        claim.sent_at = timezone.now()
        claim.recipients = len(recipients)
        claim.save(update_fields=["sent_at", "recipients"])
    return len(recipients)
