"""Writes for responses. `responses_record` is the only way a response is created or
updated: the API, the public survey page, CSV imports and the Delighted-compatible API all
call it (one item or up to 1,000)."""

import functools
import hashlib
import json
import operator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction
from django.db.models import JSONField, Q
from django.db.models.base import ModelState
from django.utils.timezone import now
from psycopg import ClientCursor
from psycopg.types.json import Jsonb

from accounts import cleaning
from accounts import services as account_services
from accounts.models import Account, Contact
from nps_platform.models import Organization
from nps_platform.params import whole_number
from nps_platform.sql import pg_array
from responses import analysis, references
from responses.classification import classify
from responses.models import Channel, Response, Theme
from responses.tasks import analyze_responses, announce_recorded_on_commit

MAX_BATCH = 1000
_CHANNELS = frozenset(Channel.values)
MAX_COMMENT = 10_000
ITEM_FIELDS = {
    "score",
    "comment",
    "email",
    "contact_external_id",
    "contact_id",
    "contact_name",
    "account_external_id",
    "account_name",
    "submitted_at",
    "external_id",
    "properties",
    "tags",
    "survey_id",
    "invitation_id",
}


class _PreparingCursor(psycopg.Cursor):
    """Binds parameters on the server and prepares each statement the first time it runs
    on a connection: later runs skip PostgreSQL's parsing and planning."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=binary)


def prepared_cursor():
    """A cursor (PostgreSQL only) for the few fixed statements every answer runs, with
    Django's wrapper (query logging, database errors as django.db errors). Use only
    statements whose text stays the same from call to call, with values as parameters."""
    # What connection.cursor() does, with our cursor class instead of the default one.
    db = connections[DEFAULT_DB_ALIAS]
    db.close_if_health_check_failed()
    db.ensure_connection()
    with db.wrap_database_errors:
        return db._prepare_cursor(_PreparingCursor(db.connection))


@dataclass
class ItemResult:
    index: int
    status: str  # "created" | "updated" | "unchanged" (only with skip_unchanged) | "error"
    response: Response | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        data = {"index": self.index, "status": self.status}
        if self.response is not None:
            data["id"] = self.response.pk
        if self.errors:
            data["errors"] = self.errors
        return data


@dataclass
class RecordReport:
    results: list[ItemResult]

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    def as_dict(self) -> dict:
        return {
            "created": self.count("created"),
            "updated": self.count("updated"),
            "errors": self.count("error"),
            "results": [r.as_dict() for r in self.results],
        }


def _score(value) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number from 0 to 10.")
    if isinstance(value, str) and whole_number(value) is not None:
        value = whole_number(value)
    if not isinstance(value, int):
        raise ValueError(f"must be a whole number from 0 to 10, not {value!r}.")
    if not 0 <= value <= 10:
        raise ValueError(f"must be from 0 to 10, not {value}.")
    return value


def _tags(value) -> list[str]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ValueError("must be a list of text tags.")
    if any("\x00" in t for t in value):
        raise ValueError("contains a NUL character, which text cannot hold.")
    tags = sorted({t.strip().lower()[:50] for t in value if t.strip()})
    if len(tags) > 20:
        raise ValueError("takes at most 20 tags.")
    return tags


def _id(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be an id.")
    try:
        number = int(value)
    except ValueError:
        raise ValueError("must be an id.") from None
    if not 1 <= number < 2**63:
        raise ValueError("must be a positive id.")
    return number


_comment_text = cleaning.text(MAX_COMMENT)


def _comment(value) -> str:
    return "" if cleaning.is_blank(value) else _comment_text(value)


CLEANERS = {
    "score": _score,
    "comment": _comment,
    "email": cleaning.email,
    "contact_external_id": cleaning.text(200),
    "contact_id": _id,
    "contact_name": cleaning.text(200),
    "account_external_id": cleaning.text(200),
    "account_name": cleaning.text(300),
    "submitted_at": cleaning.a_datetime,
    "external_id": cleaning.text(200),
    "properties": cleaning.json_object,
    "tags": _tags,
    "survey_id": _id,
    "invitation_id": _id,
}


def clean_item(item) -> tuple[dict, dict]:
    """(cleaned fields, errors by field) for one raw response."""
    if not isinstance(item, dict):
        return {}, {"non_field_errors": ["Each response must be an object."]}
    data, errors = {}, {}
    for name, value in item.items():
        cleaner = CLEANERS.get(name)
        if cleaner is None:
            errors[name] = [f"Unknown field. Known fields: {', '.join(sorted(ITEM_FIELDS))}."]
            continue
        if name != "score" and cleaning.is_blank(value):
            continue
        try:
            data[name] = cleaner(value)
        except ValueError as exc:
            errors[name] = [f"{name} {exc}"]
    if "score" not in item or item.get("score") in (None, ""):
        errors["score"] = ["score is required: a whole number from 0 to 10."]
    if not errors and not (
        data.get("email") or data.get("contact_external_id") or data.get("contact_id")
    ):
        errors["email"] = ["Identify the person with email or contact_external_id."]
    if "submitted_at" in data and data["submitted_at"] > now():
        errors["submitted_at"] = ["submitted_at is in the future."]
    return data, errors


def _contact_key(data: dict):
    if data.get("contact_id"):
        return ("id", data["contact_id"])
    if data.get("contact_external_id"):
        return ("external_id", data["contact_external_id"])
    return ("email", data["email"])


_CONTACT_ACCOUNT = Contact._meta.get_field("account")


def _find_contacts(organization, rows: list[dict]) -> dict:
    """The organization's contacts the rows name, by ("id" | "external_id" | "email", value).
    A single answer gets its contact's account too: it is shown with it."""
    ids = {d["contact_id"] for d in rows if d.get("contact_id")}
    externals = {d["contact_external_id"] for d in rows if d.get("contact_external_id")}
    emails = {d["email"] for d in rows if d.get("email")}
    # Only the lookups the batch uses.
    lookups = tuple(
        (name, sorted(values))
        for name, values in (("id", ids), ("external_id", externals), ("email", emails))
        if values
    )
    if not lookups:
        return {}
    with_account = len(rows) == 1
    found = {}
    for contact in _contacts_named(organization, lookups, with_account):
        found[("id", contact.pk)] = contact
        if contact.external_id:
            found[("external_id", contact.external_id)] = contact
        if contact.email:
            found[("email", contact.email)] = contact
    return found


