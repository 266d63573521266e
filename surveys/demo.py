"""Demo surveys for `seed_demo` (after accounts and responses): one survey in English and
German, two programmes, and a year of drip history behind the demo responses.

Each demo response that came by email or in the app gets the answered invitation it
answered, sent a few hours to two days before it; about 70 % of all invitations stay
unanswered (a ~30 % response rate), a few bounced (those contacts are suppressed through the
tracking service), failed or were skipped with their reason, and the next business days
hold planned ones. contact.last_surveyed_at follows the latest send.

Linking the existing responses: the ingestion service (responses_record) can set
invitation_id, but re-recording 4,000 answers would re-run their analysis, webhooks and Slack
alerts as "updated" — wrong for a backfill of two id columns, and slow. So the demo sets
Response.invitation_id and survey_id itself (one prepared UPDATE per row, executemany; the
ORM's bulk_update costs seconds of CASE compiling), as the scheduler writes
contact.last_surveyed_at directly.
"""

import random
from collections import Counter
from datetime import UTC, datetime, time, timedelta

from django.db import connection
from django.db.models import OuterRef, Subquery
from django.utils.timezone import now

from accounts import services as account_services
from accounts.models import Contact, Segment, SuppressionReason
from responses.models import Response
from surveys import services, tracking
from surveys.eligibility import in_segment
from surveys.models import Invitation, InvitationState, Programme, SkipReason

S = InvitationState
ANSWER_RATE = 0.3
ANSWER_MARK = "demo-answer-"  # message_id of the answered ones: the response id follows
BATCH = 1000
GERMAN = {
    "question": "Wie wahrscheinlich ist es, dass Sie {org} einem Freund oder Kollegen empfehlen?",
    "prompt_detractor": "Das tut uns leid. Was sollten wir als Erstes verbessern?",
    "prompt_passive": "Danke! Was fehlt Ihnen noch zur 10?",
    "prompt_promoter": "Wunderbar! Was schätzen Sie an uns am meisten?",
    "thanks_detractor": "Danke für Ihre Offenheit. Wir melden uns persönlich bei Ihnen.",
    "thanks_passive": "Vielen Dank! Ihr Feedback hilft uns, besser zu werden.",
    "thanks_promoter": "Vielen Dank! Schön, dass Sie uns weiterempfehlen.",
    "email_subject": "Eine kurze Frage von {org}",
    "email_intro": "Hallo {first_name}, wie zufrieden sind Sie mit uns? Ein Klick genügt.",
}
ENTERPRISE_RULES = {
    "match": "all",
    "conditions": [{"field": "plan", "op": "eq", "value": "enterprise"}],
}


def _setup(organization):
    services.survey_settings_save(
        organization=organization,
        fatigue_days=60,
        postal_address="Demo GmbH, Torstraße 1, 10119 Berlin, Germany",
    )
    survey = services.survey_save(
        organization=organization,
        name="Relationship NPS",
        sender_name=f"{organization.name} Customer Success",
        translations={"de": GERMAN},
    )
    segment = Segment.objects.filter(
        organization=organization, name__iexact="Enterprise accounts"
    ).first() or account_services.segment_save(
        organization=organization,
        name="Enterprise accounts",
        rules=ENTERPRISE_RULES,
        description="Accounts on the enterprise plan.",
    )
    quarterly = services.programme_save(
        organization=organization,
        name="Quarterly relationship NPS",
        survey=survey,
        channel_email=True,
        channel_in_app=True,
        every_days=90,
        reminder_after_days=5,
        business_days_only=True,
    )
    pulse = services.programme_save(
        organization=organization,
        name="Enterprise pulse",
        survey=survey,
        segment=segment,
        channel_email=True,
        every_days=60,
        account_cap=2,
        account_cap_days=30,
        min_tenure_days=30,
        triggers=[{"event": "onboarding_completed", "delay_days": 14}],
    )
    return survey, quarterly, pulse


def _in_window(rng, moment: datetime) -> datetime:
    """A send moment on a business day between 9:00 and 17:00 (UTC, near enough)."""
    day = moment.date()
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return datetime.combine(day, time(rng.randint(9, 16), rng.randint(0, 59)), UTC)


