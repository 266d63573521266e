"""Slack alerts: detractors posted to a channel through an incoming-webhook URL.

`alert_payload` builds the message (a pure function); `slack_alerts_queue` picks the
created responses that pass the organization's filters and queues one message each (a
burst such as an import sends the worst few and one summary line); `message_post` sends one
through the same guarded HTTP client as webhooks.
"""

import logging
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.urls import reverse

from nps_platform.models import Organization
from responses import webhooks
from responses.models import Category, Response, SlackAlert

logger = logging.getLogger(__name__)

SLACK_HOST = "hooks.slack.com"
TIMEOUT_SECONDS = 10
# Seconds before attempt 2, 3 and 4; Slack's Retry-After wins when it sends one.
RETRY_DELAYS = (30, 120, 600)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
# At most this many alerts for one recorded batch; the rest are summed up in one line.
MAX_ALERTS_PER_BATCH = 10
COMMENT_SIZE = 2500
SENT_MEMORY_SECONDS = 7 * 24 * 3600


# --- Settings -----------------------------------------------------------------------------


def webhook_url_problem(url: str) -> str | None:
    """A message when the URL is not a Slack incoming-webhook URL, else None. With
    WEBHOOKS_ALLOW_PRIVATE_NETWORKS (tests, local development) any http(s) URL will do."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "This is not a valid URL."
    if webhooks.private_networks_allowed():
        if parts.scheme in {"http", "https"} and parts.hostname:
            return None
        return "Use an http:// or https:// URL."
    if parts.scheme != "https" or parts.hostname != SLACK_HOST or parts.port not in {None, 443}:
        return (
            "Use the incoming-webhook URL Slack gives you: it starts with "
            "https://hooks.slack.com/services/."
        )
    if len(parts.path.strip("/")) < 2:
        return "This Slack URL has no webhook path: copy the whole URL from Slack."
    return None


def get_slack_alert(organization: Organization) -> SlackAlert | None:
    return SlackAlert.objects.filter(organization=organization).first()


def slack_alert_save(*, organization: Organization, **fields) -> SlackAlert:
    if problem := webhook_url_problem(fields.get("webhook_url", "")):
        raise ValidationError({"webhook_url": [problem]})
    alert, _ = SlackAlert.objects.update_or_create(organization=organization, defaults=fields)
    return alert


# --- Messages (pure) ----------------------------------------------------------------------


def escape(text: str) -> str:
    """Escapes text for Slack mrkdwn: &, < and > (so nobody can @channel or forge a link)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def format_arr(arr: Decimal | None, currency: str) -> str:
    if arr is None:
        return "ARR unknown"
    return f"ARR {currency} {arr:,.0f}"


def response_url(response_id: int) -> str:
    return f"{settings.SITE_URL}{reverse('responses:detail', args=[response_id])}"


@dataclass(frozen=True)
class AlertFacts:
    """What an alert shows, read from a response (so the payload builder stays pure)."""

    response_id: int
    score: int
    category: str
    danger_zone: bool
    comment: str
    contact_name: str
    contact_email: str
    account_name: str
    arr: Decimal | None
    currency: str
    url: str

    @classmethod
    def of(cls, response: Response, currency: str) -> "AlertFacts":
        contact, account = response.contact, response.account
        return cls(
            response_id=response.pk,
            score=response.score,
            category=response.category,
            danger_zone=response.danger_zone,
            comment=response.comment,
            contact_name=(contact.name if contact else "") or "",
            contact_email=(contact.email if contact else "") or "",
            account_name=account.name if account else "",
            arr=account.arr if account else None,
            currency=currency,
            url=response_url(response.pk),
        )


def alert_payload(facts: AlertFacts) -> dict:
    """The Slack message (Block Kit) for one response."""
    label = Category(facts.category).label if facts.category in Category.values else facts.category
    headline = f"*{facts.score}/10 · {escape(label)}*"
    if facts.danger_zone:
        headline += "  :rotating_light: *Danger zone*"
    person = escape(facts.contact_name or facts.contact_email or "Unknown contact")
    if facts.contact_name and facts.contact_email:
        person += f" ({escape(facts.contact_email)})"
    account = (
        f"{escape(facts.account_name)} · {format_arr(facts.arr, facts.currency)}"
        if facts.account_name
        else "No account"
    )
    comment = facts.comment.strip()
    if len(comment) > COMMENT_SIZE:
        comment = comment[: COMMENT_SIZE - 1] + "…"
    quoted = (
        "\n".join(f"&gt; {line}" for line in escape(comment).splitlines())
        if comment
        else "_No comment._"
    )
    who = facts.contact_name or facts.contact_email or "a contact"
    summary = f"New {label.lower()}: {facts.score}/10 from {who}"
    if facts.account_name:
        summary += f" at {facts.account_name}"
    return {
        "text": escape(summary),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
            {"type": "section", "text": {"type": "mrkdwn", "text": quoted}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*Contact*\n{person}"},
                    {"type": "mrkdwn", "text": f"*Account*\n{account}"},
                ],
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open the response"},
                        "url": facts.url,
                        "action_id": "open_response",
                    }
                ],
            },
        ],
    }