def _contacts_named(organization, lookups: tuple, with_account: bool) -> list[Contact]:
    if connection.vendor != "postgresql":
        query = functools.reduce(
            operator.or_, [Q(**{f"{name}__in": values}) for name, values in lookups]
        )
        contacts = Contact.objects.filter(query, organization=organization).order_by()
        return list(contacts.select_related("account") if with_account else contacts)
    # One statement, prepared once per connection and shape (which lookups, with or without
    # the account): building it through the ORM for every answer cost more CPU than the rest
    # of recording it. The organization is a parameter like in the ORM's scoped query.
    # One value is matched with "=", which PostgreSQL plans once for all; a list with ANY.
    shape = tuple((name, len(values) == 1) for name, values in lookups)
    params = [values[0] if len(values) == 1 else pg_array(values) for _, values in lookups]
    with prepared_cursor() as cursor:
        cursor.execute(_contacts_sql(shape, with_account), [organization.pk, *params])
        rows = cursor.fetchall()
    if not with_account:
        # A batch needs each contact's keys and account id only; the other fields are
        # deferred (read if ever used), as with QuerySet.only().
        alias = connection.alias
        return [
            _bare(Contact, dict(zip(_CONTACT_KEYS, row, strict=True)), db=alias) for row in rows
        ]
    contact_count = len(Contact._meta.concrete_fields)
    contacts = []
    for row in rows:
        contact = _from_row(Contact, row[:contact_count])
        account_row = row[contact_count:]
        account = _from_row(Account, account_row) if account_row[0] is not None else None
        _CONTACT_ACCOUNT.set_cached_value(contact, account)
        contacts.append(contact)
    return contacts


_CONTACT_KEYS = ("id", "account_id", "external_id", "email")


@functools.cache
def _converters(model) -> list[tuple[int, object, object]]:
    """(position, field, converter) for each concrete field whose database value needs one
    (JSON arrives as text), in the order the queries select them."""
    return [
        (position, field, converter)
        for position, field in enumerate(model._meta.concrete_fields)
        for converter in field.get_db_converters(connection)
    ]


def _from_row(model, values):
    """A model instance from its concrete fields' database values, as the ORM builds it."""
    converters = _converters(model)
    if converters:
        values = list(values)
        for position, field, converter in converters:
            values[position] = converter(values[position], field, connection)
    return _bare(model, dict(zip(_attnames(model), values, strict=True)), db=connection.alias)


@functools.cache
def _attnames(model) -> tuple[str, ...]:
    return tuple(f.attname for f in model._meta.concrete_fields)


@functools.cache
def _contacts_sql(lookups: tuple[tuple[str, bool], ...], with_account: bool) -> str:
    quote = connection.ops.quote_name
    contact_table, account_table = Contact._meta.db_table, Account._meta.db_table
    columns = [f"c.{quote(f.column)}" for f in Contact._meta.concrete_fields]
    joined = ""
    if not with_account:
        columns = [f"c.{quote(Contact._meta.get_field(name).column)}" for name in _CONTACT_KEYS]
    else:
        columns += [f"a.{quote(f.column)}" for f in Account._meta.concrete_fields]
        joined = f"LEFT JOIN {quote(account_table)} a ON a.id = c.account_id"
    types = {"id": "bigint", "external_id": "text", "email": "text"}
    matches = " OR ".join(
        f"c.{quote(name)} = %s::{types[name]}"
        if single
        else f"c.{quote(name)} = ANY(%s::{types[name]}[])"
        for name, single in lookups
    )
    # Names from the models, values as parameters.
    return (
        f"SELECT {', '.join(columns)} FROM {quote(contact_table)} c {joined} "  # noqa: S608
        f"WHERE c.organization_id = %s AND ({matches})"
    )


