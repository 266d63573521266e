"""Writes for follow-ups: opening one per response (idempotent), priority with its reasons,
assignment, drafts, and working it to a close with an outcome."""

import json
from dataclasses import dataclass
from datetime import timedelta
from email.utils import formataddr, parseaddr

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.utils.timezone import now

from accounts.models import OPEN_TICKET_STATUSES, Account, SupportTicket
from accounts.selectors import accounts_matching
from followups import drafts, events
from followups.models import (
    OPEN_STATUSES,
    Activity,
    ActivityKind,
    AssignmentRule,
    FollowUp,
    FollowUpSettings,
    MemberPause,
    Outcome,
    Playbook,
    PlaybookTemplate,
    Status,
)
from nps_platform.models import Membership, Organization, Role, User
from responses.analysis import taxonomy_for, themes_of
from responses.models import Category, Response

# --- Rules: playbook, priority, assignment, due date ----------------------------------------


def playbook_for(response: Response) -> str:
    """Every group gets a playbook; an answer without a comment gets "ask why" first."""
    if not response.has_comment:
        return Playbook.ASK_WHY
    return {
        Category.DETRACTOR: Playbook.RECOVER,
        Category.PASSIVE: Playbook.NUDGE,
        Category.PROMOTER: Playbook.THANK,
    }[response.category]


@dataclass(frozen=True)
class Priority:
    score: int
    reasons: list[dict]  # [{"reason": "Danger zone (0–3)", "points": 20}]


@dataclass
class OpenContext:
    """What opening a batch of follow-ups reads, once per batch instead of once per
    response: the organization's ARR distribution, team, pauses, rules, open load,
    templates and settings, and the batch's previous scores, tickets and usage trends."""

    arr_ranks: dict[int, tuple[int, int]]  # account id → (accounts with a lower ARR, with one)
    workers: dict[int, User]  # CS managers and admins by id
    paused: set[int]
    rules: list[tuple[AssignmentRule, set[int]]]  # with the batch's accounts they match
    managers: list[int]  # CS managers not paused, sorted
    load: dict[int, int]  # open follow-ups per manager, kept current as the batch assigns
    templates: dict[str, PlaybookTemplate]
    settings: FollowUpSettings
    open_tickets: dict[int, int]  # by account id
    prefetched: drafts.Prefetched | None

    @classmethod
    def load_for(
        cls, organization: Organization, responses: list[Response], accounts=()
    ) -> "OpenContext":
        account_ids = {r.account_id for r in responses if r.account_id}
        account_ids |= {a.pk for a in accounts if a is not None}
        paused = paused_user_ids(organization)
        memberships = list(
            Membership.objects.filter(
                organization=organization, role__in=[Role.CS_MANAGER, Role.ADMIN]
            ).select_related("user")
        )
        managers = sorted(
            m.user_id for m in memberships if m.role == Role.CS_MANAGER and m.user_id not in paused
        )
        rules = [
            (
                rule,
                set(
                    accounts_matching(organization, rule.segment.rules)
                    .filter(pk__in=account_ids)
                    .values_list("pk", flat=True)
                )
                if account_ids
                else set(),
            )
            for rule in AssignmentRule.objects.filter(organization=organization).select_related(
                "segment"
            )
        ]
        return cls(
            arr_ranks=arr_ranks(organization, account_ids),
            workers={m.user_id: m.user for m in memberships},
            paused=paused,
            rules=rules,
            managers=managers,
            load=dict(
                FollowUp.objects.filter(
                    organization=organization, status__in=OPEN_STATUSES, assignee_id__in=managers
                )
                .values_list("assignee_id")
                .annotate(n=Count("id"))
            ),
            templates={
                t.playbook: t for t in PlaybookTemplate.objects.filter(organization=organization)
            },
            settings=settings_for(organization),
            open_tickets=dict(
                SupportTicket.objects.filter(
                    organization=organization,
                    account_id__in=account_ids,
                    status__in=OPEN_TICKET_STATUSES,
                )
                .values_list("account_id")
                .annotate(n=Count("id"))
            ),
            prefetched=drafts.prefetch(organization, responses) if responses else None,
        )


