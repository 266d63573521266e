"""Writes for accounts and their context. The one upsert every channel (REST, CSV, demo)
goes through, the GDPR erasure, and segment writes."""

import hashlib
import json
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models import BooleanField, Q
from django.db.models.expressions import RawSQL
from django.utils.timezone import now

from accounts import cleaning, events, segments
from accounts.models import (
    Account,
    Contact,
    ErasureRecord,
    LifecycleStage,
    Segment,
    SupportTicket,
    SuppressionReason,
    TicketPriority,
    TicketStatus,
    UsageSnapshot,
)
from nps_platform.models import Membership, Organization

MAX_BATCH = 1000


# --- The upsert engine ---------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """How one input field is cleaned and where it lands on the model.

    `ref` names a reference resolved in bulk after cleaning: "account" (an account's
    external_id), "owner" (a member's email), "contact_email" or "contact_external_id".
    """

    clean: Callable
    target: str
    ref: str | None = None
    required_on_create: bool = False


@dataclass
class ItemResult:
    index: int
    status: str  # "created" | "updated" | "error"
    id: int | None = None
    key: str | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        data = {"index": self.index, "status": self.status}
        if self.status == "error":
            data["errors"] = self.errors
        else:
            data["id"] = self.id
        if self.key is not None:
            data["key"] = self.key
        return data


@dataclass
class UpsertReport:
    results: list[ItemResult]

    def count(self, status: str) -> int:
        return sum(1 for result in self.results if result.status == status)

    @property
    def created(self) -> int:
        return self.count("created")

    @property
    def updated(self) -> int:
        return self.count("updated")

    @property
    def errors(self) -> int:
        return self.count("error")

    def as_dict(self) -> dict:
        return {
            "created": self.created,
            "updated": self.updated,
            "errors": self.errors,
            "results": [result.as_dict() for result in self.results],
        }


@dataclass(frozen=True)
class UpsertKind:
    name: str
    model: type[models.Model]
    fields: dict[str, FieldSpec]
    key: Callable[[dict], object]  # identity of a cleaned row (before refs resolve)
    label: Callable[[dict], str]


def _s(clean, target=None, **kwargs):
    return lambda name: FieldSpec(clean=clean, target=target or name, **kwargs)


def _fields(**specs) -> dict[str, FieldSpec]:
    return {name: make(name) for name, make in specs.items()}


ACCOUNT_FIELDS = _fields(
    external_id=_s(cleaning.text(200)),
    name=_s(cleaning.text(300), required_on_create=True),
    domain=_s(cleaning.domain),
    plan=_s(cleaning.text(100, lower=True)),
    arr=_s(cleaning.decimal(minimum=Decimal(0))),
    industry=_s(cleaning.text(100)),
    size=_s(cleaning.text(50)),
    lifecycle_stage=_s(cleaning.choice(LifecycleStage)),
    renewal_date=_s(cleaning.a_date()),
    signed_up_on=_s(cleaning.a_date(not_future=True)),
    owner_email=_s(cleaning.email, "owner_id", ref="owner"),
    health_score=_s(cleaning.integer(minimum=0, maximum=100)),
    churned_at=_s(cleaning.a_datetime),
    properties=_s(cleaning.json_object),
)

CONTACT_FIELDS = _fields(
    external_id=_s(cleaning.text(200)),
    email=_s(cleaning.email),
    name=_s(cleaning.text(200)),
    phone=_s(cleaning.text(50)),
    title=_s(cleaning.text(200)),
    locale=_s(cleaning.locale),
    timezone=_s(cleaning.timezone_name),
    account_external_id=_s(cleaning.text(200), "account_id", ref="account"),
    suppressed_reason=_s(cleaning.choice(SuppressionReason)),
    suppression_note=_s(cleaning.text(500)),
    properties=_s(cleaning.json_object),
)

TICKET_FIELDS = _fields(
    external_id=_s(cleaning.text(200)),
    account_external_id=_s(
        cleaning.text(200), "account_id", ref="account", required_on_create=True
    ),
    contact_email=_s(cleaning.email, "contact_id", ref="contact_email"),
    contact_external_id=_s(cleaning.text(200), "contact_id", ref="contact_external_id"),
    subject=_s(cleaning.text(500), required_on_create=True),
    status=_s(cleaning.choice(TicketStatus)),
    priority=_s(cleaning.choice(TicketPriority)),
    opened_at=_s(cleaning.a_datetime, required_on_create=True),
    closed_at=_s(cleaning.a_datetime),
    source=_s(cleaning.text(100, lower=True)),
    url=_s(cleaning.url),
)

USAGE_FIELDS = _fields(
    account_external_id=_s(cleaning.text(200), "account_id", ref="account"),
    date=_s(cleaning.a_date(not_future=True)),
    active_users=_s(cleaning.integer(minimum=0, maximum=10_000_000)),
    metrics=_s(cleaning.json_object),
)

ACCOUNTS = UpsertKind(
    "accounts", Account, ACCOUNT_FIELDS, key=lambda d: d.get("external_id"),
    label=lambda d: d.get("external_id") or "",
)  # fmt: skip
CONTACTS = UpsertKind(
    "contacts", Contact, CONTACT_FIELDS,
    key=lambda d: d.get("external_id") or d.get("email"),
    label=lambda d: d.get("email") or d.get("external_id") or "",
)  # fmt: skip
TICKETS = UpsertKind(
    "tickets", SupportTicket, TICKET_FIELDS, key=lambda d: d.get("external_id"),
    label=lambda d: d.get("external_id") or "",
)  # fmt: skip
USAGE = UpsertKind(
    "usage", UsageSnapshot, USAGE_FIELDS,
    key=lambda d: (d.get("account_external_id"), d.get("date")),
    label=lambda d: f"{d.get('account_external_id')} {d.get('date')}",
)  # fmt: skip
KINDS = {kind.name: kind for kind in (ACCOUNTS, CONTACTS, TICKETS, USAGE)}

REQUIRED_KEYS = {
    "accounts": [("external_id",)],
    "contacts": [("email", "external_id")],  # one of them
    "tickets": [("external_id",)],
    "usage": [("account_external_id",), ("date",)],
}
JSON_FIELDS = {"properties", "metrics"}


def _empty_value(model, target: str):
    model_field = model._meta.get_field(target.removesuffix("_id"))
    return None if model_field.null else ""


def _clean_item(kind: UpsertKind, item, *, blank_unsets: bool):
    """(cleaned data by input name, errors by input name) for one raw item."""
    if not isinstance(item, dict):
        return {}, {"non_field_errors": ["Each item must be an object."]}
    data, errors = {}, {}
    properties = {}
    fields = kind.fields
    for name, value in item.items():
        blank = value is None or (isinstance(value, str) and not value.strip())
        if "." in name and name.split(".", 1)[0] in JSON_FIELDS and name.split(".", 1)[0] in fields:
            if not blank:
                try:
                    properties.setdefault(name.split(".", 1)[0], {})[name.split(".", 1)[1]] = (
                        cleaning._as_text(value)
                    )
                except ValueError as exc:
                    errors[name] = [str(exc)]
            continue
        spec = fields.get(name)
        if spec is None:
            errors[name] = [f"Unknown field. Known fields: {', '.join(fields)}."]
            continue
        if blank:
            if not blank_unsets and name not in JSON_FIELDS:
                data[name] = cleaning.BLANK
            continue
        try:
            data[name] = spec.clean(value)
        except ValueError as exc:
            errors[name] = [f"{name} {exc}" if str(exc)[0].islower() else str(exc)]
    for name, extra in properties.items():
        data[name] = {**data.get(name, {}), **extra}
    for group in REQUIRED_KEYS[kind.name]:
        if not any(
            data.get(name) is not None and data.get(name) is not cleaning.BLANK for name in group
        ) and not any(name in errors for name in group):
            errors[group[0]] = [f"{' or '.join(group)} is required."]
    return data, errors


def _any_of(model, **values) -> Q | RawSQL:
    """`column IN (…) OR …` over a batch's values. On PostgreSQL it is `column = ANY(…)`
    with the values sent as one JSON array: a thousand placeholders (or an array parameter,
    quoted value by value) cost more to send and plan than the lookup itself."""
    if connection.vendor != "postgresql":
        condition = Q()
        for name, these in values.items():
            condition |= Q(**{f"{name}__in": these})
        return condition
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    sql = " OR ".join(
        f"{table}.{quote(name)} = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
        for name in values
    )
    params = [json.dumps(list(these)) for these in values.values()]
    return RawSQL(f"({sql})", params, BooleanField())  # noqa: S611 - names are ours


def _resolve_refs(organization, cleaned: list[dict]) -> dict[str, dict]:
    """One query per kind of reference, for the whole batch."""
    wanted: dict[str, set] = {}
    for data in cleaned:
        for name in ("account_external_id", "owner_email", "contact_email", "contact_external_id"):
            value = data.get(name)
            if value not in (None, cleaning.BLANK):
                wanted.setdefault(name, set()).add(value)
    found: dict[str, dict] = {name: {} for name in wanted}
    if values := wanted.get("account_external_id"):
        found["account_external_id"] = dict(
            Account.objects.filter(_any_of(Account, external_id=values), organization=organization)
            .order_by()
            .values_list("external_id", "id")
        )
    if values := wanted.get("owner_email"):
        found["owner_email"] = dict(
            Membership.objects.filter(organization=organization, user__email__in=values)
            .order_by()
            .values_list("user__email", "user_id")
        )
    if values := wanted.get("contact_email"):
        found["contact_email"] = dict(
            Contact.objects.filter(_any_of(Contact, email=values), organization=organization)
            .order_by()
            .values_list("email", "id")
        )
    if values := wanted.get("contact_external_id"):
        found["contact_external_id"] = dict(
            Contact.objects.filter(_any_of(Contact, external_id=values), organization=organization)
            .order_by()
            .values_list("external_id", "id")
        )
    return found


REF_MESSAGES = {
    "account_external_id": "No account has the external_id “{}”. Import the account first.",
    "owner_email": "{} is not a member of this organization.",
    "contact_email": "No contact has the email {}.",
    "contact_external_id": "No contact has the external_id “{}”.",
}


def _load_fields(kind: UpsertKind, update_fields: list[str]) -> list[str]:
    """What is read of an existing row: its id, identity and every column the update writes."""
    names = ["id", "organization_id", *(name for name in update_fields if name != "updated_at")]
    for identity in ("external_id", "email", "account_id", "date"):
        if identity not in names and any(f.attname == identity for f in _columns(kind.model)):
            names.append(identity)
    return names


def _existing(organization, kind: UpsertKind, rows: list[dict], update_fields) -> dict:
    """Existing rows for the batch, by identity, in one query, as dicts of column values."""
    model = kind.model
    base = model.objects.filter(organization=organization)
    load = _load_fields(kind, update_fields)
    if kind is CONTACTS:
        externals = {d["external_id"] for d in rows if d.get("external_id")}
        emails = {d["email"] for d in rows if d.get("email")}
        lists = {
            name: values
            for name, values in [("external_id", externals), ("email", emails)]
            if values
        }
        if not lists:
            return {}
        # The ordering is dropped: a sort of the batch is wasted work.
        matches = base.filter(_any_of(Contact, **lists))
        matches = matches.order_by().values(*load)
        found = {}
        for contact in matches:
            if contact["external_id"]:
                found[("external_id", contact["external_id"])] = contact
            if contact["email"]:
                found[("email", contact["email"])] = contact
        return found
    if kind is USAGE:
        pairs = {(d["account_id"], d["date"]) for d in rows}
        account_ids = {a for a, _ in pairs}
        dates = {d for _, d in pairs}
        matches = base.filter(account_id__in=account_ids, date__in=dates).order_by().values(*load)
        return {
            (u["account_id"], u["date"]): u
            for u in matches
            if (u["account_id"], u["date"]) in pairs
        }
    keys = {d["external_id"] for d in rows}
    matches = base.filter(_any_of(model, external_id=keys)).order_by().values(*load)
    return {row["external_id"]: row for row in matches}


def _match_existing(kind: UpsertKind, existing: dict, data: dict):
    """(the existing row or None, an error message or None)."""
    if kind is CONTACTS:
        by_external = existing.get(("external_id", data.get("external_id")))
        by_email = existing.get(("email", data.get("email")))
        if by_external and by_email and by_external["id"] != by_email["id"]:
            return None, (
                "email",
                f"{data['email']} belongs to another contact "
                f"(external_id “{by_email['external_id'] or '—'}”).",
            )
        if (
            by_email
            and not by_external
            and data.get("external_id")
            and by_email["external_id"]
            and by_email["external_id"] != data["external_id"]
        ):
            return None, (
                "external_id",
                f"{data['email']} already has the external_id “{by_email['external_id']}”.",
            )
        return by_external or by_email, None
    if kind is USAGE:
        return existing.get((data["account_id"], data["date"])), None
    return existing.get(data["external_id"]), None


def _apply(kind: UpsertKind, row: dict, data: dict, *, is_new: bool, moment) -> None:
    """Sets a row's column values (by attname) from cleaned data."""
    for name, value in data.items():
        spec = kind.fields.get(name)
        if spec is None:
            continue  # resolved helpers such as account_id are set below
        target = spec.target
        if value is cleaning.BLANK:
            value = _empty_value(kind.model, target)
        elif spec.ref:
            value = data[f"_{name}"]
        if name in JSON_FIELDS and not is_new:
            value = {**(row.get(target) or {}), **value}
        row[target] = value
    if kind is CONTACTS and "suppressed_reason" in data:
        if row.get("suppressed_reason") and row.get("suppressed_at") is None:
            row["suppressed_at"] = moment
        elif not row.get("suppressed_reason"):
            row["suppressed_at"] = None
    row["updated_at"] = moment


def _update_fields(kind: UpsertKind, names=None) -> list[str]:
    """The columns an update writes: those of the input fields `names` (all by default) and
    the ones that follow from them. Columns no item of the batch mentions keep their value."""
    names = kind.fields if names is None else [name for name in names if name in kind.fields]
    columns = {kind.fields[name].target for name in names} | {"updated_at"}
    if kind is CONTACTS and "suppressed_reason" in names:
        columns.add("suppressed_at")
    return sorted(columns)


def _columns(model) -> list[models.Field]:
    return model._meta.concrete_fields


def _write(kind: UpsertKind, new_rows: list[dict], old_rows: list[dict], update_fields) -> None:
    """Inserts the new rows (setting their "id") and updates the old ones' update fields."""
    if connection.vendor == "postgresql" and _writes_as_json(kind.model):
        _write_postgresql(kind, new_rows, old_rows, update_fields)
        return
    instances = [kind.model(**row) for row in (*new_rows, *old_rows)]
    kind.model.objects.bulk_create(
        instances, update_conflicts=True, unique_fields=["id"], update_fields=update_fields
    )
    for row, instance in zip(new_rows, instances, strict=False):
        row["id"] = instance.pk


_JSON_SAFE_FIELDS = (
    models.AutoField,
    models.BigAutoField,
    models.ForeignKey,
    models.CharField,
    models.DecimalField,
    models.DateField,  # and DateTimeField
    models.IntegerField,  # and the positive and small ones
    models.JSONField,
)


def _writes_as_json(model) -> bool:
    """Whether every column round-trips through the JSON _write_postgresql sends as Django
    would save it (text, numbers, dates and times, JSON without a custom encoder)."""
    return all(
        isinstance(f, _JSON_SAFE_FIELDS) and not getattr(f, "encoder", None)
        for f in _columns(model)
    )


def _json_default(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


IDENTITY_COLUMNS = {
    "accounts": ("external_id",),
    "contacts": ("external_id", "email"),
    "tickets": ("external_id",),
    "usage": ("account_id", "date"),
}


def _write_postgresql(kind: UpsertKind, new_rows: list[dict], old_rows: list[dict], update_fields):
    """The batch in two statements that read it as one JSON document (an array per row):
    far less work per value than bulk_create's SQL, the same rows in the end. A column with
    the same value in every row (the organization, the time, an unset field) is sent once."""
    model = kind.model
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    identity = IDENTITY_COLUMNS[kind.name]
    with connection.cursor() as cursor:
        if new_rows:
            columns = [f for f in _columns(model) if f.attname != "id"]
            select, params = _recordset(columns, new_rows, identity, defaults=True)
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(quote(f.column) for f in columns)}) "  # noqa: S608
                f"SELECT {', '.join(select)} FROM jsonb_array_elements(%s::jsonb) AS x(e) "
                f"RETURNING id, {', '.join(quote(name) for name in identity)}",
                params,
            )
            ids = {}
            for pk, *key in cursor.fetchall():
                for name, value in zip(identity, key, strict=True):
                    ids[name, value] = pk
                ids[tuple(key)] = pk
            for row in new_rows:
                if kind is CONTACTS:
                    name = "external_id" if row.get("external_id") else "email"
                    row["id"] = ids[name, row[name]]
                else:
                    row["id"] = ids[tuple(row[name] for name in identity)]
        if old_rows:
            names = set(update_fields)
            columns = [f for f in _columns(model) if f.attname in names or f.attname == "id"]
            select, params = _recordset(columns, old_rows, ("id",))
            assignments = ", ".join(
                f"{quote(f.column)} = x.{quote(f.column)}" for f in columns if f.attname != "id"
            )
            names = ", ".join(
                f"{expression} AS {quote(f.column)}"
                for f, expression in zip(columns, select, strict=True)
            )
            cursor.execute(
                f"UPDATE {table} AS t SET {assignments} "  # noqa: S608 - names are ours
                f"FROM (SELECT {names} FROM jsonb_array_elements(%s::jsonb) AS x(e)) AS x "
                "WHERE t.id = x.id",
                params,
            )
            if cursor.rowcount != len(old_rows):
                # A row went away between our read and this write: the retry creates it.
                raise IntegrityError(f"{len(old_rows) - cursor.rowcount} rows changed meanwhile.")