def summary_payload(count: int) -> dict:
    text = (
        f"…and {count} more detractor{'s' if count != 1 else ''} in the same batch. "
        f"See them all: {settings.SITE_URL}{reverse('responses:explorer')}?category=detractor"
    )
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def hello_payload(organization: Organization) -> dict:
    text = (
        f":white_check_mark: NPS Loop can post to this channel. Detractors of "
        f"*{escape(organization.name)}* will show up here."
    )
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


# --- Queueing and sending -----------------------------------------------------------------


def _sent_key(organization_id: int, dedupe: str) -> str:
    return f"slack-alert:{organization_id}:{dedupe}"


def alerts_for(alert: SlackAlert, response_ids: list[int]):
    """The created responses the organization's filters let through, worst first."""
    responses = Response.objects.filter(
        organization_id=alert.organization_id,
        pk__in=response_ids,
        category=Category.DETRACTOR,
    ).select_related("contact", "account")
    if alert.only_danger_zone:
        responses = responses.filter(danger_zone=True)
    if alert.min_arr is not None:
        responses = responses.filter(account__arr__gte=alert.min_arr)
    return responses.order_by("score", "-submitted_at", "pk")


def slack_alerts_queue(*, organization: Organization, response_ids: list[int]) -> int:
    """Queues the alerts for newly created responses; returns how many messages."""
    if not response_ids:
        return 0
    alert = get_slack_alert(organization)
    if alert is None or not alert.is_active:
        return 0
    from responses.tasks import send_slack_message

    chosen = list(alerts_for(alert, response_ids)[: MAX_ALERTS_PER_BATCH + 1])
    extra = 0
    if len(chosen) > MAX_ALERTS_PER_BATCH:
        extra = alerts_for(alert, response_ids).count() - MAX_ALERTS_PER_BATCH
        chosen = chosen[:MAX_ALERTS_PER_BATCH]
    for response in chosen:
        payload = alert_payload(AlertFacts.of(response, organization.currency))
        dedupe = f"response:{response.pk}:{response.created_at.timestamp()}"
        send_slack_message.delay_on_commit(organization.pk, payload, dedupe)
    if extra:
        send_slack_message.delay_on_commit(organization.pk, summary_payload(extra), None)
    return len(chosen) + (1 if extra else 0)


@dataclass
class PostOutcome:
    status: str  # "sent" | "retry" | "failed" | "skipped"
    message: str = ""
    retry_in: int | None = None


def post(url: str, payload: dict) -> PostOutcome:
    """One POST to Slack. 200 sent; 429 and 5xx and network errors retry; the rest fail."""
    body = webhooks.body_of(payload)
    headers = {"Content-Type": "application/json", "User-Agent": webhooks.user_agent()}
    try:
        result = webhooks.post_json(url, body, headers, timeout=TIMEOUT_SECONDS)
    except webhooks.UnsafeURL as exc:
        return PostOutcome("failed", f"Refused: {exc}")
    except (webhooks.HostNotFound, requests.RequestException) as exc:
        return PostOutcome("retry", f"Could not reach Slack: {exc}")
    if 200 <= result.status_code < 300:
        return PostOutcome("sent")
    detail = f"Slack answered {result.status_code}: {result.body_preview or '(empty)'}"
    if result.status_code == 429 or result.status_code >= 500:
        return PostOutcome("retry", detail, retry_in=result.retry_after)
    return PostOutcome("failed", detail)


def message_post(
    *, organization: Organization, payload: dict, dedupe: str | None, attempt: int = 1
) -> PostOutcome:
    """Posts one queued message to the organization's Slack, unless alerts were turned off
    or it was posted already. On a temporary failure, says when to try again."""
    alert = get_slack_alert(organization)
    if alert is None or not alert.is_active:
        return PostOutcome("skipped", "Slack alerts are off.")
    if dedupe and cache.get(_sent_key(organization.pk, dedupe)):
        return PostOutcome("skipped", "Posted already.")
    outcome = post(alert.webhook_url, payload)
    if outcome.status == "sent" and dedupe:
        cache.set(_sent_key(organization.pk, dedupe), 1, timeout=SENT_MEMORY_SECONDS)
    if outcome.status == "retry":
        if attempt >= MAX_ATTEMPTS:
            outcome = PostOutcome("failed", f"Gave up after {attempt} attempts. {outcome.message}")
        else:
            wait = outcome.retry_in or RETRY_DELAYS[attempt - 1]
            outcome.retry_in = max(1, min(wait, webhooks.retry_cap()))
    if outcome.status == "failed":
        logger.warning(
            "Slack alert for organization %s failed: %s", organization.pk, outcome.message
        )
    return outcome


def hello_send(*, organization: Organization) -> PostOutcome:
    alert = get_slack_alert(organization)
    if alert is None:
        return PostOutcome("failed", "Save a Slack webhook URL first.")
    return post(alert.webhook_url, hello_payload(organization))