def _create_missing_contacts(organization, rows: list[tuple[int, dict]]) -> dict[int, list]:
    """Creates the accounts and contacts the batch names but we do not know yet, through the
    accounts upsert (its rules, its validation). Returns errors by item index."""
    errors: dict[int, list] = {}
    account_items, seen_accounts = [], set()
    for _, data in rows:
        external = data.get("account_external_id")
        if external and external not in seen_accounts:
            seen_accounts.add(external)
            account_items.append({"external_id": external, "name": data.get("account_name")})
    if account_items:
        known = set(
            Account.objects.filter(
                organization=organization, external_id__in=seen_accounts
            ).values_list("external_id", flat=True)
        )
        new_accounts = [
            {"external_id": a["external_id"], "name": a["name"] or a["external_id"]}
            for a in account_items
            if a["external_id"] not in known
        ]
        if new_accounts:
            account_services.records_upsert(
                organization=organization, kind="accounts", items=new_accounts
            )
    contact_items, owners = [], []
    for index, data in rows:
        item = {"email": data.get("email"), "external_id": data.get("contact_external_id")}
        if data.get("contact_name"):
            item["name"] = data["contact_name"]
        if data.get("account_external_id"):
            item["account_external_id"] = data["account_external_id"]
        contact_items.append({k: v for k, v in item.items() if v})
        owners.append(index)
    report = account_services.records_upsert(
        organization=organization, kind="contacts", items=contact_items
    )
    for index, result in zip(owners, report.results, strict=True):
        if result.status == "error" and "appears twice" not in str(result.errors):
            errors[index] = [f"{k}: {' '.join(v)}" for k, v in result.errors.items()]
    return errors