def _recordset(columns, rows: list[dict], always_vary, *, defaults=False):
    """(a SQL expression per column, the parameters) to select `rows` FROM
    jsonb_array_elements(%s) AS x(e): a column whose value is the same in every row becomes
    one parameter; the others are read from a JSON array of arrays, one per row.
    With `defaults`, a column a row lacks has the field's default, as in a new instance."""
    select, params, varying = [], [], []
    present = set().union(*rows) if defaults else None
    for f in columns:
        name = f.attname
        if defaults and name not in present:
            values = [f.get_default()] * len(rows)  # no row sets it
        else:
            try:
                values = list(map(operator.itemgetter(name), rows))
            except KeyError:
                default = f.get_default()
                values = [row.get(name, default) for row in rows]
        first = values[0]
        db_type = f.db_type(connection)
        is_json = isinstance(f, models.JSONField)
        # Equal in every row (list.count compares in C) is as good as the same object.
        if name not in always_vary and values.count(first) == len(values):
            select.append(f"%s::{db_type}")
            params.append(json.dumps(first) if is_json and first is not None else first)
        else:
            position = len(varying)
            select.append(
                f"NULLIF(e -> {position}, 'null')" if is_json else f"(e ->> {position})::{db_type}"
            )
            varying.append(values)
    params.append(json.dumps(list(zip(*varying, strict=True)), default=_json_default))
    return select, params


