"""Personalised outreach drafts: a playbook template rendered over the account's real context.

Templates use Jinja2's sandbox, so an admin's edit cannot reach Python internals, and an
unknown variable renders visibly as [[name?]] instead of crashing. `DraftProvider` is the
seam for a language-model drafter later; the default is deterministic.
"""

import functools
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from django.db.models import OuterRef, Subquery
from django.utils.timezone import now
from jinja2 import TemplateSyntaxError, Undefined
from jinja2.sandbox import SandboxedEnvironment

from accounts.models import OPEN_TICKET_STATUSES, SupportTicket
from accounts.selectors import usage_trend, usage_trends
from followups.models import Playbook
from responses.analysis import DEFAULT_THEMES
from responses.models import Response

DEFAULTS: dict[str, dict] = {
    Playbook.RECOVER: {
        "sla_hours": 24,
        "subject": "About your feedback, {{ contact.first_name or 'there' }}",
        "body": """Hi {{ contact.first_name or 'there' }},

Thank you for your honest feedback{% if score_change %} — I noticed {{ score_change }}{% endif %}. \
{% if themes %}You mentioned {{ themes }}, and I'd like to understand exactly what happened.\
{% else %}I'd like to understand what is not working for you.{% endif %}

{% if tickets.open %}
I can see {{ tickets.open }} support ticket{{ 's' if tickets.open != 1 }} still open\
{% if tickets.subjects %} ({{ tickets.subjects }}){% endif %}; I'm looking into {{ 'them' if tickets.open != 1 else 'it' }} personally.
{% elif tickets.count %}
I also see {{ tickets.count }} support ticket{{ 's' if tickets.count != 1 }} in the last 90 days\
{% if tickets.subjects %} ({{ tickets.subjects }}){% endif %}.
{% endif %}
You've been with us since {{ account.customer_since }}{% if account.plan %} on the {{ account.plan }} plan{% endif %}, \
and that matters to us. Could we find 20 minutes this week? Just reply with a time that suits you.

{{ owner.signature }}""",
    },
    Playbook.NUDGE: {
        "sla_hours": 72,
        "subject": "What would make us a 10, {{ contact.first_name or 'there' }}?",
        "body": """Hi {{ contact.first_name or 'there' }},

Thanks for your feedback{% if themes %} about {{ themes }}{% endif %}. You've been with us since \
{{ account.customer_since }}, and we want to earn a 10 from you.
{% if usage.direction == 'falling' %}
I noticed your team is using us a little less lately — is there something getting in the way?
{% endif %}
What one thing would make the biggest difference for you?

{{ owner.signature }}""",
    },
    Playbook.THANK: {
        "sla_hours": 72,
        "subject": "Thank you, {{ contact.first_name or 'there' }}!",
        "body": """Hi {{ contact.first_name or 'there' }},

Thank you for the {{ score }} — it made our day{% if themes %}, and it's great to hear about \
{{ themes }}{% endif %}.

Since you've been with us since {{ account.customer_since }}, would you share your experience? \
A short review, a referral to a peer, a case study, or joining our beta programme would help us a lot.

{{ owner.signature }}""",
    },
    Playbook.ASK_WHY: {
        "sla_hours": 48,
        "subject": "Could you tell us a bit more, {{ contact.first_name or 'there' }}?",
        "body": """Hi {{ contact.first_name or 'there' }},

Thanks for rating us {{ score }}{% if score_change %} ({{ score_change }}){% endif %}. \
We'd love to know the reason behind it.
{% if tickets.open %}
Was it the open support request{% if tickets.subjects %} about {{ tickets.subjects }}{% endif %}?
{% elif usage.direction == 'falling' %}
I noticed your team uses us less than before — has something changed?
{% elif account.renewal_in_days is not none and account.renewal_in_days <= 90 %}
With your renewal coming up, is there anything we should change before then?
{% else %}
What is the one thing we could do better?
{% endif %}
{{ owner.signature }}""",
    },
}


class VisibleUndefined(Undefined):
    """An unknown variable shows up in the draft as [[name?]] for the person to fix."""

    def __str__(self):
        return f"[[{self._undefined_name}?]]"

    def __iter__(self):
        return iter(())

    def __bool__(self):
        return False


