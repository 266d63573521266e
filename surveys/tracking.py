"""What happened to an invitation after it left: the ESP's tracking events (anymail), and the
respondent's own opening, answering and unsubscribing. State only moves forward, by
compare-and-set updates, so a late "delivered" never undoes "answered".

Connect the receiver once, in SurveysConfig.ready():

    from anymail.signals import tracking
    from surveys.tracking import tracking_received
    tracking.connect(tracking_received, dispatch_uid="surveys.tracking_received")
"""

import hashlib
import logging

from django.db import transaction
from django.db.models import Case, F, Value, When
from django.db.models.functions import Coalesce
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled

from accounts import services as account_services
from accounts.models import Contact, SuppressionReason
from responses import webhooks
from surveys.events import invitations_changed_on_commit
from surveys.models import EmailEvent, Invitation, InvitationState, SkipReason

log = logging.getLogger(__name__)

S = InvitationState
# The states an event may move an invitation out of, by the state it moves it to.
ADVANCES_FROM = {
    S.DELIVERED: [S.SENDING, S.SENT],
    S.OPENED: [S.SENDING, S.SENT, S.DELIVERED],
    S.BOUNCED: [S.SENDING, S.SENT, S.DELIVERED, S.OPENED],
    S.FAILED: [S.SENDING, S.SENT],
}

# A sent invitation that moves to one of these no longer counts as delivered (the response
# rate's denominator); delivered and opened change nothing the rate reads.
LOST = {S.BOUNCED, S.FAILED}

BOUNCE_EVENTS = {"bounced", "rejected"}
SUPPRESSING_EVENTS = {
    "bounced": SuppressionReason.BOUNCED,
    "rejected": SuppressionReason.BOUNCED,
    "complained": SuppressionReason.COMPLAINED,
    "unsubscribed": SuppressionReason.UNSUBSCRIBED,
}


# --- Invitation state ----------------------------------------------------------------------


def _advance(invitation: Invitation, state: str, **stamps) -> int:
    """Moves the invitation to `state` if it is in an earlier one; sets each timestamp in
    `stamps` that is still empty. One UPDATE; returns the rows changed."""
    changes = {name: Coalesce(F(name), Value(moment)) for name, moment in stamps.items() if moment}
    changes["state"] = Case(
        When(state__in=ADVANCES_FROM[state], then=Value(state)), default=F("state")
    )
    changed = Invitation.objects.filter(pk=invitation.pk).update(**changes)
    if changed and state in LOST:
        invitations_changed_on_commit(invitation.organization_id, [invitation.pk])
    return changed


def invitation_mark_opened(*, invitation: Invitation, moment=None) -> None:
    _advance(invitation, S.OPENED, opened_at=moment or now())


def invitation_mark_answered(*, invitation: Invitation, response_id: int, moment=None) -> None:
    moment = moment or now()
    Invitation.objects.filter(pk=invitation.pk).update(
        state=S.ANSWERED,
        response_id=response_id,
        answered_at=Coalesce(F("answered_at"), Value(moment)),
        opened_at=Coalesce(F("opened_at"), Value(moment)),
    )
    invitations_changed_on_commit(invitation.organization_id, [invitation.pk])


# --- Suppression ---------------------------------------------------------------------------


def contact_suppress(*, organization, contact: Contact, reason: str, note: str = "") -> bool:
    """Suppresses the contact through the accounts upsert and marks its planned invitations
    suppressed (the dispatcher re-checks suppression before each send as well).

    Idempotent: a suppressed contact stays as it is, except that a spam complaint replaces
    a milder reason. Returns whether anything changed."""
    current = contact.suppressed_reason
    if current and (current == reason or reason != SuppressionReason.COMPLAINED):
        changed = False
    else:
        item = {"suppressed_reason": reason, "suppression_note": note[:500]}
        if contact.external_id:
            item["external_id"] = contact.external_id
        else:
            item["email"] = contact.email
        report = account_services.records_upsert(
            organization=organization, kind="contacts", items=[item]
        )
        result = report.results[0]
        if result.status == "error":
            raise RuntimeError(f"Could not suppress contact {contact.pk}: {result.errors}")
        contact.suppressed_reason = reason
        changed = True
    Invitation.objects.filter(organization=organization, contact=contact, state=S.PLANNED).update(
        state=S.SUPPRESSED, skip_reason=SkipReason.SUPPRESSED
    )
    if changed and reason == SuppressionReason.UNSUBSCRIBED:
        # However the person unsubscribed (the email's link, the ESP, the API): the
        # endpoints that take Delighted's format get its unsubscribe.created.
        contact.refresh_from_db(fields=["suppressed_reason", "suppressed_at"])
        webhooks.delighted_unsubscribe_emit(organization=organization, contact=contact)
    return changed