@dataclass(frozen=True)
class PreparedBatch:
    """A batch cleaned and checked against itself, before any database work."""

    kind: str
    results: list  # ItemResult for the items already refused, None for the others
    cleaned: dict  # item index → cleaned data


def records_prepare(*, kind: str, items: Iterable, blank_unsets: bool = False) -> PreparedBatch:
    """The first half of records_upsert, without the database: each item cleaned, and
    identities that appear twice in the batch refused. An importer prepares its next batch
    with it while the current one is being written."""
    spec = KINDS[kind]
    items = list(items)
    if len(items) > MAX_BATCH:
        raise ValidationError(f"Send at most {MAX_BATCH} items at once; this has {len(items)}.")
    return _prepare(spec, items, blank_unsets=blank_unsets)


def records_upsert(
    *,
    organization: Organization,
    kind: str,
    items: Iterable = (),
    blank_unsets: bool = False,
    prepared: PreparedBatch | None = None,
) -> UpsertReport:
    """Creates or updates accounts, contacts, tickets or usage by their natural key.

    Every item gets a result: created, updated, or error with field messages. Valid items
    are saved together in one transaction; invalid ones change nothing. An empty value
    clears a field, or, with `blank_unsets` (CSV), leaves it as it is. Sending the same
    items twice leaves the same state and reports them as updated. Pass `prepared` (from
    records_prepare) instead of `items` to skip the cleaning done already.
    """
    spec = KINDS[kind]
    if prepared is None:
        prepared = records_prepare(kind=kind, items=items, blank_unsets=blank_unsets)
    elif prepared.kind != kind:
        raise ValueError(f"The batch was prepared for {prepared.kind}, not {kind}.")
    for attempt in range(2):
        try:
            with transaction.atomic():
                return _upsert_batch(organization, spec, prepared)
        except IntegrityError:
            # Another request created one of these rows between our read and our write;
            # the second pass sees it and updates instead.
            if attempt:
                raise
    raise AssertionError("unreachable")