def request_fingerprint(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def responses_record(
    *,
    organization: Organization,
    items: list,
    channel: str,
    create_missing: bool = False,
    skip_unchanged: bool = False,
) -> RecordReport:
    """Validates, deduplicates, classifies, enriches and saves up to 1,000 responses.

    Each item gets a result: created, updated (same external_id or invitation answered
    again), or error with field messages; valid items are saved together, invalid ones
    change nothing. The contact is found by contact_id, contact_external_id or email, and
    created with its account when `create_missing`. A survey_id or invitation_id must be the
    organization's, and the invitation the contact's (responses.references); an item that
    names only its invitation takes the invitation's survey. With `skip_unchanged` (a
    re-import), an existing response the item would not change is "unchanged": not written,
    no event. On commit, the batch is announced (tasks.announce_recorded_on_commit): the
    worker sends `events.response_recorded` for it, possibly merged with other batches, with
    `historical_ids`: the imported answers older than settings.IMPORT_FOLLOWUP_MAX_AGE_DAYS
    (history: they open no follow-up and alert no one).
    """
    if channel not in _CHANNELS:
        raise ValueError(f"Unknown channel {channel!r}.")
    items = list(items)
    if not items:
        raise ValidationError("Send at least one response.")
    if len(items) > MAX_BATCH:
        raise ValidationError(f"Send at most {MAX_BATCH} responses at once; this has {len(items)}.")
    if len(items) == 1 and connection.vendor == "postgresql":
        report = _record_one_postgresql(organization, items[0], channel)
        if report is not None:
            return report
    for attempt in range(2):
        try:
            with transaction.atomic():
                return _record_batch(organization, items, channel, create_missing, skip_unchanged)
        except IntegrityError:
            # A concurrent request saved the same external_id or invitation first; the
            # second pass finds it and updates it instead.
            if attempt:
                raise
    raise AssertionError("unreachable")


def response_record(*, organization: Organization, channel: str, **fields) -> tuple[Response, bool]:
    """One response; raises ValidationError with field messages. Returns (response, created)."""
    create_missing = fields.pop("create_missing", False)
    report = responses_record(
        organization=organization, items=[fields], channel=channel, create_missing=create_missing
    )
    result = report.results[0]
    if result.status == "error":
        raise ValidationError(result.errors)
    return result.response, result.status == "created"


_COMPARED = (
    "contact_id", "account_id", "score", "comment", "external_id", "survey_id",
    "invitation_id", "submitted_at", "properties", "tags",
)  # fmt: skip


def _compared(response: Response) -> tuple:
    return tuple(getattr(response, name) for name in _COMPARED)


def _record_batch(organization, items, channel, create_missing, skip_unchanged=False):
    moment = now()
    results: list[ItemResult | None] = [None] * len(items)
    cleaned: dict[int, dict] = {}
    seen_external: dict[str, int] = {}
    for index, item in enumerate(items):
        data, errors = clean_item(item)
        external = data.get("external_id")
        if not errors and external:
            if external in seen_external:
                errors["external_id"] = [
                    f"external_id “{external}” appears twice in this batch "
                    f"(first at item {seen_external[external]})."
                ]
            else:
                seen_external[external] = index
        if errors:
            results[index] = ItemResult(index, "error", errors=errors)
        else:
            cleaned[index] = data

    contacts = _find_contacts(organization, list(cleaned.values()))
    keys = {index: _contact_key(data) for index, data in cleaned.items()}
    missing = [(i, d) for i, d in cleaned.items() if keys[i] not in contacts]
    if missing and create_missing:
        creatable = [(i, d) for i, d in missing if keys[i][0] != "id"]
        for index, messages in _create_missing_contacts(organization, creatable).items():
            results[index] = ItemResult(index, "error", errors={"email": messages})
            del cleaned[index]
        contacts = _find_contacts(organization, list(cleaned.values()))
    for index in [i for i in cleaned if keys[i] not in contacts]:
        kind, value = keys[index]
        field_name = {"id": "contact_id", "external_id": "contact_external_id"}.get(kind, "email")
        hint = "" if create_missing else " Send create_missing=true to create the contact."
        results[index] = ItemResult(
            index,
            "error",
            errors={field_name: [f"No contact has the {field_name} “{value}”.{hint}"]},
        )
        del cleaned[index]

    externals = {d["external_id"] for d in cleaned.values() if d.get("external_id")}
    invitations = {d["invitation_id"] for d in cleaned.values() if d.get("invitation_id")}
    existing_by_external, existing_by_invitation = {}, {}
    if externals or invitations:
        for response in _responses_named(organization, externals, invitations):
            if response.external_id:
                existing_by_external[response.external_id] = response
            if response.invitation_id:
                existing_by_invitation[response.invitation_id] = response

    # survey_id and invitation_id must be the organization's (and the invitation the
    # contact's): the surveys app checks them, one query per table, none without such ids.
    # An update that repeats the ids its response holds, for the same contact, is not
    # checked again: they were when first saved (its survey may have been deleted since).
    def repeats_its_ids(index: int) -> bool:
        data = cleaned[index]
        response = existing_by_external.get(data.get("external_id")) or (
            existing_by_invitation.get(data.get("invitation_id"))
        )
        return (
            response is not None
            and response.contact_id == contacts[keys[index]].pk
            and data.get("survey_id", response.survey_id) == response.survey_id
            and data.get("invitation_id", response.invitation_id) == response.invitation_id
        )

    checked = {
        i: d
        for i, d in cleaned.items()
        if ("survey_id" in d or "invitation_id" in d) and not repeats_its_ids(i)
    }
    for index, errors in references.references_check(
        organization=organization, items=checked, contact_of=lambda i: contacts[keys[i]].pk
    ).items():
        results[index] = ItemResult(index, "error", errors=errors)
        del cleaned[index]

    new_response = _response_maker(organization, channel, moment)
    new, changed, unchanged = [], [], []
    for index, data in cleaned.items():
        contact = contacts[keys[index]]
        response = existing_by_external.get(data.get("external_id")) or (
            existing_by_invitation.get(data.get("invitation_id"))
        )
        is_new = response is None
        before = None if is_new or not skip_unchanged else _compared(response)
        if is_new:
            response = new_response()
        if _CONTACT_ACCOUNT.is_cached(contact):  # a single answer: shown with both
            response.contact = contact
            response.account = contact.account
        else:
            response.contact_id = contact.pk
            response.account_id = contact.account_id
        _apply(response, data, is_new)
        if before is not None and _compared(response) == before:
            unchanged.append((index, response))
            continue
        response.updated_at = moment
        (new if is_new else changed).append((index, response))

    if new:
        _insert([r for _, r in new])
    if changed:
        Response.objects.bulk_update(
            [r for _, r in changed],
            [
                "contact",
                "account",
                "score",
                "category",
                "danger_zone",
                "comment",
                "has_comment",
                "external_id",
                "survey_id",
                "invitation_id",
                "submitted_at",
                "properties",
                "tags",
                "updated_at",
            ],
        )
    for status, pairs in (("created", new), ("updated", changed), ("unchanged", unchanged)):
        for index, response in pairs:
            results[index] = ItemResult(index, status, response=response)

    saved = [r for _, r in new] + [r for _, r in changed]
    _refresh_latest(organization, saved)
    _announce(organization, channel, moment, [r for _, r in new], [r for _, r in changed])
    return RecordReport(results=results)


def _record_one_postgresql(organization, item, channel) -> RecordReport | None:
    """One new answer from a known contact in one statement (the API's usual POST): the
    contact's lookup, the INSERT and both "latest answer" updates, which
    _record_batch runs as four statements in a transaction. One statement is atomic by
    itself, so outside a transaction there is no BEGIN or COMMIT either: one round trip
    instead of six. Returns None, having changed nothing, for anything else (an invalid
    item, an unknown contact, an external_id or invitation already answered): the batch
    path handles those."""
    data, errors = clean_item(item)
    if errors or "survey_id" in data or "invitation_id" in data:
        return None  # the batch path checks survey and invitation (references_check)
    kind, value = _contact_key(data)
    moment = now()
    response = _response_maker(organization, channel, moment)()
    _apply(response, data, True)
    values = response.__dict__
    params = [organization.pk, value]
    params += [
        Jsonb(values[name]) if is_json else values[name]
        for name, is_json in _insert_columns()[2]
        if name not in ("contact_id", "account_id")
    ]
    at = response.submitted_at
    params += [at, organization.pk, at, response.score, at, organization.pk, at]
    # No savepoint inside a caller's transaction (an Idempotency-Key's): the statement
    # cannot fail on a conflict (ON CONFLICT DO NOTHING) or a deleted contact (locked
    # first, so a concurrent deletion either waits or is seen), and the foreign keys are
    # checked at COMMIT. A failure there, or of another kind, is the caller's, as it would
    # be from the batch path.
    try:
        with prepared_cursor() as cursor:
            cursor.execute(_record_one_sql(kind), params)
            row = cursor.fetchone()
    except IntegrityError:
        if connection.in_atomic_block:
            raise
        return None  # a row it refers to was deleted meanwhile: the batch path says which
    if row is None or row[0] is None:
        return None
    response.id = row[0]
    response._state.adding = False
    response._state.db = connection.alias
    contact_count = len(Contact._meta.concrete_fields)
    contact = _from_row(Contact, row[1 : 1 + contact_count])
    account_row = row[1 + contact_count :]
    account = _from_row(Account, account_row) if account_row[0] is not None else None
    _CONTACT_ACCOUNT.set_cached_value(contact, account)
    response.contact, response.account = contact, account
    _announce(organization, channel, moment, [response], [])
    return RecordReport(results=[ItemResult(0, "created", response=response)])


@functools.cache
def _record_one_sql(kind: str) -> str:
    """_record_one_postgresql's statement for a contact named by `kind` (id, external_id or
    email). Parameters: the organization and the contact's key; the new response's columns
    but its contact and account; then (moment, organization, moment) for the contact's
    update and (score, moment, organization, moment) for the account's. Answers one row if
    the contact exists: the new response's id (NULL when nothing was inserted), then the
    contact's and its account's columns."""
    quote = connection.ops.quote_name
    table, columns, names = _insert_columns()
    selected = ", ".join(
        {"contact_id": "c.id", "account_id": "c.account_id"}.get(name, "%s") for name, _ in names
    )
    contact_table, account_table = quote(Contact._meta.db_table), quote(Account._meta.db_table)
    types = {"id": "bigint", "external_id": "text", "email": "text"}
    shown = [f"c.{quote(f.column)}" for f in Contact._meta.concrete_fields]
    shown += [f"a.{quote(f.column)}" for f in Account._meta.concrete_fields]
    # The contact's row is locked first, as it is read (a deletion in progress is waited
    # for, and a contact deleted meanwhile is not found), then the account's, as
    # _refresh_latest_postgresql and the batch statements lock them: the account's update
    # waits for the contact's (its condition reads `touched`), so two writers never wait for
    # each other in turn. A conflict (the external_id or invitation already answered)
    # inserts nothing, and then nothing is updated either. Names from the models, values as
    # parameters.
    return f"""
WITH c AS (
    SELECT * FROM {contact_table}
    WHERE organization_id = %s AND {quote(kind)} = %s::{types[kind]}
    FOR NO KEY UPDATE
), inserted AS (
    INSERT INTO {table} ({columns}) SELECT {selected} FROM c
    ON CONFLICT DO NOTHING RETURNING id
), touched AS (
    UPDATE {contact_table} t SET last_responded_at = %s::timestamptz
    FROM c, inserted
    WHERE t.id = c.id AND t.organization_id = %s
      AND (t.last_responded_at IS NULL OR t.last_responded_at < %s::timestamptz)
    RETURNING t.id
), scored AS (
    UPDATE {account_table} t SET last_score = %s, last_score_at = %s::timestamptz
    FROM c, inserted
    WHERE t.id = c.account_id AND t.organization_id = %s
      AND (t.last_score_at IS NULL OR t.last_score_at <= %s::timestamptz)
      AND (SELECT count(*) FROM touched) >= 0
    RETURNING t.id
)
SELECT inserted.id, {", ".join(shown)}
FROM c LEFT JOIN {account_table} a ON a.id = c.account_id LEFT JOIN inserted ON true
"""  # noqa: S608


def _apply(response: Response, data: dict, is_new: bool) -> None:
    """Sets a response's fields from an item's cleaned data (its contact aside)."""
    response.score = data["score"]
    response.category, response.danger_zone = classify(data["score"])
    if "comment" in data or is_new:
        response.comment = data.get("comment", "")
    response.has_comment = bool(response.comment.strip())
    for name in ("external_id", "survey_id", "invitation_id", "submitted_at"):
        if name in data:
            setattr(response, name, data[name])
    if "properties" in data:
        response.properties = {**(response.properties or {}), **data["properties"]}
    if "tags" in data:
        response.tags = data["tags"]


def _announce(organization, channel, moment, created: list, updated: list) -> None:
    """Announces the saved responses once the transaction commits (see responses_record)."""
    if not created and not updated:
        return
    historical_ids = []
    if channel == Channel.IMPORT:
        # History: an imported answer this old opens no follow-up and alerts no one.
        horizon = moment - timedelta(days=settings.IMPORT_FOLLOWUP_MAX_AGE_DAYS)
        historical_ids = [r.pk for r in created + updated if r.submitted_at < horizon]
    announce_recorded_on_commit(
        organization.pk, [r.pk for r in created], [r.pk for r in updated], historical_ids
    )


def _responses_named(organization, externals: set, invitations: set) -> list[Response]:
    """The organization's responses with these external ids or invitations (to update)."""
    if connection.vendor != "postgresql":
        return list(
            Response.objects.filter(
                Q(external_id__in=externals) | Q(invitation_id__in=invitations),
                organization=organization,
            )
        )
    # Prepared, as the contacts' lookup: the ORM's query for 1,000 ids costs several times
    # what the answer's statement does.
    with prepared_cursor() as cursor:
        cursor.execute(
            _responses_named_sql(),
            [organization.pk, pg_array(sorted(externals)), pg_array(sorted(invitations))],
        )
        return [_from_row(Response, row) for row in cursor.fetchall()]


@functools.cache
def _responses_named_sql() -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in Response._meta.concrete_fields)
    # Names from the model, values as parameters.
    return (
        f"SELECT {columns} FROM {quote(Response._meta.db_table)} "  # noqa: S608
        "WHERE organization_id = %s "
        "AND (external_id = ANY(%s::text[]) OR invitation_id = ANY(%s::bigint[]))"
    )