ENV = SandboxedEnvironment(undefined=VisibleUndefined, autoescape=False, trim_blocks=True)


def _month_year(day) -> str:
    return day.strftime("%B %Y") if day else "the start"


def _join(items: list[str]) -> str:
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


THEME_NAMES = {slug: name.lower() for slug, (name, _) in DEFAULT_THEMES.items()}


def arr_tier(arr) -> str:
    if arr is None:
        return ""
    if arr >= 250_000:
        return "strategic"
    if arr >= 50_000:
        return "enterprise"
    if arr >= 10_000:
        return "growth"
    return "starter"


@dataclass
class Prefetched:
    """What the drafts (and priorities) of a batch of responses need, read in a fixed
    number of queries: see prefetch(). draft_context reads one response's share."""

    previous_scores: dict[int, int | None] = field(default_factory=dict)  # by response id
    recent_tickets: dict[int, list[tuple[str, str]]] = field(default_factory=dict)  # account
    trends: dict[int, object] = field(default_factory=dict)  # account id → UsageTrend


def previous_score(organization) -> Subquery:
    """An annotation: the score of the same contact's answer just before this one (None
    when it is the first). A look-up per response on the (organization, contact,
    submitted_at) index, whatever the contact's history."""
    return Subquery(
        Response.objects.filter(
            organization=organization,
            contact_id=OuterRef("contact_id"),
            submitted_at__lt=OuterRef("submitted_at"),
        )
        .order_by("-submitted_at", "-pk")
        .values("score")[:1]
    )


def previous_scores(organization, responses: list[Response]) -> dict[int, int | None]:
    """Each response's contact's answer just before it (None when it is the first): read
    from the `previous_score` annotation when the responses carry it, else in one query."""
    found: dict[int, int | None] = {r.pk: None for r in responses}
    if all(hasattr(r, "previous_score") for r in responses):
        found.update((r.pk, r.previous_score) for r in responses)
        return found
    with_contact = [r.pk for r in responses if r.contact_id]
    if with_contact:
        found.update(
            Response.objects.filter(organization=organization, pk__in=with_contact)
            .annotate(previous=previous_score(organization))
            .values_list("pk", "previous")
        )
    return found


def prefetch(organization, responses: list[Response], *, today=None) -> Prefetched:
    today = today or now().date()
    account_ids = {r.account_id for r in responses if r.account_id}
    tickets: dict[int, list] = {}
    for account_id, subject, status in (
        SupportTicket.objects.filter(
            organization=organization,
            account_id__in=account_ids,
            opened_at__gte=now() - timedelta(days=90),
        )
        .order_by("account_id", "-opened_at")
        .values_list("account_id", "subject", "status")
    ):
        rows = tickets.setdefault(account_id, [])
        if len(rows) < 20:
            rows.append((subject, status))
    return Prefetched(
        previous_scores=previous_scores(organization, responses),
        recent_tickets=tickets,
        trends=usage_trends(organization, account_ids, today=today),
    )