def _prepare(kind: UpsertKind, items: list, *, blank_unsets: bool) -> PreparedBatch:
    results: list[ItemResult | None] = [None] * len(items)
    cleaned: dict[int, dict] = {}
    seen: dict[object, int] = {}
    for index, item in enumerate(items):
        data, errors = _clean_item(kind, item, blank_unsets=blank_unsets)
        # With blank_unsets no value is BLANK; otherwise the key ignores the BLANK ones.
        key = kind.key(
            data if blank_unsets else {k: v for k, v in data.items() if v is not cleaning.BLANK}
        )
        identities = [key]
        if kind is CONTACTS and data.get("email") and data.get("external_id"):
            identities.append(data["email"])
        if not errors:
            for identity in identities:
                if identity in seen:
                    errors["external_id" if kind is not USAGE else "date"] = [
                        f"“{identity if not isinstance(identity, tuple) else kind.label(data)}” "
                        f"appears twice in this batch (first at item {seen[identity]})."
                    ]
                    break
            else:
                for identity in identities:
                    seen[identity] = index
        if errors:
            results[index] = ItemResult(index, "error", key=kind.label(data), errors=errors)
        else:
            cleaned[index] = data
    return PreparedBatch(kind.name, results, cleaned)


def _upsert_batch(organization, kind: UpsertKind, prepared: PreparedBatch) -> UpsertReport:
    moment = now()
    # Copies: a retry after an IntegrityError starts again from the prepared batch.
    results = list(prepared.results)
    cleaned = {index: dict(data) for index, data in prepared.cleaned.items()}
    refs = _resolve_refs(organization, list(cleaned.values()))
    for index, data in list(cleaned.items()):
        errors = {}
        for name, table in refs.items():
            value = data.get(name)
            if value in (None, cleaning.BLANK):
                continue
            if value not in table:
                errors[name] = [REF_MESSAGES[name].format(value)]
            else:
                data[f"_{name}"] = table[value]
        if errors:
            results[index] = ItemResult(index, "error", key=kind.label(data), errors=errors)
            del cleaned[index]
        elif kind is USAGE:
            data["account_id"] = data["_account_external_id"]

    mentioned = set().union(*cleaned.values()) if cleaned else set()
    update_fields = _update_fields(kind, mentioned)
    existing = _existing(organization, kind, list(cleaned.values()), update_fields)
    to_write: list[tuple[int, dict, bool]] = []
    required = [name for name, spec in kind.fields.items() if spec.required_on_create]
    written: dict[int, int] = {}  # id of an existing row → the item that updates it
    for index, data in cleaned.items():
        row, conflict = _match_existing(kind, existing, data)
        if conflict:
            field_name, message = conflict
            results[index] = ItemResult(
                index, "error", key=kind.label(data), errors={field_name: [message]}
            )
            continue
        is_new = row is None
        if is_new:
            missing = [
                name
                for name in required
                if data.get(name) is None or data.get(name) is cleaning.BLANK
            ]
            if missing:
                results[index] = ItemResult(
                    index,
                    "error",
                    key=kind.label(data),
                    errors={name: [f"{name} is required for a new record."] for name in missing},
                )
                continue
            row = {"organization_id": organization.pk, "created_at": moment}
        elif row["id"] in written:
            # A contact named by its email in one item and its external_id in another.
            results[index] = ItemResult(
                index,
                "error",
                key=kind.label(data),
                errors={
                    "email" if data.get("email") else "external_id": [
                        f"This is the contact of item {written[row['id']]} again."
                    ]
                },
            )
            continue
        else:
            written[row["id"]] = index
        _apply(kind, row, data, is_new=is_new, moment=moment)
        to_write.append((index, row, is_new))

    if to_write:
        _write(
            kind,
            [row for _, row, is_new in to_write if is_new],
            [row for _, row, is_new in to_write if not is_new],
            update_fields,
        )
    for index, row, is_new in to_write:
        results[index] = ItemResult(
            index,
            "created" if is_new else "updated",
            id=row["id"],
            key=kind.label(cleaned[index]),
        )
    return UpsertReport(results=results)