def arr_ranks(organization: Organization, account_ids) -> dict[int, tuple[int, int]]:
    """For each of these accounts that has an ARR: how many of the organization's accounts
    have a lower one, and how many have one at all. One query, ranked by the database:
    the organization's ARR distribution never travels to Python."""
    ids = sorted(account_ids)
    if not ids:
        return {}
    table = connection.ops.quote_name(Account._meta.db_table)
    sql = (
        "SELECT id, below, total FROM ("  # noqa: S608 - the table name comes from _meta
        "SELECT id, RANK() OVER (ORDER BY arr) - 1 AS below, COUNT(*) OVER () AS total "
        f"FROM {table} WHERE organization_id = %s AND arr IS NOT NULL"
        f") AS ranked WHERE id IN ({', '.join(['%s'] * len(ids))})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [organization.pk, *ids])
        return {pk: (below, total) for pk, below, total in cursor.fetchall()}


def priority_for(
    *, organization: Organization, response: Response, context: OpenContext | None = None
) -> Priority:
    """0–100, higher first: heavy hitters and the danger zone go to the top. Each part is
    kept as a reason so the queue can say why a follow-up ranks where it does."""
    reasons = []

    def add(points: int, reason: str):
        if points:
            reasons.append({"reason": reason, "points": points})

    add(
        {"detractor": 40, "passive": 15, "promoter": 5}[response.category],
        response.get_category_display(),
    )
    if response.danger_zone:
        add(20, "Danger zone (0–3)")
    account = response.account
    if account is not None and account.arr is not None:
        if context is not None:
            below, total = context.arr_ranks.get(account.pk, (0, 0))
        else:
            accounts = Account.objects.filter(organization=organization, arr__isnull=False)
            counts = accounts.aggregate(
                total=Count("id"), below=Count("id", filter=Q(arr__lt=account.arr))
            )
            total, below = counts["total"], counts["below"]
        if total:
            percentile = below / total
            points = round(20 * percentile)
            add(points, f"ARR in the top {max(1, round(100 * (1 - percentile)))}% of accounts")
    if response.contact_id:
        if context is not None and context.prefetched is not None:
            previous = context.prefetched.previous_scores.get(response.pk)
        else:
            previous = drafts.previous_scores(organization, [response])[response.pk]
        if previous is not None and previous - response.score >= 2:
            add(
                min(10, 2 * (previous - response.score)),
                f"Score dropped from {previous} to {response.score}",
            )
    if account is not None:
        if context is not None:
            open_tickets = context.open_tickets.get(account.pk, 0)
        else:
            open_tickets = SupportTicket.objects.filter(
                organization=organization, account=account, status__in=OPEN_TICKET_STATUSES
            ).count()
        if open_tickets:
            add(
                min(10, 5 * open_tickets),
                f"{open_tickets} open support ticket{'s' if open_tickets > 1 else ''}",
            )
        if account.renewal_date is not None:
            days = (account.renewal_date - now().date()).days
            if 0 <= days <= 90:
                add(10, f"Renewal in {days} days")
    if not response.has_comment:
        add(5, "No comment: ask why")
    return Priority(score=min(100, sum(r["points"] for r in reasons)), reasons=reasons)


def settings_for(organization: Organization) -> FollowUpSettings:
    found = FollowUpSettings.objects.filter(organization=organization).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return FollowUpSettings.objects.create(organization=organization)
    except IntegrityError:
        return FollowUpSettings.objects.get(organization=organization)


def sla_hours(organization: Organization, playbook: str, context: OpenContext | None = None) -> int:
    if context is not None:
        template = context.templates.get(playbook)
    else:
        template = PlaybookTemplate.objects.filter(
            organization=organization, playbook=playbook
        ).first()
    return template.sla_hours if template else drafts.DEFAULTS[playbook]["sla_hours"]


def paused_user_ids(organization: Organization) -> set[int]:
    today = now().date()
    return set(
        MemberPause.objects.filter(organization=organization)
        .filter(Q(until__isnull=True) | Q(until__gte=today))
        .values_list("user_id", flat=True)
    )


def assignee_for(
    *, organization: Organization, account: Account | None, context: OpenContext | None = None
) -> User | None:
    """The account owner; else the first assignment rule whose segment holds the account;
    else the CS manager with the fewest open follow-ups. Paused people are skipped."""
    if context is None:
        context = OpenContext.load_for(organization, [], accounts=[account])
    chosen = _assignee_id(context, account)
    if chosen in context.load or chosen in context.managers:
        context.load[chosen] = context.load.get(chosen, 0) + 1
    return context.workers.get(chosen)


def _assignee_id(context: OpenContext, account: Account | None) -> int | None:
    paused, workers = context.paused, context.workers
    if account is not None and account.owner_id in workers and account.owner_id not in paused:
        return account.owner_id
    if account is not None:
        for rule, matched in context.rules:
            if rule.assignee_id in paused or rule.assignee_id not in workers:
                continue
            if account.pk in matched:
                return rule.assignee_id
    if not context.managers:
        return None
    return min(context.managers, key=lambda user_id: context.load.get(user_id, 0))


# --- Opening ---------------------------------------------------------------------------------


def _log(followup, kind, *, actor=None, message="", data=None) -> Activity:
    return Activity.objects.create(
        organization_id=followup.organization_id,
        followup=followup,
        kind=kind,
        actor=actor,
        message=message,
        data=data or {},
    )


def _plan(
    organization, followup: FollowUp, response: Response, context: OpenContext | None = None
) -> None:
    followup.playbook = playbook_for(response)
    priority = priority_for(organization=organization, response=response, context=context)
    followup.priority, followup.priority_reasons = priority.score, priority.reasons
    hours = sla_hours(organization, followup.playbook, context)
    followup.due_at = response.submitted_at + timedelta(hours=hours)
    if followup.due_at < now():
        # An old answer (an import) is due now, not in the past.
        followup.due_at = now() + timedelta(hours=hours)
    if not followup.draft_edited:
        draft = drafts.provider.draft(
            organization=organization,
            playbook=followup.playbook,
            response=response,
            owner=followup.assignee,
            templates=context.templates if context else None,
            prefetched=context.prefetched if context else None,  # None: read one by one
        )
        followup.draft_subject, followup.draft_body = draft.subject[:300], draft.body


def _created_message(followup: FollowUp) -> str:
    return f"Opened as {followup.get_playbook_display()}" + (
        f", assigned to {followup.assignee.email}" if followup.assignee else ""
    )


# What opening reads of a response and its account and contact; the rest stays deferred.
OPEN_FIELDS = [
    "organization",
    "contact",
    "account",
    "score",
    "comment",
    "category",
    "danger_zone",
    "has_comment",
    "submitted_at",
    *(
        f"account__{name}"
        for name in (
            "organization",
            "name",
            "plan",
            "arr",
            "renewal_date",
            "signed_up_on",
            "owner",
        )
    ),
    *(
        f"contact__{name}"
        for name in ("organization", "account", "email", "name", "title", "suppressed_reason")
    ),
]


def _responses(organization: Organization, response_ids) -> list[Response]:
    """The responses with their account, contact and previous score, and the themes of
    their comments: computed here by the analysis's own function over the organization's
    taxonomy, so a draft never waits for the comment analysis (which runs after the
    follow-ups, and stores the same themes with the sentiment)."""
    responses = list(
        Response.objects.filter(organization=organization, pk__in=list(response_ids))
        .select_related("account", "contact")
        .only(*OPEN_FIELDS)
        .annotate(previous_score=drafts.previous_score(organization))
        .order_by("pk")
    )
    if any(r.has_comment for r in responses):
        taxonomy = taxonomy_for(organization)
        for response in responses:
            response.themes = themes_of(response.comment, taxonomy) if response.has_comment else []
    else:
        for response in responses:
            response.themes = []
    return responses


def followup_open_for_response(*, organization: Organization, response_id: int) -> FollowUp | None:
    """Opens the follow-up for a response, once: a retried or duplicated task finds the one
    that exists. A response whose score changed re-plans an open follow-up."""
    responses = _responses(organization, [response_id])
    if not responses:
        return None
    response = responses[0]
    existing = FollowUp.objects.filter(organization=organization, response=response).first()
    context = OpenContext.load_for(organization, [response])
    if existing is not None:
        _replan(organization, existing, response, context)
        return existing
    followup = _new_followup(organization, response, context)
    try:
        with transaction.atomic():
            followup.save()
            _log(followup, ActivityKind.CREATED, message=_created_message(followup))
            events.loop_changed_on_commit(organization.pk, [followup.pk])
    except IntegrityError:
        # The same response's task ran twice at once: the other one made it.
        return FollowUp.objects.get(organization=organization, response=response)
    _opened(organization, followup, context)
    return followup


def followups_open_for_responses(*, organization: Organization, response_ids) -> list[int]:
    """followup_open_for_response for a batch, in a fixed number of queries: what every
    follow-up needs is read once, the new follow-ups and their "created" entries are
    inserted together. Idempotent like the one-by-one path, which it falls back to when a
    duplicate delivery inserts the same responses' follow-ups at the same moment."""
    responses = _responses(organization, response_ids)
    if not responses:
        return []
    existing = {
        f.response_id: f
        for f in FollowUp.objects.filter(
            organization=organization, response_id__in=[r.pk for r in responses]
        ).select_related("assignee")
    }
    context = OpenContext.load_for(organization, responses)
    for response in responses:
        if response.pk in existing:
            _replan(organization, existing[response.pk], response, context)
    new = [r for r in responses if r.pk not in existing]
    opened = []
    if new:
        followups = [_new_followup(organization, response, context) for response in new]
        moment = now()
        try:
            with transaction.atomic():
                for followup in followups:
                    followup.created_at = followup.updated_at = moment
                _insert_opened(organization, followups, moment)
                events.loop_changed_on_commit(organization.pk, [f.pk for f in followups])
        except IntegrityError:
            # A duplicate delivery of the same task got there first: one by one finds them.
            for response in new:
                followup = followup_open_for_response(
                    organization=organization, response_id=response.pk
                )
                if followup is not None:
                    opened.append(followup.pk)
        else:
            events.emit_many(
                organization=organization, followups=followups, event="followup.created"
            )
            for followup in followups:
                _maybe_auto_send(organization, followup, context.settings)
            opened = [f.pk for f in followups]
    return sorted([f.pk for f in existing.values()] + opened)


def _insert_opened(organization, followups: list[FollowUp], moment) -> None:
    """Inserts new follow-ups with their "created" entries and sets their ids. On
    PostgreSQL it is one statement of fixed size: a binary array per column, unnested, and
    each entry made from the row it describes (bulk_create's per-value preparation was a
    third of the open path's CPU). Elsewhere two bulk_create. A follow-up that exists
    already for one of the responses raises IntegrityError and inserts nothing."""
    if connection.vendor != "postgresql":
        FollowUp.objects.bulk_create(followups)
        Activity.objects.bulk_create(
            Activity(
                organization_id=organization.pk,
                followup=followup,
                kind=ActivityKind.CREATED,
                message=_created_message(followup),
                created_at=moment,
            )
            for followup in followups
        )
        return
    import psycopg

    qn = connection.ops.quote_name
    fields = [f for f in FollowUp._meta.concrete_fields if not f.primary_key]
    is_json = [f.get_internal_type() == "JSONField" for f in fields]
    columns: list[list] = [[] for _ in fields]  # one array per column: a fixed-size statement
    for followup in followups:
        for column, f, j in zip(columns, fields, is_json, strict=True):
            value = getattr(followup, f.attname)
            column.append(json.dumps(value, cls=f.encoder) if j else value)
    arrays = ", ".join(
        "%b::text[]" if j else f"%b::{f.db_type(connection)}[]"
        for f, j in zip(fields, is_json, strict=True)
    )
    picked = ", ".join(f"c{i}::jsonb" if j else f"c{i}" for i, j in enumerate(is_json))
    names = ", ".join(f"c{i}" for i in range(len(fields)))
    entry = ", ".join(
        qn(Activity._meta.get_field(name).column)
        for name in ("organization", "followup", "kind", "actor", "message", "data", "created_at")
    )
    sql = (  # names from _meta, values as parameters
        f"WITH made AS (INSERT INTO {qn(FollowUp._meta.db_table)} "  # noqa: S608
        f"({', '.join(qn(f.column) for f in fields)}) "
        f"SELECT {picked} FROM unnest({arrays}) AS u({names}) RETURNING id, response_id), "
        f"logged AS (INSERT INTO {qn(Activity._meta.db_table)} ({entry}) "
        "SELECT %b, made.id, %b, NULL, m.message, '{}'::jsonb, %b FROM made "
        "JOIN unnest(%b::bigint[], %b::text[]) AS m(response_id, message) "
        "ON m.response_id = made.response_id) "
        "SELECT id, response_id FROM made"
    )
    connection.ensure_connection()
    # Bound by the server, in binary: Django's client-side cursor would quote each of the
    # thousands of values in Python. Errors still arrive as Django's (IntegrityError).
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(
            sql,
            [
                *columns,
                organization.pk,
                ActivityKind.CREATED.value,
                moment,
                [f.response_id for f in followups],
                [_created_message(f) for f in followups],
            ],
        )
        ids = {response_id: pk for pk, response_id in cursor.fetchall()}
    for followup in followups:
        followup.pk = ids[followup.response_id]
        followup._state.adding, followup._state.db = False, connection.alias


def _new_followup(organization, response: Response, context: OpenContext) -> FollowUp:
    followup = FollowUp(
        organization=organization,
        response=response,
        account=response.account,
        contact=response.contact,
    )
    followup.assignee = assignee_for(
        organization=organization, account=response.account, context=context
    )
    _plan(organization, followup, response, context)
    return followup


def _replan(
    organization, existing: FollowUp, response: Response, context: OpenContext | None = None
) -> None:
    if existing.is_open and (
        existing.playbook != playbook_for(response)
        or existing.priority_reasons
        != priority_for(organization=organization, response=response, context=context).reasons
    ):
        before = existing.playbook
        _plan(organization, existing, response, context)
        existing.updated_at = now()
        existing.save()
        events.loop_changed_on_commit(organization.pk, [existing.pk])
        _log(
            existing,
            ActivityKind.REPLANNED,
            message=f"Score now {response.score}: playbook {before} → {existing.playbook}.",
        )


def _opened(organization, followup: FollowUp, context: OpenContext) -> None:
    events.emit(organization=organization, followup=followup, event="followup.created")
    _maybe_auto_send(organization, followup, context.settings)


def _maybe_auto_send(organization, followup: FollowUp, settings=None) -> None:
    """Auto-send is only for promoter and passive thank-yous, and off by default."""
    if followup.playbook not in {Playbook.THANK, Playbook.NUDGE}:
        return
    if not (settings or settings_for(organization)).auto_send_thanks:
        return
    if followup.contact is None or not followup.contact.email or followup.contact.is_suppressed:
        return
    followup_send_email(
        organization=organization,
        followup=followup,
        actor=None,
        subject=followup.draft_subject,
        body=followup.draft_body,
        automatic=True,
    )


# --- Working a follow-up ---------------------------------------------------------------------


class NotAllowed(ValidationError):
    pass


def followup_send_email(
    *,
    organization: Organization,
    followup: FollowUp,
    actor: User | None,
    subject: str,
    body: str,
    automatic: bool = False,
) -> Activity:
    """Sends the (edited) draft to the contact from the assignee, threaded, and logs it.
    A detractor's follow-up is never sent automatically: a person sends it."""
    if automatic and followup.response.category == Category.DETRACTOR:
        raise NotAllowed("A detractor never gets an automated email: a person sends it.")
    if automatic and actor is not None:
        raise NotAllowed("Automatic sends have no actor.")
    if not automatic and actor is None:
        raise NotAllowed("A person must send this email.")
    contact = followup.contact
    if contact is None or not contact.email:
        raise ValidationError({"to": "This contact has no email address; log a call instead."})
    subject, body = subject.strip(), body.strip()
    if not subject or not body:
        raise ValidationError({"body": "Write a subject and a message before sending."})
    sender = followup.assignee or actor
    from_name = (sender.name or sender.email) if sender else organization.name
    message_id = f"<followup-{followup.pk}@nps-loop>"
    message = EmailMessage(
        subject=subject,
        body=body,
        to=[contact.email],
        reply_to=[sender.email] if sender else None,
        headers={
            "Message-ID": message_id
            if not followup.first_contact_at
            else f"<followup-{followup.pk}-{int(now().timestamp())}@nps-loop>",
            "In-Reply-To": message_id,
            "References": message_id,
        },
    )
    _, address = parseaddr(django_settings.DEFAULT_FROM_EMAIL)
    message.from_email = formataddr((f"{from_name} at {organization.name}", address))
    message.send()
    moment = now()
    with transaction.atomic():
        changes = {"updated_at": moment}
        if followup.first_contact_at is None:
            changes["first_contact_at"] = moment
        if followup.status == Status.NEW:
            changes["status"] = Status.WAITING
        if not automatic and (
            subject != followup.draft_subject or body != followup.draft_body.strip()
        ):
            changes.update(draft_subject=subject, draft_body=body, draft_edited=True)
        FollowUp.objects.filter(pk=followup.pk).update(**changes)
        if "first_contact_at" in changes or "status" in changes:
            events.loop_changed_on_commit(organization.pk, [followup.pk])
        for key, value in changes.items():
            setattr(followup, key, value)
        activity = _log(
            followup,
            ActivityKind.EMAIL,
            actor=actor,
            message=f"Emailed {contact.email}: {subject}",
            data={"to": contact.email, "subject": subject, "body": body, "automatic": automatic},
        )
    if "status" in changes:
        events.emit(organization=organization, followup=followup, event="followup.status_changed")
    return activity


def followup_log(
    *, organization: Organization, followup: FollowUp, actor: User, kind: str, message: str
) -> Activity:
    """A note or a logged call. A call counts as first contact."""
    if kind not in {ActivityKind.NOTE, ActivityKind.CALL}:
        raise ValidationError({"kind": "Log a note or a call."})
    message = message.strip()
    if not message:
        raise ValidationError({"message": "Write what happened."})
    with transaction.atomic():
        if kind == ActivityKind.CALL and followup.first_contact_at is None:
            followup.first_contact_at = now()
            followup.save(update_fields=["first_contact_at"])
            events.loop_changed_on_commit(organization.pk, [followup.pk])
        return _log(followup, kind, actor=actor, message=message[:5000])


def followup_change_status(
    *, organization: Organization, followup: FollowUp, actor: User | None, status: str
) -> FollowUp:
    if status == Status.CLOSED:
        raise ValidationError({"status": "Close with an outcome (followup_close)."})
    if status not in Status.values:
        raise ValidationError({"status": f"Unknown status “{status}”."})
    if status == followup.status:
        return followup
    before = followup.get_status_display()
    followup.status = status
    if status != Status.CLOSED:
        followup.closed_at, followup.outcome = None, ""
    followup.updated_at = now()
    with transaction.atomic():
        followup.save(update_fields=["status", "closed_at", "outcome", "updated_at"])
        events.loop_changed_on_commit(organization.pk, [followup.pk])
        _log(
            followup,
            ActivityKind.STATUS,
            actor=actor,
            message=f"{before} → {followup.get_status_display()}",
        )
    events.emit(organization=organization, followup=followup, event="followup.status_changed")
    return followup


def followup_close(
    *,
    organization: Organization,
    followup: FollowUp,
    actor: User | None,
    outcome: str,
    notes: str = "",
) -> FollowUp:
    """Closing requires an outcome."""
    if not outcome:
        raise ValidationError({"outcome": "Choose an outcome to close the follow-up."})
    if outcome not in Outcome.values:
        raise ValidationError({"outcome": f"Unknown outcome “{outcome}”."})
    moment = now()
    followup.status, followup.outcome = Status.CLOSED, outcome
    followup.closing_notes = notes.strip()
    followup.closed_at, followup.updated_at = moment, moment
    with transaction.atomic():
        followup.save(
            update_fields=["status", "outcome", "closing_notes", "closed_at", "updated_at"]
        )
        events.loop_changed_on_commit(organization.pk, [followup.pk])
        _log(
            followup,
            ActivityKind.CLOSED,
            actor=actor,
            message=f"Closed: {followup.get_outcome_display()}"
            + (f" — {followup.closing_notes}" if followup.closing_notes else ""),
        )
    events.emit(organization=organization, followup=followup, event="followup.closed")
    return followup


def followup_assign(
    *, organization: Organization, followup: FollowUp, actor: User | None, assignee: User | None
) -> FollowUp:
    if (
        assignee is not None
        and not Membership.objects.filter(
            organization=organization, user=assignee, role__in=[Role.CS_MANAGER, Role.ADMIN]
        ).exists()
    ):
        raise ValidationError(
            {"assignee": "Assign to a CS manager or an admin of this organization."}
        )
    if assignee == followup.assignee:
        return followup
    followup.assignee = assignee
    followup.updated_at = now()
    with transaction.atomic():
        followup.save(update_fields=["assignee", "updated_at"])
        _log(
            followup,
            ActivityKind.ASSIGNED,
            actor=actor,
            message=f"Assigned to {assignee.email}" if assignee else "Unassigned",
        )
    return followup


def followup_save_draft(
    *, organization: Organization, followup: FollowUp, actor: User, subject: str, body: str
) -> FollowUp:
    followup.draft_subject, followup.draft_body = subject.strip()[:300], body
    followup.draft_edited = True
    followup.updated_at = now()
    with transaction.atomic():
        followup.save(update_fields=["draft_subject", "draft_body", "draft_edited", "updated_at"])
        _log(followup, ActivityKind.DRAFT, actor=actor, message="Draft edited")
    return followup


def followups_escalate_overdue(*, organization: Organization) -> list[int]:
    """Follow-ups overdue by more than the org's limit escalate to the admins, once each."""
    limit = timedelta(hours=settings_for(organization).escalate_after_hours)
    due = list(
        FollowUp.objects.filter(
            organization=organization,
            status__in=OPEN_STATUSES,
            escalated_at__isnull=True,
            due_at__lt=now() - limit,
        ).select_related("account", "assignee")[:500]
    )
    escalated = []
    for followup in due:
        claimed = FollowUp.objects.filter(pk=followup.pk, escalated_at__isnull=True).update(
            escalated_at=now()
        )
        if claimed:
            escalated.append(followup)
            _log(followup, ActivityKind.ESCALATED, message="Overdue: escalated to the admins")
    if escalated:
        admins = list(
            Membership.objects.filter(organization=organization, role=Role.ADMIN).values_list(
                "user__email", flat=True
            )
        )
        lines = [
            f"- {f.account.name if f.account else 'No account'}: {f.get_playbook_display()}, "
            f"due {f.due_at:%Y-%m-%d %H:%M}, owner {f.assignee.email if f.assignee else 'nobody'}"
            for f in escalated
        ]
        if admins:
            EmailMessage(
                subject=f"{len(escalated)} overdue follow-up(s) escalated",
                body="These follow-ups are overdue beyond the escalation limit:\n\n"
                + "\n".join(lines),
                to=admins,
            ).send()
    return [f.pk for f in escalated]


def digests_send(*, organization: Organization) -> int:
    """Each CS manager's daily digest of due and overdue work. Returns emails sent."""
    soon = now() + timedelta(days=1)
    sent = 0
    for membership in Membership.objects.filter(
        organization=organization, role__in=[Role.CS_MANAGER, Role.ADMIN]
    ).select_related("user"):
        work = list(
            FollowUp.objects.filter(
                organization=organization,
                assignee=membership.user,
                status__in=OPEN_STATUSES,
                due_at__lte=soon,
            )
            .select_related("account")
            .order_by("due_at")[:50]
        )
        if not work:
            continue
        overdue = [f for f in work if f.due_at < now()]
        lines = [
            f"- {'OVERDUE ' if f in overdue else ''}{f.account.name if f.account else 'No account'}"
            f" — {f.get_playbook_display()}, due {f.due_at:%Y-%m-%d %H:%M}"
            for f in work
        ]
        EmailMessage(
            subject=f"Your follow-ups today: {len(work)} due, {len(overdue)} overdue",
            body="\n".join(lines),
            to=[membership.user.email],
        ).send()
        sent += 1
    return sent


# --- Settings and bulk work (the queue and the playbook settings pages) ----------------------


def _worker(organization: Organization, user: User | None, field: str = "assignee") -> None:
    """A CS manager or an admin of this organization, or a ValidationError on `field`."""
    if (
        user is None
        or not Membership.objects.filter(
            organization=organization, user=user, role__in=[Role.CS_MANAGER, Role.ADMIN]
        ).exists()
    ):
        raise ValidationError({field: "Choose a CS manager or an admin of this organization."})


def followups_bulk_assign(
    *, organization: Organization, followup_ids: list[int], actor: User | None, assignee: User
) -> int:
    """Assigns this organization's follow-ups among `followup_ids` to `assignee`; ids of
    another organization are ignored. Returns how many changed hands."""
    _worker(organization, assignee)
    if not followup_ids:
        raise ValidationError({"followups": "Select at least one follow-up."})
    changed = 0
    for followup in FollowUp.objects.filter(
        organization=organization, pk__in=followup_ids[:500]
    ).select_related("assignee"):
        if followup.assignee_id == assignee.pk:
            continue
        followup_assign(
            organization=organization, followup=followup, actor=actor, assignee=assignee
        )
        changed += 1
    return changed


def template_syntax_check(text: str, field: str) -> None:
    from jinja2 import TemplateSyntaxError

    try:
        drafts.ENV.parse(text)
    except TemplateSyntaxError as exc:
        raise ValidationError({field: f"Line {exc.lineno}: {exc.message}"}) from exc


def playbook_template_save(
    *, organization: Organization, playbook: str, subject: str, body: str, sla_hours: int
) -> PlaybookTemplate:
    """The organization's draft template and SLA for one playbook. A template that does not
    parse is refused with its line; drafts already made keep their text."""
    if playbook not in Playbook.values:
        raise ValidationError({"playbook": f"Unknown playbook “{playbook}”."})
    subject, body = subject.strip(), body.strip()
    if not subject:
        raise ValidationError({"subject": "Write a subject."})
    if not body:
        raise ValidationError({"body": "Write the message."})
    if len(subject) > 300:
        raise ValidationError({"subject": "Keep the subject under 300 characters."})
    if not 1 <= int(sla_hours) <= 24 * 30:
        raise ValidationError({"sla_hours": "Between 1 hour and 30 days (720 hours)."})
    template_syntax_check(subject, "subject")
    template_syntax_check(body, "body")
    template, _ = PlaybookTemplate.objects.update_or_create(
        organization=organization,
        playbook=playbook,
        defaults={
            "subject": subject,
            "body": body,
            "sla_hours": int(sla_hours),
            "updated_at": now(),
        },
    )
    return template


def playbook_template_reset(*, organization: Organization, playbook: str) -> bool:
    """Back to the default template and SLA. True when there was something to reset."""
    deleted, _ = PlaybookTemplate.objects.filter(
        organization=organization, playbook=playbook
    ).delete()
    return bool(deleted)


def assignment_rule_save(
    *, organization: Organization, segment, assignee: User, order: int | None = None
) -> AssignmentRule:
    """A rule: accounts without an owner in `segment` go to `assignee`. Added last unless an
    order is given."""
    if segment is None or segment.organization_id != organization.pk:
        raise ValidationError({"segment": "Choose one of this organization's segments."})
    _worker(organization, assignee)
    if order is None:
        last = (
            AssignmentRule.objects.filter(organization=organization)
            .order_by("-order")
            .values_list("order", flat=True)
            .first()
        )
        order = 0 if last is None else last + 1
    return AssignmentRule.objects.create(
        organization=organization, segment=segment, assignee=assignee, order=order
    )


def assignment_rule_delete(*, organization: Organization, rule: AssignmentRule) -> None:
    AssignmentRule.objects.filter(organization=organization, pk=rule.pk).delete()


def member_pause_set(*, organization: Organization, user: User, until=None) -> MemberPause:
    """Pauses a teammate: no new follow-ups go to them until `until` (inclusive) or until
    resumed. Their open follow-ups stay theirs."""
    if user is None or not Membership.objects.filter(organization=organization, user=user).exists():
        raise ValidationError({"user": "Choose a teammate of this organization."})
    if until is not None and until < now().date():
        raise ValidationError({"until": "Choose today or a later date."})
    pause, _ = MemberPause.objects.update_or_create(
        organization=organization,
        user=user,
        defaults={"until": until, "created_at": now()},
    )
    return pause


def member_pause_clear(*, organization: Organization, pause: MemberPause) -> None:
    MemberPause.objects.filter(organization=organization, pk=pause.pk).delete()


def followup_settings_save(
    *, organization: Organization, auto_send_thanks: bool, escalate_after_hours: int
) -> FollowUpSettings:
    """Auto-send covers promoter and passive thank-yous only (see _maybe_auto_send):
    a detractor always gets a person, whatever this says."""
    if not 1 <= int(escalate_after_hours) <= 24 * 30:
        raise ValidationError({"escalate_after_hours": "Between 1 hour and 30 days (720 hours)."})
    found = settings_for(organization)
    found.auto_send_thanks = bool(auto_send_thanks)
    found.escalate_after_hours = int(escalate_after_hours)
    found.save(update_fields=["auto_send_thanks", "escalate_after_hours"])
    return found