# --- The ESP's tracking webhook ------------------------------------------------------------


def _event_id(event, esp_name: str) -> str:
    """The ESP's event id, or (for ESPs that send none with some events, such as Postmark's
    deliveries and opens) a digest of what makes the event itself."""
    if event.event_id:
        return str(event.event_id)[:200]
    parts = [
        esp_name,
        event.event_type,
        event.message_id,
        event.recipient,
        event.timestamp.isoformat() if event.timestamp else "",
    ]
    return "sha256:" + hashlib.sha256("|".join(str(p or "") for p in parts).encode()).hexdigest()


def _as_id(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _find_invitation(event) -> Invitation | None:
    """By the ESP's message id, else by the metadata the email carried (a message id is
    stored only after the send returns, and an event may come first)."""
    invitations = Invitation.objects.select_related("contact", "organization")
    if event.message_id:
        found = invitations.filter(message_id=str(event.message_id)).first()
        if found is not None:
            return found
    metadata = event.metadata or {}
    invitation_id = _as_id(metadata.get("invitation_id"))
    organization_id = _as_id(metadata.get("organization_id"))
    if invitation_id is None or organization_id is None:
        return None
    return invitations.filter(pk=invitation_id, organization_id=organization_id).first()


def event_record(*, event, esp_name: str = "") -> EmailEvent | None:
    """Applies one tracking event, once per event id. Returns the stored event, or None for
    a duplicate."""
    event_type = str(event.event_type)
    # A system webhook, authenticated by ANYMAIL_WEBHOOK_SECRET, not by a tenant: it names
    # no organization until the invitation is found, so the lookup and the dedupe row are
    # made outside any tenant scope; everything after runs in the invitation's scope.
    with transaction.atomic(), scopes_disabled():
        invitation = _find_invitation(event)
        stored, created = EmailEvent.objects.get_or_create(
            event_id=_event_id(event, esp_name),
            defaults={
                "organization_id": invitation.organization_id if invitation else None,
                "invitation": invitation,
                "event_type": event_type[:30],
                "message_id": str(event.message_id or "")[:200],
                "recipient": str(event.recipient or "")[:254],
            },
        )
        if not created:
            return None
        if invitation is None:
            log.info("Tracking event %s for no known invitation: ignored.", stored.event_id)
            return stored
        with scope(organization=invitation.organization_id):
            _apply(invitation, event, event_type, esp_name)
    return stored


def _apply(invitation: Invitation, event, event_type: str, esp_name: str) -> None:
    moment = event.timestamp or now()
    if event_type == "delivered":
        _advance(invitation, S.DELIVERED, delivered_at=moment)
    elif event_type in {"opened", "clicked"}:
        _advance(invitation, S.OPENED, opened_at=moment)
    elif event_type in BOUNCE_EVENTS:
        _advance(invitation, S.BOUNCED)
    elif event_type == "failed":
        # The ESP could not send (its API, our template): not the recipient's doing, so
        # the contact is not suppressed.
        _advance(invitation, S.FAILED)
    if event_type in BOUNCE_EVENTS | {"failed"}:
        detail = event.description or event.mta_response or event_type
        Invitation.objects.filter(pk=invitation.pk).update(last_error=str(detail)[:500])
    reason = SUPPRESSING_EVENTS.get(event_type)
    if reason and invitation.contact is not None:
        detail = event.description or event.mta_response or ""
        note = f"{esp_name or 'ESP'} {event_type}" + (f": {detail}" if detail else "")
        contact_suppress(
            organization=invitation.organization,
            contact=invitation.contact,
            reason=reason,
            note=note,
        )


def tracking_received(sender, event, esp_name, **kwargs):
    """The receiver of anymail.signals.tracking."""
    event_record(event=event, esp_name=esp_name)