# --- Deleting and GDPR ---------------------------------------------------------------------


def record_delete(*, organization: Organization, instance: models.Model) -> None:
    if instance.organization_id != organization.id:
        raise ValueError("The record belongs to another organization.")
    if isinstance(instance, Contact):
        raise ValueError("Contacts are erased with contact_erase, which leaves a record.")
    instance.delete()


def contact_export(*, organization: Organization, contact: Contact) -> dict:
    """Everything held about a person: the contact, its tickets, and what every other part
    of the product keeps about them (each contributes through events.personal_data)."""
    data = {
        "contact": {
            "id": contact.pk,
            "external_id": contact.external_id,
            "email": contact.email,
            "name": contact.name,
            "phone": contact.phone,
            "title": contact.title,
            "locale": contact.locale,
            "timezone": contact.timezone,
            "properties": contact.properties,
            "suppressed_reason": contact.suppressed_reason,
            "suppressed_at": contact.suppressed_at,
            "suppression_note": contact.suppression_note,
            "last_surveyed_at": contact.last_surveyed_at,
            "last_responded_at": contact.last_responded_at,
            "created_at": contact.created_at,
            "updated_at": contact.updated_at,
            "account": (
                {"id": contact.account_id, "name": contact.account.name}
                if contact.account_id
                else None
            ),
        },
        "support_tickets": list(
            SupportTicket.objects.filter(organization=organization, contact=contact)
            .order_by("opened_at")
            .values("external_id", "subject", "status", "priority", "opened_at", "closed_at", "url")
        ),
    }
    for section, exporter in events.personal_data_exporters():
        data[section] = exporter(organization=organization, contact=contact)
    return data