def draft_context(
    *, organization, response: Response, owner=None, prefetched: Prefetched | None = None
) -> dict:
    """Everything a draft may say about this customer, as plain values."""
    account, contact = response.account, response.contact
    today = now().date()
    tickets = {"count": 0, "open": 0, "subjects": ""}
    trend = None
    if account is not None:
        if prefetched is not None:
            rows = prefetched.recent_tickets.get(account.pk, [])
            trend = prefetched.trends.get(account.pk)
        else:
            recent = SupportTicket.objects.filter(
                organization=organization,
                account=account,
                opened_at__gte=now() - timedelta(days=90),
            ).order_by("-opened_at")
            rows = list(recent.values_list("subject", "status")[:20])
            trend = usage_trend(organization, account, today=today)
        open_rows = [s for s, status in rows if status in OPEN_TICKET_STATUSES]
        tickets = {
            "count": len(rows),
            "open": len(open_rows),
            "subjects": _join([f"“{s}”" for s in (open_rows or [s for s, _ in rows])[:2]]),
        }
    if prefetched is not None:
        previous = prefetched.previous_scores.get(response.pk)
    else:
        previous = previous_scores(organization, [response])[response.pk]
    score_change = ""
    if previous is not None and previous != response.score:
        score_change = f"your score went from {previous} to {response.score}"
    themes = _join([THEME_NAMES.get(t, t.replace("_", " ")) for t in response.themes])
    owner_name = (owner.name or owner.email.split("@")[0]) if owner else organization.name
    first_name = (contact.name.split()[0] if contact and contact.name else "") or ""
    return {
        "score": response.score,
        "category": response.category,
        "comment": response.comment,
        "has_comment": response.has_comment,
        "themes": themes,
        "previous_score": previous,
        "score_change": score_change,
        "contact": {
            "first_name": first_name,
            "name": contact.name if contact else "",
            "email": contact.email if contact else "",
            "title": contact.title if contact else "",
        },
        "account": {
            "name": account.name if account else "",
            "plan": account.plan if account else "",
            "arr": account.arr if account else None,
            "arr_tier": arr_tier(account.arr) if account else "",
            "customer_since": _month_year(account.signed_up_on if account else None),
            "tenure_days": account.tenure_days(today) if account else None,
            "renewal_in_days": (account.renewal_date - today).days
            if account and account.renewal_date
            else None,
        },
        "tickets": tickets,
        "usage": {
            "direction": trend.direction if trend else "unknown",
            "change_percent": trend.change_percent if trend else None,
        },
        "owner": {
            "name": owner_name,
            "signature": f"{owner_name}\n{organization.name}",
        },
        "organization": {"name": organization.name},
    }


@dataclass
class RenderedDraft:
    subject: str
    body: str
    problems: list[str]  # unknown variables or a template error, for the editor


@functools.lru_cache(maxsize=256)
def _compiled(source: str):
    """Compiling a template costs ~100× rendering it: each source is compiled once."""
    return ENV.from_string(source)


def render(subject_template: str, body_template: str, context: dict) -> RenderedDraft:
    problems = []
    try:
        subject = _compiled(subject_template).render(context).strip()
        body = _compiled(body_template).render(context).strip() + "\n"
    except TemplateSyntaxError as exc:
        return RenderedDraft("", "", [f"Line {exc.lineno}: {exc.message}"])
    except Exception as exc:  # noqa: BLE001 - a sandbox refusal or a bad filter: report it
        return RenderedDraft("", "", [f"The template cannot be rendered: {exc}"])
    for text in (subject, body):
        start = 0
        while (i := text.find("[[", start)) != -1:
            end = text.find("?]]", i)
            if end == -1:
                break
            problems.append(f"Unknown variable “{text[i + 2 : end]}”.")
            start = end
    return RenderedDraft(
        subject, "\n".join(line.rstrip() for line in body.splitlines()) + "\n", problems
    )


class DraftProvider(Protocol):
    def draft(
        self,
        *,
        organization,
        playbook: str,
        response: Response,
        owner,
        templates: dict | None = None,
        prefetched: Prefetched | None = None,
    ) -> RenderedDraft: ...


class TemplateDraftProvider:
    """The organization's template for the playbook, or the default, over draft_context.
    `templates` (playbook → PlaybookTemplate) and `prefetched` spare a batch the queries."""

    def draft(
        self,
        *,
        organization,
        playbook: str,
        response: Response,
        owner,
        templates: dict | None = None,
        prefetched: Prefetched | None = None,
    ) -> RenderedDraft:
        from followups.models import PlaybookTemplate

        if templates is not None:
            template = templates.get(playbook)
        else:
            template = PlaybookTemplate.objects.filter(
                organization=organization, playbook=playbook
            ).first()
        context = draft_context(
            organization=organization, response=response, owner=owner, prefetched=prefetched
        )
        if template is not None:
            rendered = render(template.subject, template.body, context)
            if rendered.subject or rendered.body.strip():
                return rendered
        default = DEFAULTS[playbook]
        return render(default["subject"], default["body"], context)


provider: DraftProvider = TemplateDraftProvider()
