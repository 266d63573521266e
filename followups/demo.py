"""Demo follow-ups for `seed_demo`: runs after the responses demo and leaves a realistic
queue. Every response gets its follow-up through the one service; then the year is played
back: almost everything older than three weeks was worked and closed with an outcome (first
contact within the SLA, mostly, and a close days later), recent ones are a mix of new, in
progress and waiting on the customer, and a handful are overdue.

Status changes and closes go through the services (so outcomes, activity entries and
events follow the real rules); the history they cannot know (when it happened, the email
sent and the call logged on the way) is then written with bulk updates.
"""

import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils.timezone import now

from followups import drafts, services
from followups.models import (
    Activity,
    ActivityKind,
    FollowUp,
    Outcome,
    PlaybookTemplate,
    Status,
)
from nps_platform.models import Membership, Role
from responses.models import Category, Response

# Outcomes by category, with weights: detractors are recovered or not, promoters advocate.
OUTCOMES = {
    Category.DETRACTOR: [
        (Outcome.RESOLVED, 48),
        (Outcome.CHURN_RISK, 18),
        (Outcome.NOT_REACHABLE, 14),
        (Outcome.NO_RESPONSE, 20),
    ],
    Category.PASSIVE: [(Outcome.RESOLVED, 62), (Outcome.NO_RESPONSE, 38)],
    Category.PROMOTER: [
        (Outcome.REFERRAL_GIVEN, 45),
        (Outcome.REVIEW_LEFT, 40),
        (Outcome.NO_RESPONSE, 15),
    ],
}
NOTES = {
    Outcome.RESOLVED: [
        "Walked them through the fix on a call; they are happy with the workaround.",
        "Credited the double charge and confirmed by email.",
        "Set up a training session for the new team; scheduled a check-in next month.",
        "Escalated to product; the fix shipped and they confirmed it works.",
        "",
    ],
    Outcome.CHURN_RISK: [
        "Budget cut and unhappy with reliability; flagged to the account executive.",
        "Evaluating a competitor before renewal. Exec sponsor call booked.",
        "Champion left the company; new stakeholder is sceptical.",
    ],
    Outcome.NOT_REACHABLE: ["Two emails and a call, no answer.", "Contact has left; bounced."],
    Outcome.NO_RESPONSE: ["No reply after two emails.", "", ""],
    Outcome.REFERRAL_GIVEN: [
        "Introduced us to their sister company's ops lead.",
        "Referred a peer from their CS community.",
        "",
    ],
    Outcome.REVIEW_LEFT: ["Left a 5-star review on G2.", "Review on Capterra.", ""],
}
CALLS = [
    "Call: went through the export issue step by step; sending a summary.",
    "Call with the team lead: pricing concerns, shared the annual plan options.",
    "Call: they want a roadmap review; booked with product.",
    "Call: apologised for the outage and explained the fix.",
]
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass
class _Plan:
    followup: FollowUp
    submitted: datetime
    category: str
    status: str = Status.NEW
    outcome: str = ""
    notes: str = ""
    due_at: datetime | None = None
    first_contact_at: datetime | None = None
    closed_at: datetime | None = None
    history: list = field(default_factory=list)  # (kind, moment, message, data)


def _weighted(rng: random.Random, pairs):
    values, weights = zip(*pairs, strict=True)
    return rng.choices(values, weights=weights)[0]


def _open_all(organization) -> int:
    """Opens the follow-up of every response that has none yet, through the one service.
    (The response_recorded task has usually done it already; this never makes a second.)"""
    missing = list(
        Response.objects.filter(organization=organization, followup__isnull=True)
        .order_by("submitted_at", "pk")
        .values_list("pk", flat=True)
    )
    for response_id in missing:
        services.followup_open_for_response(organization=organization, response_id=response_id)
    return len(missing)


def _pristine(organization) -> list[FollowUp]:
    """Follow-ups nobody has worked yet (only opened, maybe re-planned): the demo's to shape.
    A second seed leaves worked ones alone."""
    worked = Activity.objects.filter(organization=organization).exclude(
        kind__in=[ActivityKind.CREATED, ActivityKind.REPLANNED]
    )
    return list(
        FollowUp.objects.filter(organization=organization, status=Status.NEW)
        .exclude(pk__in=worked.values("followup_id"))
        .select_related("response", "contact", "assignee")
        .order_by("-response__submitted_at", "-pk")
    )