def _response_maker(organization, channel, moment):
    """A function returning what Response(organization=…, channel=…, created_at=moment,
    submitted_at=moment, updated_at=moment) would, with the other fields at their defaults.
    Model.__init__ costs more than the rest of building a batch of 1,000 answers (it looks up
    every field and sends signals nobody listens to for this model), so the instance is made as
    Model.from_db makes one: the field values in its __dict__ and a fresh ModelState."""
    defaults, factories = _response_defaults()
    constants = {
        **defaults,
        "organization_id": organization.pk,
        "channel": channel,
        "created_at": moment,
        "submitted_at": moment,
        "updated_at": moment,
    }
    factories = [(name, factory) for name, factory in factories if name not in constants]

    def new_response() -> Response:
        response = _bare(Response, constants)
        for name, factory in factories:
            response.__dict__[name] = factory()
        _RESPONSE_ORGANIZATION.set_cached_value(response, organization)
        return response

    return new_response


_RESPONSE_ORGANIZATION = Response._meta.get_field("organization")


@functools.cache
def _response_defaults() -> tuple[dict, list]:
    """Response's field defaults: constant ones by attname, and (attname, factory) for the
    callable ones (a new list or dict for each instance)."""
    constants, factories = {}, []
    for f in Response._meta.concrete_fields:
        if f.has_default() and callable(f.default):
            factories.append((f.attname, f.default))
        else:
            constants[f.attname] = f.get_default()
    return constants, factories


