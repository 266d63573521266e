"""Writes behind the Delighted-compatible API. Each one translates Delighted's request into
the product's own services, which own the rules: accounts.services.records_upsert (people,
accounts, suppression state), responses.services (answers), surveys.scheduler (planning a
survey), surveys.tracking.contact_suppress (unsubscribes) and accounts.services.contact_erase
(GDPR). Nothing here classifies, deduplicates or decides eligibility itself."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.timezone import now

from accounts import cleaning
from accounts import services as account_services
from accounts.models import Account, Contact, SuppressionReason
from compat.models import ACCOUNT_TARGETS, AutopilotMembership, CompatSettings
from nps_platform.models import Organization
from nps_platform.params import whole_number
from responses import services as response_services
from responses.models import Channel, Response
from surveys import scheduler, tracking
from surveys.models import Invitation, InvitationState, Programme

MAX_DELAY_SECONDS = 366 * 24 * 3600
TRIGGER = "delighted_api"
CANCELLED_NOTE = "Cancelled through the Delighted-compatible API."
_PHONE = re.compile(r"^\+[1-9][0-9]{6,14}$")


class Unprocessable(ValidationError):
    """A request Delighted would answer with 422: errors by field, in its parameter names."""


def _fail(field: str, message: str):
    raise Unprocessable({field: [message]})


# --- Settings ------------------------------------------------------------------------------


def compat_settings_for(organization: Organization) -> CompatSettings:
    found = CompatSettings.objects.filter(organization=organization).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return CompatSettings.objects.create(organization=organization)
    except IntegrityError:  # made a moment ago by a concurrent request
        return CompatSettings.objects.get(organization=organization)


def email_programme_for(organization: Organization) -> Programme | None:
    """The programme that plays Delighted's email Autopilot and sends the surveys `POST
    people` schedules: the one chosen in the settings, else the oldest active email one."""
    chosen = compat_settings_for(organization).email_programme
    if chosen is not None and chosen.is_active:
        return chosen
    return (
        Programme.objects.filter(organization=organization, is_active=True, channel_email=True)
        .order_by("created_at", "id")
        .first()
    )


def compat_settings_save(
    *, organization: Organization, mapping_text: str, email_programme: Programme | None
) -> CompatSettings:
    """Saves the email programme and the mapping, given as lines "Property name = target";
    raises ValidationError naming the lines that are not."""
    if email_programme is not None and email_programme.organization_id != organization.pk:
        raise ValidationError("The programme belongs to another organization.")
    text = mapping_text
    mapping, errors = {}, []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, target = line.partition("=")
        name, target = normalize_property(name), target.strip()
        if not sep or not name:
            errors.append(f"Line {number}: write “Property name = target”.")
        elif target not in ACCOUNT_TARGETS and target != "contact":
            errors.append(
                f"Line {number}: “{target}” is not a target; use one of "
                f"{', '.join(ACCOUNT_TARGETS)} or contact."
            )
        else:
            mapping[name] = target
    if errors:
        raise ValidationError(errors)
    settings = compat_settings_for(organization)
    settings.property_mapping = mapping
    settings.email_programme = email_programme
    settings.save(update_fields=["property_mapping", "email_programme"])
    return settings


def normalize_property(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


# --- People --------------------------------------------------------------------------------


def _epoch(value, field: str) -> datetime:
    if isinstance(value, bool):
        _fail(field, f"{field} must be a Unix timestamp (seconds).")
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        _fail(field, f"{field} must be a Unix timestamp (seconds), not {str(value)[:40]!r}.")
    if not 0 <= number < 32503680000:  # before the year 3000
        _fail(field, f"{field} is out of range.")
    return datetime.fromtimestamp(number, tz=UTC)


def epoch_param(value, field: str) -> datetime:
    return _epoch(value, field)


def _boolean(value, field: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no"}:
        return False
    _fail(field, f"{field} must be true or false.")
    return False


def _email(value, field: str) -> str:
    try:
        return cleaning.email(value)
    except ValueError as exc:
        _fail(field, str(exc))
    return ""


def _phone(value, field: str) -> str:
    phone = str(value).strip()
    if not _PHONE.match(phone):
        _fail(field, f"{field} must be in E.164 format, such as +17132746524.")
    return phone


def person_find(organization: Organization, identifier: str) -> Contact | None:
    """A person by Delighted's identifier: an id, "id:…", "email:…" or "phone_number:…"."""
    kind, sep, value = identifier.partition(":")
    if not sep:
        kind, value = "id", identifier
    contacts = Contact.objects.filter(organization=organization)
    if kind == "id":
        pk = whole_number(value)
        if pk is None:
            return None
        return contacts.filter(pk=pk).first()
    if kind == "email":
        try:
            return contacts.filter(email=cleaning.email(value)).first()
        except ValueError:
            return None
    if kind == "phone_number":
        return contacts.filter(phone=value.strip()).order_by("id").first()
    return None


def _split_properties(organization: Organization, properties: dict, contact) -> tuple[dict, dict]:
    """(account fields, contact properties) by the organization's mapping. Account fields
    without an account to land on (no company named, none known for the person) stay in
    the contact's properties."""
    mapping = compat_settings_for(organization).mapping()
    account, rest, names = {}, {}, {}
    for name, value in properties.items():
        target = mapping.get(normalize_property(name))
        if target in ACCOUNT_TARGETS and not cleaning.is_blank(value):
            account[target], names[target] = value, str(name)
        else:
            rest[str(name)] = value
    if account and not account.get("account_name") and not account.get("account_external_id"):
        if contact is not None and contact.account_id:
            account["account_external_id"] = contact.account.external_id
        else:
            rest.update({names[target]: value for target, value in account.items()})
            account = {}
    return account, rest


def _account_for(organization: Organization, fields: dict) -> str | None:
    """Upserts the account the properties name; returns its external_id."""
    if not fields.get("account_name") and not fields.get("account_external_id"):
        return None
    external_id = str(fields.get("account_external_id") or "").strip()
    name = str(fields.get("account_name") or "").strip()
    if not external_id:
        existing = (
            Account.objects.filter(organization=organization, name__iexact=name)
            .order_by("id")
            .values_list("external_id", flat=True)
            .first()
        )
        external_id = existing or name
    item = {"external_id": external_id}
    if name:
        item["name"] = name
    elif not Account.objects.filter(organization=organization, external_id=external_id).exists():
        item["name"] = external_id
    for target in ("plan", "arr", "industry", "size"):
        if target in fields:
            item[target] = fields[target]
    report = account_services.records_upsert(
        organization=organization, kind="accounts", items=[item]
    )
    result = report.results[0]
    if result.status == "error":
        messages = [f"{k}: {' '.join(v)}" for k, v in result.errors.items()]
        _fail("properties", "The account in the properties is not valid: " + " ".join(messages))
    return external_id


@dataclass
class PersonResult:
    contact: Contact
    created: bool
    invitation: Invitation | None = None


ALLOWED_PERSON_FIELDS = {
    "id",
    "email",
    "phone_number",
    "name",
    "properties",
    "delay",
    "send",
    "last_sent_at",
    "email_update",
    "phone_number_update",
    "locale",
    "channel",
}


def person_upsert(*, organization: Organization, data: dict, plan: bool = True) -> PersonResult:
    """Creates or updates a person (a contact, and the account its properties name), and
    unless `send` is false schedules a survey `delay` seconds from now through the email
    programme (inside its send window, if the contact is eligible then)."""
    if not isinstance(data, dict):
        _fail("base", "Send a JSON object.")
    channel = str(data.get("channel") or "email").strip().lower()
    if channel not in {"email", "sms"}:
        _fail("channel", "channel must be email or sms.")
    send = _boolean(data["send"], "send") if "send" in data else True
    if channel == "sms" and send:
        _fail("channel", "SMS surveys are not supported here; send=false stores the person.")
    delay = 0
    if not cleaning.is_blank(data.get("delay")):
        try:
            delay = int(str(data["delay"]).strip())
        except ValueError:
            _fail("delay", "delay must be a whole number of seconds.")
        if not 0 <= delay <= MAX_DELAY_SECONDS:
            _fail("delay", f"delay must be from 0 to {MAX_DELAY_SECONDS} seconds.")
    properties = data.get("properties") or {}
    if not isinstance(properties, dict):
        _fail("properties", "properties must be an object of names and values.")

    email = _email(data["email"], "email") if not cleaning.is_blank(data.get("email")) else None
    phone = (
        _phone(data["phone_number"], "phone_number")
        if not cleaning.is_blank(data.get("phone_number"))
        else None
    )
    contact = None
    if not cleaning.is_blank(data.get("id")):
        contact = person_find(organization, str(data["id"]))
        if contact is None:
            _fail("id", "No person has this id.")
    if contact is None and email:
        contact = person_find(organization, f"email:{email}")
    if contact is None and phone and not email:
        contact = person_find(organization, f"phone_number:{phone}")
    if contact is None and not email and not phone:
        _fail("email", "Send email or phone_number to identify the person.")

    with transaction.atomic():
        account_fields, contact_properties = _split_properties(organization, properties, contact)
        account_external_id = _account_for(organization, account_fields)
        item: dict = {}
        if contact is not None and contact.external_id:
            item["external_id"] = contact.external_id
        elif contact is not None and contact.email:
            item["email"] = contact.email
        elif email:
            item["email"] = email
        else:
            item["external_id"] = f"tel:{phone}"
        if not cleaning.is_blank(data.get("email_update")):
            new_email = _email(data["email_update"], "email_update")
            if contact is not None and not contact.external_id and new_email != contact.email:
                _fail(
                    "email_update",
                    "This person is known by email only, so the email cannot change here; "
                    "give the contact an external id first (accounts API).",
                )
            item["email"] = new_email
        elif email and contact is not None and contact.external_id and contact.email != email:
            item["email"] = email
        new_phone = data.get("phone_number_update")
        if not cleaning.is_blank(new_phone):
            item["phone"] = _phone(new_phone, "phone_number_update")
        elif phone:
            item["phone"] = phone
        if not cleaning.is_blank(data.get("name")):
            item["name"] = data["name"]
        if not cleaning.is_blank(data.get("locale")):
            item["locale"] = data["locale"]
        if contact_properties:
            item["properties"] = contact_properties
        if account_external_id:
            item["account_external_id"] = account_external_id
        report = account_services.records_upsert(
            organization=organization, kind="contacts", items=[item]
        )
        result = report.results[0]
        if result.status == "error":
            names = {"phone": "phone_number", "account_external_id": "properties"}
            raise Unprocessable({names.get(k, k): [" ".join(v)] for k, v in result.errors.items()})
        contact = Contact.objects.get(organization=organization, pk=result.id)
        if not cleaning.is_blank(data.get("last_sent_at")):
            moment = _epoch(data["last_sent_at"], "last_sent_at")
            Contact.objects.filter(organization=organization, pk=contact.pk).update(
                last_surveyed_at=moment
            )
            contact.last_surveyed_at = moment
        invitation = None
        if send and plan:
            invitation = survey_schedule(
                organization=organization, contact=contact, at=now() + timedelta(seconds=delay)
            )
    return PersonResult(contact=contact, created=result.status == "created", invitation=invitation)


def survey_schedule(
    *, organization: Organization, contact: Contact, at: datetime, programme=None
) -> Invitation | None:
    """Plans the email programme's survey for the contact at `at` (moved into the send
    window), through the scheduler's own rule for triggered sends: eligibility, fatigue and
    one open invitation per programme hold as for any other trigger. None when nothing was
    planned (no email programme, or the contact is not eligible)."""
    programme = programme or email_programme_for(organization)
    if programme is None:
        return None
    # surveys.scheduler plans triggered sends in one function; it is the rule to reuse.
    _, invitation = scheduler.invitation_plan_triggered(
        organization=organization, programme=programme, contact=contact, name=TRIGGER, moment=at
    )
    return invitation


def pending_surveys_cancel(*, organization: Organization, contact: Contact, programme=None) -> int:
    """Cancels the contact's planned invitations (all programmes, or one). surveys/ has no
    cancel service, so the planned rows are closed the way a skip closes them."""
    planned = Invitation.objects.filter(
        organization=organization, contact=contact, state=InvitationState.PLANNED
    )
    if programme is not None:
        planned = planned.filter(programme=programme)
    return planned.update(state=InvitationState.SKIPPED, last_error=CANCELLED_NOTE)


def person_erase(*, organization: Organization, contact: Contact, erased_by: str) -> None:
    account_services.contact_erase(organization=organization, contact=contact, erased_by=erased_by)


# --- Survey responses ----------------------------------------------------------------------

RESPONSE_FIELD_NAMES = {
    "contact_id": "person",
    "email": "person",
    "submitted_at": "created_at",
    "properties": "person_properties",
}


def _record(organization: Organization, item: dict) -> Response:
    try:
        response, _ = response_services.response_record(
            organization=organization, channel=Channel.API, **item
        )
    except ValidationError as exc:
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"base": exc.messages}
        raise Unprocessable(
            {RESPONSE_FIELD_NAMES.get(k, k): list(v) for k, v in detail.items()}
        ) from None
    return response


def survey_response_create(*, organization: Organization, data: dict) -> Response:
    """POST survey_responses: through responses_record, like every other channel."""
    if not isinstance(data, dict):
        _fail("base", "Send a JSON object.")
    person = data.get("person")
    if cleaning.is_blank(person):
        _fail("person", "person is required: the id of the person responding.")
    person = whole_number(str(person))
    if person is None:
        _fail("person", "person must be the id of a person.")
    if not Contact.objects.filter(organization=organization, pk=person).exists():
        _fail("person", "No person has this id.")
    if "score" not in data or data["score"] in (None, ""):
        _fail("score", "score is required: a whole number from 0 to 10.")
    item = {"contact_id": int(person), "score": data["score"]}
    if not cleaning.is_blank(data.get("comment")):
        item["comment"] = data["comment"]
    if data.get("person_properties") not in (None, ""):
        if not isinstance(data["person_properties"], dict):
            _fail("person_properties", "person_properties must be an object.")
        item["properties"] = data["person_properties"]
    if not cleaning.is_blank(data.get("created_at")):
        item["submitted_at"] = _epoch(data["created_at"], "created_at").isoformat()
    return _record(organization, item)


def survey_response_change(*, organization: Organization, response: Response, data: dict):
    """PUT survey_responses/{id}. Delighted's clients send the whole object back, so only
    the values that differ count. Comment and tags change through response_update; a new
    score or person_properties through responses_record, which finds the response by its
    external id or invitation (a response with neither cannot take a new score: to the
    product a new answer is a new response)."""
    if not isinstance(data, dict):
        _fail("base", "Send a JSON object.")
    edits = {}
    if "comment" in data and (data["comment"] or "") != (response.comment or ""):
        edits["comment"] = data["comment"] or ""
    if "tags" in data:
        tags = data["tags"] if data["tags"] is not None else []
        if not isinstance(tags, list | str):
            _fail("tags", "tags must be a list of text tags.")
        as_list = tags.split(",") if isinstance(tags, str) else tags
        normalized = sorted({str(t).strip().lower()[:50] for t in as_list if str(t).strip()})
        if normalized != sorted(response.tags or []):
            edits["tags"] = tags
    record = {}
    score = data.get("score")
    if score is not None and str(score).strip() != str(response.score):
        record["score"] = score
    properties = data.get("person_properties")
    if properties is not None:
        if not isinstance(properties, dict):
            _fail("person_properties", "person_properties must be an object.")
        if {**(response.properties or {}), **properties} != (response.properties or {}):
            record["properties"] = properties
    with transaction.atomic():
        if edits:
            try:
                response = response_services.response_update(
                    organization=organization, response=response, changes=edits
                )
            except ValidationError as exc:
                raise Unprocessable(exc.message_dict) from None
        if record:
            if response.contact_id is None:
                _fail("person", "The person behind this response was erased.")
            if response.external_id:
                record["external_id"] = response.external_id
            elif response.invitation_id:
                record["invitation_id"] = response.invitation_id
            else:
                field = "score" if "score" in record else "person_properties"
                _fail(
                    field,
                    f"{field} cannot change on a response recorded without an external id "
                    "or invitation; record the new answer as a new response.",
                )
            record.setdefault("score", response.score)
            record["contact_id"] = response.contact_id
            response = _record(organization, record)
    return response


# --- Unsubscribes and Autopilot ------------------------------------------------------------


def unsubscribe(*, organization: Organization, email_value) -> Contact:
    """POST unsubscribes: the person is suppressed (created first when unknown, so they are
    never surveyed), their planned invitations too, and unsubscribe.created goes out."""
    if cleaning.is_blank(email_value):
        _fail("person_email", "person_email is required.")
    email = _email(email_value, "person_email")
    with transaction.atomic():
        contact = person_find(organization, f"email:{email}")
        if contact is None:
            report = account_services.records_upsert(
                organization=organization, kind="contacts", items=[{"email": email}]
            )
            if report.results[0].status == "error":
                _fail("person_email", " ".join(sum(report.results[0].errors.values(), [])))
            contact = Contact.objects.get(organization=organization, pk=report.results[0].id)
        tracking.contact_suppress(
            organization=organization,
            contact=contact,
            reason=SuppressionReason.UNSUBSCRIBED,
            note="Unsubscribed through the Delighted-compatible API.",
        )
        contact.refresh_from_db()  # the suppression also sent unsubscribe.created
    return contact


def autopilot_enrol(*, organization: Organization, data: dict) -> tuple[AutopilotMembership, dict]:
    """POST autopilot/email/memberships: upserts the person, enrols them in the email
    programme and plans their first survey now (inside the send window, if eligible)."""
    programme = email_programme_for(organization)
    if programme is None:
        _fail("base", "There is no active email programme to add people to; create one first.")
    if not isinstance(data, dict):
        _fail("base", "Send a JSON object.")
    person = {
        "id": data.get("person_id"),
        "email": data.get("person_email"),
        "phone_number": data.get("person_phone_number"),
        "name": data.get("person_name"),
        "properties": data.get("properties"),
        "send": False,
    }
    if cleaning.is_blank(person["email"]) and cleaning.is_blank(person["id"]):
        _fail("person_email", "person_email or person_id is required.")
    with transaction.atomic():
        result = person_upsert(
            organization=organization, data={k: v for k, v in person.items() if v is not None}
        )
        membership, _ = AutopilotMembership.objects.get_or_create(
            organization=organization, programme=programme, contact=result.contact
        )
        survey_schedule(
            organization=organization, contact=result.contact, at=now(), programme=programme
        )
    return membership, data.get("properties") or {}


def autopilot_remove(*, organization: Organization, data: dict) -> Contact:
    """DELETE autopilot/email/memberships: ends the enrolment and cancels the programme's
    planned survey for the person."""
    programme = email_programme_for(organization)
    data = data if isinstance(data, dict) else {}
    contact = None
    for field, kind in (
        ("person_id", "id"),
        ("person_email", "email"),
        ("person_phone_number", "phone_number"),
    ):
        if not cleaning.is_blank(data.get(field)):
            contact = person_find(organization, f"{kind}:{data[field]}")
            break
    else:
        _fail("person_email", "person_email, person_id or person_phone_number is required.")
    if contact is None or programme is None:
        return None
    with transaction.atomic():
        AutopilotMembership.objects.filter(
            organization=organization, programme=programme, contact=contact
        ).delete()
        pending_surveys_cancel(organization=organization, contact=contact, programme=programme)
    return contact