def _sla(organization) -> dict[str, timedelta]:
    saved = {
        t.playbook: t.sla_hours for t in PlaybookTemplate.objects.filter(organization=organization)
    }
    return {
        playbook: timedelta(hours=saved.get(playbook, default["sla_hours"]))
        for playbook, default in drafts.DEFAULTS.items()
    }


def _plan_queue(rng: random.Random, followups: list[FollowUp], sla, moment) -> list[_Plan]:
    """Decides what happened to each follow-up. `followups` are newest first."""
    plans = [
        _Plan(followup=f, submitted=f.response.submitted_at, category=f.response.category)
        for f in followups
    ]
    recent = [p for p in plans if moment - p.submitted <= 21 * DAY]
    if len(recent) < 12:
        recent = plans[:12]
    recent_ids = {id(p) for p in recent}
    older = [p for p in plans if id(p) not in recent_ids]

    # Recent: the freshest are mostly new; older ones in the window half closed.
    open_recent = []
    for n, plan in enumerate(recent):
        age = moment - plan.submitted
        if age > 3 * DAY and rng.random() < 0.5:
            plan.status = Status.CLOSED
        elif n < 3:
            plan.status = [Status.NEW, Status.IN_PROGRESS, Status.WAITING][n]
            open_recent.append(plan)
        else:
            young = age <= 2 * DAY
            plan.status = _weighted(
                rng,
                [(Status.NEW, 60 if young else 15), (Status.IN_PROGRESS, 25), (Status.WAITING, 25)],
            )
            open_recent.append(plan)
    # A few older ones slipped through the cracks and are still open.
    stale = rng.sample(older, min(len(older), max(2, round(len(plans) * 0.0015))))
    stale_ids = {id(p) for p in stale}
    for plan in older:
        plan.status = (
            rng.choice([Status.IN_PROGRESS, Status.WAITING])
            if id(plan) in stale_ids
            else Status.CLOSED
        )

    # Due dates: the SLA from the answer; open ones not among the handful overdue have a
    # next step still ahead of them.
    overdue_count = max(3, round(len(plans) * 0.004))
    late = {id(p) for p in stale}
    wanted = max(0, min(len(open_recent), overdue_count - len(late)))
    late |= {id(p) for p in rng.sample(open_recent, wanted)}
    for plan in plans:
        sla_due = plan.submitted + sla[plan.followup.playbook]
        if plan.status == Status.CLOSED or id(plan) in late:
            plan.due_at = sla_due
            if id(plan) in late and plan.due_at >= moment:
                plan.due_at = moment - rng.uniform(2, 30) * HOUR
        else:
            plan.due_at = max(sla_due, moment + rng.uniform(3, 96) * HOUR)

    for plan in plans:
        _history(rng, plan, moment, late=id(plan) in late)
    return plans


def _history(rng: random.Random, plan: _Plan, moment: datetime, *, late: bool) -> None:
    """The follow-up's life: opened minutes after the answer; then, once someone works it,
    a first contact (an email, or a call for some detractors) mostly within the SLA; a
    call along the way; and the close, days later (a week or two of silence for "no
    response")."""
    followup, contact = plan.followup, plan.followup.contact
    email = contact.email if contact and contact.email else ""
    opened = plan.submitted + timedelta(minutes=rng.uniform(0.5, 5))
    plan.history.append((ActivityKind.CREATED, opened, "", None))
    if plan.status == Status.NEW:
        return
    sla = max(plan.due_at - plan.submitted, HOUR)
    first = plan.submitted + sla * rng.uniform(0.15, 1.6 if late else 1.25)
    first = max(min(first, moment - rng.uniform(0.5, 6) * HOUR), opened + 10 * MINUTE)
    plan.first_contact_at = first
    calls_first = not email or (plan.category == Category.DETRACTOR and rng.random() < 0.2)
    if calls_first:
        plan.history.append((ActivityKind.CALL, first, rng.choice(CALLS), {}))
    else:
        subject = followup.draft_subject
        plan.history.append(
            (
                ActivityKind.EMAIL,
                first,
                f"Emailed {email}: {subject}",
                {"to": email, "subject": subject, "automatic": False},
            )
        )
    if plan.status != Status.CLOSED:
        plan.history.append((ActivityKind.STATUS, first - 5 * MINUTE, "", None))
        return
    plan.outcome = _weighted(rng, OUTCOMES[plan.category])
    plan.notes = rng.choice(NOTES[plan.outcome])
    silent = plan.outcome in (Outcome.NO_RESPONSE, Outcome.NOT_REACHABLE)
    span = rng.uniform(7, 14) * DAY if silent else rng.uniform(0.2, 9) * DAY
    closed = max(min(first + span, moment - rng.uniform(1, 12) * HOUR), first + 30 * MINUTE)
    detractor = plan.category == Category.DETRACTOR
    if detractor and not silent and not calls_first and rng.random() < 0.6:
        when = first + (closed - first) * rng.uniform(0.2, 0.8)
        plan.history.append((ActivityKind.CALL, when, rng.choice(CALLS), {}))
    plan.closed_at = closed
    plan.history.append((ActivityKind.CLOSED, closed, "", None))