def _bare(model, values: dict, *, db: str | None = None):
    """An instance of `model` holding `values` (by attname; a field left out is deferred and
    read on first use, as with QuerySet.only()), without Model.__init__. Unsaved unless `db`
    names the database it was read from."""
    instance = model.__new__(model)
    instance.__dict__.update(values)
    instance._state = ModelState()
    if db is not None:
        instance._state.adding = False
        instance._state.db = db
    return instance


# Fewer rows than this go in one INSERT … RETURNING; more by COPY, with ids drawn first.
_COPY_FROM = 50


@functools.cache
def _insert_columns() -> tuple[str, str, list[tuple[str, bool]]]:
    """The table, its columns but the id, and (attname, is JSON) for each, in that order."""
    quote = connection.ops.quote_name
    fields = [f for f in Response._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(quote(f.column) for f in fields)
    return (
        quote(Response._meta.db_table),
        columns,
        [(f.attname, isinstance(f, JSONField)) for f in fields],
    )


@functools.cache
def _insert_sql(rows: int) -> str:
    table, columns, names = _insert_columns()
    one = "(" + ", ".join(["%s"] * len(names)) + ")"
    # Names from the model, values as parameters.
    return f"INSERT INTO {table} ({columns}) VALUES {', '.join([one] * rows)} RETURNING id"  # noqa: S608


def _insert(responses: list[Response]) -> None:
    """Saves new responses and sets their ids: Response.objects.bulk_create, minus its cost
    per object on PostgreSQL (one INSERT for a few rows, COPY for a batch)."""
    if connection.vendor != "postgresql":
        Response.objects.bulk_create(responses)
        return
    table, columns, names = _insert_columns()
    if len(responses) < _COPY_FROM:
        # The values as the service set them (ids, text, numbers, aware datetimes), which
        # psycopg adapts as Django would; JSON fields wrapped as jsonb.
        params = [
            Jsonb(values[name]) if is_json else values[name]
            for values in (r.__dict__ for r in responses)
            for name, is_json in names
        ]
        with prepared_cursor() as cursor:
            cursor.execute(_insert_sql(len(responses)), params)
            ids = [pk for (pk,) in cursor.fetchall()]
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [Response._meta.db_table, len(responses)],
            )
            ids = [pk for (pk,) in cursor.fetchall()]
            text = _copy_text(ids, responses)
            with cursor.cursor.copy(f"COPY {table} (id, {columns}) FROM STDIN") as copy:
                copy.write(text)
    alias = connection.alias
    for response, pk in zip(responses, ids, strict=True):
        response.id = pk
        response._state.adding = False
        response._state.db = alias


def _copy_text(ids: list[int], responses: list[Response]) -> str:
    """The rows' lines in COPY's text format (id, then _insert_columns()'s columns), built a
    column at a time: a column holding one value (the organization, the channel, a batch's
    moment, an empty list) is written once, a column of whole numbers or of text without
    specials in one pass of C code; only the rest goes value by value."""
    rows = [r.__dict__ for r in responses]
    columns = [list(map(str, ids))]
    for name, is_json in _insert_columns()[2]:
        columns.append(_copy_column([row[name] for row in rows], is_json))
    _copy_other.cache_clear()  # the batch's moments, ids and flags, remembered
    return "\n".join(map("\t".join, zip(*columns, strict=True))) + "\n"