@transaction.atomic
def contact_erase(*, organization: Organization, contact: Contact, erased_by: str) -> ErasureRecord:
    """Erases a person: every app drops or anonymises what it holds (events.contact_erasing),
    then the contact row goes. A record without personal data proves it happened."""
    events.contact_erasing.send(sender=Contact, organization=organization, contact=contact)
    SupportTicket.objects.filter(organization=organization, contact=contact).update(contact=None)
    record = ErasureRecord.objects.create(
        organization=organization,
        contact_id=contact.pk,
        email_sha256=hashlib.sha256(contact.email.encode()).hexdigest() if contact.email else "",
        erased_by=erased_by[:200],
    )
    contact.delete()
    return record


# --- Segments ------------------------------------------------------------------------------


def segment_save(
    *,
    organization: Organization,
    name: str,
    rules: dict,
    description: str = "",
    segment: Segment | None = None,
    created_by=None,
) -> Segment:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the segment a name."})
    rules = segments.validate_rules(rules)
    clash = Segment.objects.filter(organization=organization, name__iexact=name)
    if segment is not None:
        clash = clash.exclude(pk=segment.pk)
    if clash.exists():
        raise ValidationError({"name": f"A segment named “{name}” exists already."})
    if segment is None:
        segment = Segment(organization=organization, created_by=created_by)
    segment.name = name
    segment.description = description.strip()
    segment.rules = rules
    segment.updated_at = now()
    segment.save()
    return segment


def segment_delete(*, organization: Organization, segment: Segment) -> None:
    segment.delete()