def seed_surveys(*, organization, stdout, seed: int = 23) -> None:
    rng = random.Random(seed)
    today = now()
    survey, quarterly, pulse = _setup(organization)
    contacts = list(
        Contact.objects.filter(organization=organization, suppressed_reason="")
        .order_by("pk")
        .values_list("pk", "account_id", "account__lifecycle_stage")
    )
    if not contacts:
        return
    enterprise = set(in_segment(organization, pulse).values_list("pk", flat=True))
    account_of = {pk: account for pk, account, _ in contacts}
    churned = [pk for pk, _, stage in contacts if stage == "churned"]

    def programme_for(contact_id):
        return pulse if contact_id in enterprise and rng.random() < 0.35 else quarterly

    def base(contact_id, programme, planned_for, **fields):
        return Invitation(
            organization=organization,
            programme=programme,
            survey=survey,
            contact_id=contact_id,
            account_id=account_of.get(contact_id),
            planned_for=planned_for,
            created_at=planned_for - timedelta(hours=9),
            **fields,
        )

    # 1. The answered invitations behind the demo responses (email and in-app ones).
    unlinked = Response.objects.filter(
        organization=organization,
        external_id__startswith="demo-",
        invitation_id__isnull=True,
        channel__in=["email", "in_app"],
    )
    responses = list(unlinked.order_by("pk").only("id", "contact_id", "submitted_at", "channel"))
    answered = []
    for response in responses:
        sent = response.submitted_at - timedelta(minutes=rng.randint(90, 2 * 24 * 60))
        email = response.channel == "email"
        answered.append(
            base(
                response.contact_id,
                programme_for(response.contact_id),
                sent,
                channel=response.channel,
                state=S.ANSWERED,
                sent_at=sent,
                delivered_at=sent + timedelta(seconds=rng.randint(2, 90)) if email else None,
                opened_at=response.submitted_at - timedelta(seconds=rng.randint(10, 600)),
                answered_at=response.submitted_at,
                response_id=response.pk,
                message_id=f"{ANSWER_MARK}{response.pk}",
                attempts=1,
            )
        )
    Invitation.objects.bulk_create(answered, batch_size=BATCH)
    # Two id columns for 4,000 rows: one prepared UPDATE run per row (executemany), far
    # cheaper than compiling bulk_update's CASE expressions.
    qn = connection.ops.quote_name
    link_sql = (  # identifiers are quoted constants; the values are parameters
        f"UPDATE {qn(Response._meta.db_table)} SET {qn('invitation_id')} = %s, "  # noqa: S608
        f"{qn('survey_id')} = %s WHERE {qn('id')} = %s AND {qn('organization_id')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.executemany(
            link_sql,
            [
                (invitation.pk, survey.pk, response.pk, organization.pk)
                for response, invitation in zip(responses, answered, strict=True)
            ],
        )

    # 2. The unanswered ones: ~70 % of all sends, with bounces and failures among them.
    unanswered, bounced_contacts = [], []
    for _ in range(round(len(answered) * (1 - ANSWER_RATE) / ANSWER_RATE)):
        contact_id = rng.choice(contacts)[0]
        sent = _in_window(rng, today - timedelta(days=rng.randint(1, 364), hours=rng.randint(0, 8)))
        roll = rng.random()
        fields = {"channel": "email", "sent_at": sent, "attempts": 1}
        if roll < 0.025:
            fields.update(state=S.BOUNCED, message_id=f"demo-msg-b{len(unanswered)}")
            bounced_contacts.append(contact_id)
        elif roll < 0.035:
            fields.update(
                state=S.FAILED, sent_at=None, attempts=3, last_error="SMTPServerDisconnected"
            )
        else:
            opened = rng.random() < 0.35
            fields.update(
                state=S.OPENED if opened else S.DELIVERED if rng.random() < 0.9 else S.SENT,
                delivered_at=sent + timedelta(seconds=rng.randint(2, 90)),
                opened_at=sent + timedelta(hours=rng.randint(1, 72)) if opened else None,
                reminder_sent_at=sent + timedelta(days=5) if rng.random() < 0.6 else None,
                message_id=f"demo-msg-u{len(unanswered)}",
            )
        unanswered.append(base(contact_id, programme_for(contact_id), sent, **fields))

    # 3. Skips with their reasons, as the planning ticks recorded them.
    skipped = []
    reasons = [SkipReason.FATIGUED] * 6 + [SkipReason.ACCOUNT_CAP] * 2 + [SkipReason.TENURE]
    for _ in range(len(answered) // 12):
        contact_id = rng.choice(contacts)[0]
        reason = rng.choice(reasons)
        programme = pulse if reason != SkipReason.FATIGUED else programme_for(contact_id)
        moment = _in_window(rng, today - timedelta(days=rng.randint(1, 364)))
        skipped.append(
            base(
                contact_id, programme, moment, channel="email", state=S.SKIPPED, skip_reason=reason
            )
        )
    for contact_id in churned[:60]:
        moment = _in_window(rng, today - timedelta(days=rng.randint(1, 100)))
        skipped.append(
            base(
                contact_id,
                quarterly,
                moment,
                channel="email",
                state=S.SKIPPED,
                skip_reason=SkipReason.CHURNED,
            )
        )
    Invitation.objects.bulk_create(unanswered + skipped, batch_size=BATCH)

    # 4. Bounced addresses are suppressed (the tracking webhook would have done it), and
    # their later sends were held back.
    suppressed = []
    for contact_id in sorted(set(bounced_contacts))[:40]:
        contact = Contact.objects.get(organization=organization, pk=contact_id)
        tracking.contact_suppress(
            organization=organization,
            contact=contact,
            reason=SuppressionReason.BOUNCED,
            note="Hard bounce (demo).",
        )
        moment = _in_window(rng, today - timedelta(days=rng.randint(1, 20)))
        suppressed.append(
            base(
                contact_id,
                quarterly,
                moment,
                channel="email",
                state=S.SUPPRESSED,
                skip_reason=SkipReason.SUPPRESSED,
            )
        )
    Invitation.objects.bulk_create(suppressed)

    # 5. contact.last_surveyed_at: the latest send of each contact, in one UPDATE (the
    # (organization, contact, sent_at) index answers each subquery).
    latest: dict[int, datetime] = {}
    for invitation in answered + unanswered:
        if invitation.sent_at and invitation.state != S.FAILED:
            latest[invitation.contact_id] = max(
                latest.get(invitation.contact_id, invitation.sent_at), invitation.sent_at
            )
    Contact.objects.filter(organization=organization, pk__in=list(latest)).update(
        last_surveyed_at=Subquery(
            Invitation.objects.filter(
                organization=organization, contact=OuterRef("pk"), sent_at__isnull=False
            )
            .exclude(state=S.FAILED)
            .order_by("-sent_at")
            .values("sent_at")[:1]
        )
    )

    # 6. The drip's next business days: contacts rested longest, one open invitation each.
    quiet = sorted(
        (pk for pk, _, stage in contacts if stage != "churned" and pk not in set(bounced_contacts)),
        key=lambda pk: (latest.get(pk) is not None, latest.get(pk) or today, pk),
    )
    planned, day, offset = [], today.date(), 0
    per_day = max(1, len(contacts) // 90)
    while len(planned) < per_day * 3 and offset < 10:
        offset += 1
        day = today.date() + timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        for slot in range(per_day):
            if len(planned) >= len(quiet):
                break
            contact_id = quiet[len(planned)]
            minutes = int(9 * 60 + (slot + 0.5) * 8 * 60 / per_day)
            moment = datetime.combine(day, time(minutes // 60, minutes % 60), UTC)
            planned.append(base(contact_id, quarterly, moment, channel="email", state=S.PLANNED))
    for invitation in planned:
        invitation.created_at = today
    Invitation.objects.bulk_create(planned)

    states = Counter(i.state for i in answered + unanswered + skipped + suppressed + planned)
    stdout.write(
        f"  1 survey (en, de), {Programme.objects.filter(organization=organization).count()} "
        f"programmes, {sum(states.values())} invitations over twelve months "
        f"({states[S.ANSWERED]} answered, {states[S.SKIPPED]} skipped, "
        f"{len(bounced_contacts)} bounced, {states[S.PLANNED]} planned)"
    )