def _copy_column(values: list, is_json: bool) -> list[str]:
    first = values[0]
    kinds = set(map(type, values))
    if len(kinds) == 1 and values.count(first) == len(values):  # one value, one type
        return [_copy_json(first) if is_json else _copy_cell(first)] * len(values)
    if is_json:
        return [_copy_json(value) for value in values]
    if kinds == {int}:
        return list(map(str, values))
    if kinds == {str}:
        joined = "".join(values)
        if "\\" not in joined and "\t" not in joined and "\n" not in joined and "\r" not in joined:
            return values
    return [_copy_cell(value) for value in values]


# COPY's text format, written here: psycopg's write_row adapts value by value, which cost
# more than the rest of saving a batch.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_cell(value) -> str:
    """A value as COPY's text format reads it: \\N for NULL, t/f, numbers, ISO 8601 times
    (aware), text with its specials escaped."""
    if type(value) is str:  # the usual case, first
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return value.translate(_COPY_ESCAPES)
        return value
    return _copy_other(value)


@functools.lru_cache(maxsize=4096, typed=True)  # typed: True and 1 are different cells
def _copy_other(value) -> str:
    """_copy_cell for what is not text (hashable: numbers, times, None, booleans); a batch
    repeats the same few, so they are remembered (cleared after each batch)."""
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return _copy_cell(str(value))


def _copy_json(value) -> str:
    """A JSON field's value as COPY's text format reads jsonb (the JSON text, escaped)."""
    if not value and isinstance(value, list | dict):
        return "[]" if isinstance(value, list) else "{}"
    return _copy_cell(json.dumps(value))


def _refresh_latest(organization, responses: list[Response]) -> None:
    """Moves contact.last_responded_at and account.last_score forward, never back."""
    latest_by_contact: dict[int, datetime] = {}
    latest_by_account: dict[int, Response] = {}
    for response in responses:
        if response.contact_id:
            current = latest_by_contact.get(response.contact_id)
            if current is None or response.submitted_at > current:
                latest_by_contact[response.contact_id] = response.submitted_at
        if response.account_id:
            current = latest_by_account.get(response.account_id)
            if current is None or response.submitted_at >= current.submitted_at:
                latest_by_account[response.account_id] = response
    if connection.vendor == "postgresql":
        _refresh_latest_postgresql(organization, latest_by_contact, latest_by_account)
        return
    for contact_id, moment in sorted(latest_by_contact.items()):
        Contact.objects.filter(organization=organization, pk=contact_id).filter(
            Q(last_responded_at__isnull=True) | Q(last_responded_at__lt=moment)
        ).update(last_responded_at=moment)
    for account_id, latest in sorted(latest_by_account.items()):
        Account.objects.filter(organization=organization, pk=account_id).filter(
            Q(last_score_at__isnull=True) | Q(last_score_at__lte=latest.submitted_at)
        ).update(last_score=latest.score, last_score_at=latest.submitted_at)


# One statement per table, whatever the batch size. The rows are locked first in id order,
# so two batches that share contacts or accounts wait for each other instead of
# deadlocking; the UPDATE's own condition is checked again on the row as locked.
_REFRESH_CONTACTS = """
WITH latest AS (
    SELECT * FROM unnest(%(contact_ids)s::bigint[], %(contact_moments)s::timestamptz[])
        AS latest (id, moment)
), locked AS (
    SELECT row.id FROM {table} row JOIN latest ON latest.id = row.id
    WHERE row.organization_id = %(organization)s
      AND (row.last_responded_at IS NULL OR row.last_responded_at < latest.moment)
    ORDER BY row.id FOR NO KEY UPDATE OF row
)
UPDATE {table} row SET last_responded_at = latest.moment
FROM latest, locked
WHERE row.id = locked.id AND latest.id = row.id
  AND (row.last_responded_at IS NULL OR row.last_responded_at < latest.moment)
"""
_REFRESH_ACCOUNTS = """
WITH latest AS (
    SELECT * FROM unnest(%(account_ids)s::bigint[], %(scores)s::smallint[],
                  %(account_moments)s::timestamptz[])
        AS latest (id, score, moment)
), locked AS (
    SELECT row.id FROM {table} row JOIN latest ON latest.id = row.id
    WHERE row.organization_id = %(organization)s
      AND (row.last_score_at IS NULL OR row.last_score_at <= latest.moment)
    ORDER BY row.id FOR NO KEY UPDATE OF row
)
UPDATE {table} row SET last_score = latest.score, last_score_at = latest.moment
FROM latest, locked
WHERE row.id = locked.id AND latest.id = row.id
  AND (row.last_score_at IS NULL OR row.last_score_at <= latest.moment)
"""


# One answer (the API's usual POST): plain single-row updates, prepared once per connection.
# A prepared statement is planned for any array size, and a plan for unnest(…) of unknown
# length scans the organization's rows; one row needs none of it. Both lock one row each,
# contact then account, the order the batch statements lock them in.
_REFRESH_ONE_CONTACT = """
UPDATE {table} SET last_responded_at = %(moment)s
WHERE id = %(id)s AND organization_id = %(organization)s
  AND (last_responded_at IS NULL OR last_responded_at < %(moment)s)
"""
_REFRESH_ONE_ACCOUNT = """
UPDATE {table} SET last_score = %(score)s, last_score_at = %(moment)s
WHERE id = %(id)s AND organization_id = %(organization)s
  AND (last_score_at IS NULL OR last_score_at <= %(moment)s)
"""