def _write_moments(model, names: list[str], rows: list[tuple]) -> None:
    """UPDATE model SET names… WHERE id = … for many rows: one prepared statement run for
    each row. (QuerySet.bulk_update builds a CASE per field and row, which takes tens of
    seconds for a year of history.)"""
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(
        f"{connection.ops.quote_name(model._meta.get_field(name).column)} = %s" for name in names
    )
    adapt = connection.ops.adapt_datetimefield_value
    params = [[*(adapt(value) for value in values), pk] for pk, *values in rows]
    with connection.cursor() as cursor:
        for start in range(0, len(params), 1000):
            cursor.executemany(
                f"UPDATE {table} SET {columns} WHERE id = %s",  # noqa: S608 - names from _meta
                params[start : start + 1000],
            )


def seed_followups(*, organization, stdout, seed: int = 13) -> None:
    started = time.monotonic()
    rng = random.Random(seed)
    moment = now()
    opened = _open_all(organization)
    followups = _pristine(organization)
    if not followups:
        stdout.write("  follow-ups: nothing left to shape")
        return
    plans = _plan_queue(rng, followups, _sla(organization), moment)
    fallback = (
        Membership.objects.filter(organization=organization, role=Role.CS_MANAGER)
        .select_related("user")
        .first()
    )
    fallback_user = fallback.user if fallback else None

    with transaction.atomic():
        # What happened, through the services that own the rules.
        for plan in plans:
            followup = plan.followup
            actor = followup.assignee or fallback_user
            if plan.status == Status.CLOSED:
                services.followup_close(
                    organization=organization,
                    followup=followup,
                    actor=actor,
                    outcome=plan.outcome,
                    notes=plan.notes,
                )
            elif plan.status != Status.NEW:
                services.followup_change_status(
                    organization=organization, followup=followup, actor=actor, status=plan.status
                )
        # When it happened: the year's history, in bulk.
        by_pk = {p.followup.pk: p for p in plans}
        _write_moments(
            FollowUp,
            ["created_at", "due_at", "first_contact_at", "closed_at", "updated_at"],
            [
                (
                    plan.followup.pk,
                    plan.history[0][1],
                    plan.due_at,
                    plan.first_contact_at,
                    plan.closed_at,
                    plan.closed_at or max(when for _, when, _, _ in plan.history),
                )
                for plan in plans
            ],
        )
        moments = []
        for pk, followup_id, kind in Activity.objects.filter(organization=organization).values_list(
            "pk", "followup_id", "kind"
        ):
            if followup_id in by_pk:
                # Each entry the services logged takes the moment it happened; anything
                # else (a re-plan) the moment the follow-up opened.
                history = by_pk[followup_id].history
                when = next((w for k, w, _, _ in history if k == kind), history[0][1])
                moments.append((pk, when))
        _write_moments(Activity, ["created_at"], moments)
        Activity.objects.bulk_create(
            [
                Activity(
                    organization=organization,
                    followup=plan.followup,
                    kind=kind,
                    actor=plan.followup.assignee or fallback_user,
                    message=message,
                    data=data or {},
                    created_at=when,
                )
                for plan in plans
                for kind, when, message, data in plan.history
                if kind in (ActivityKind.EMAIL, ActivityKind.CALL)
            ],
            batch_size=500,
        )

    closed = sum(p.status == Status.CLOSED for p in plans)
    counts = {s: sum(p.status == s for p in plans) for s in (Status.NEW, Status.IN_PROGRESS)}
    waiting = sum(p.status == Status.WAITING for p in plans)
    overdue = FollowUp.objects.filter(
        organization=organization, status__in=services.OPEN_STATUSES, due_at__lt=now()
    ).count()
    stdout.write(
        f"  {len(plans)} follow-ups ({opened} opened here): {closed} closed with outcomes, "
        f"{counts[Status.NEW]} new, {counts[Status.IN_PROGRESS]} in progress, {waiting} waiting, "
        f"{overdue} overdue ({time.monotonic() - started:.1f} s)"
    )