def _refresh_latest_postgresql(organization, latest_by_contact, latest_by_account) -> None:
    if len(latest_by_contact) <= 1 and len(latest_by_account) <= 1:
        with prepared_cursor() as cursor:
            for contact_id, moment in latest_by_contact.items():
                cursor.execute(
                    _REFRESH_ONE_CONTACT.format(table=Contact._meta.db_table),
                    {"id": contact_id, "moment": moment, "organization": organization.pk},
                )
            for account_id, latest in latest_by_account.items():
                cursor.execute(
                    _REFRESH_ONE_ACCOUNT.format(table=Account._meta.db_table),
                    {
                        "id": account_id,
                        "score": latest.score,
                        "moment": latest.submitted_at,
                        "organization": organization.pk,
                    },
                )
        return
    statements, params = [], {"organization": organization.pk}
    if latest_by_contact:
        ids = sorted(latest_by_contact)
        statements.append(_REFRESH_CONTACTS.format(table=Contact._meta.db_table))
        params.update(
            contact_ids=pg_array(ids),
            contact_moments=pg_array([latest_by_contact[i] for i in ids]),
        )
    if latest_by_account:
        ids = sorted(latest_by_account)
        statements.append(_REFRESH_ACCOUNTS.format(table=Account._meta.db_table))
        params.update(
            account_ids=pg_array(ids),
            scores=pg_array([latest_by_account[i].score for i in ids]),
            account_moments=pg_array([latest_by_account[i].submitted_at for i in ids]),
        )
    with connection.cursor() as cursor:
        if isinstance(cursor.cursor, ClientCursor):
            # Parameters bound here (the arrays' lengths known to the planner), so both
            # statements travel in one round trip.
            cursor.execute(";".join(statements), params)
        else:
            for statement in statements:
                cursor.execute(statement, params)


def response_update(*, organization: Organization, response: Response, changes: dict) -> Response:
    """Edits a response's comment or tags (PATCH). Score and person are not editable: a new
    answer is a new response. An edited comment is analysed again (response.updated)."""
    unknown = set(changes) - {"comment", "tags"}
    if unknown:
        raise ValidationError({name: ["Only comment and tags can be changed."] for name in unknown})
    if not changes:
        raise ValidationError({"non_field_errors": ["Send comment or tags to change."]})
    errors = {}
    for name, value in changes.items():
        try:
            value = (
                CLEANERS[name](value)
                if not cleaning.is_blank(value)
                else ("" if name == "comment" else [])
            )
        except ValueError as exc:
            errors[name] = [f"{name} {exc}"]
            continue
        setattr(response, name, value)
    if errors:
        raise ValidationError(errors)
    response.has_comment = bool(response.comment.strip())
    response.updated_at = now()
    with transaction.atomic():
        response.save(update_fields=["comment", "has_comment", "tags", "updated_at"])
        announce_recorded_on_commit(organization.pk, [], [response.pk], [])
    return response


# --- Comment themes ----------------------------------------------------------------------

REANALYZE_CHUNK = 1000


def responses_reanalyze(*, organization: Organization) -> int:
    """Enqueues the analysis of every commented response, in chunks of 1,000 ids, once the
    transaction commits. Unchanged ones are skipped by their hash; a response without a
    comment has no theme whatever the taxonomy. Returns how many were enqueued."""
    ids = (
        Response.objects.filter(organization=organization, has_comment=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    chunk, total = [], 0
    for response_id in ids.iterator(chunk_size=REANALYZE_CHUNK):
        chunk.append(response_id)
        if len(chunk) == REANALYZE_CHUNK:
            analyze_responses.delay_on_commit(organization.pk, chunk)
            total, chunk = total + len(chunk), []
    if chunk:
        analyze_responses.delay_on_commit(organization.pk, chunk)
        total += len(chunk)
    return total


def theme_add_keywords(*, organization: Organization, slug: str, name: str, keywords: list[str]):
    """Adds keywords to the organization's theme `slug`, creating it (for a new theme, or the
    first addition to a default one). Returns (theme, the keywords that were new, whether the
    theme row was created). Re-analysis is enqueued when something changed."""
    default = analysis.DEFAULT_THEMES.get(slug)
    known = set(default[1]) if default else set()
    with transaction.atomic():
        theme = (
            Theme.objects.select_for_update().filter(organization=organization, slug=slug).first()
        )
        existing = list(theme.keywords) if theme else []
        added = [k for k in keywords if k not in known and k not in existing]
        if not added:
            return theme, [], False
        created = theme is None
        if created:
            try:
                with transaction.atomic():
                    theme = Theme.objects.create(
                        organization=organization,
                        slug=slug,
                        name=default[0] if default else name,
                        keywords=added,
                    )
            except IntegrityError:
                # Someone created it a moment ago: add to theirs instead.
                theme = Theme.objects.select_for_update().get(organization=organization, slug=slug)
                added = [k for k in added if k not in theme.keywords]
                theme.keywords = [*theme.keywords, *added]
                theme.save(update_fields=["keywords"])
                created = False
        else:
            theme.keywords = [*existing, *added]
            theme.save(update_fields=["keywords"])
        responses_reanalyze(organization=organization)
    return theme, added, created
