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

MAX_BATCH = 1000  # items per call of records_upsert (the REST API's limit)
# Rows a CSV import prepares and upserts per transaction: bigger batches spread the fixed
# cost of a batch (its statements, its commit) thinner.
IMPORT_BATCH = 5000


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
    """What BLANK sets the column (attname) `target` to: NULL where it may be, else ""."""
    model_field = next(f for f in _columns(model) if f.attname == target)
    return None if model_field.null else ""


def _clean_item(kind: UpsertKind, item, *, blank_unsets: bool, memo: dict | None = None):
    """(cleaned data by input name, errors by input name) for one raw item.

    `memo` ((field, text) → cleaned value, shared by one batch's items) saves cleaning the
    same text twice: a file repeats its plans, titles, locales and accounts row after row."""
    if memo is None:
        memo = {}
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
        if type(value) is str and (name, value) in memo:
            data[name] = memo[name, value]
            continue
        try:
            data[name] = spec.clean(value)
            if type(value) is str and name not in JSON_FIELDS:  # a dict is not shared
                memo[name, value] = data[name]
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
    for name in ("account_external_id", "owner_email", "contact_email", "contact_external_id"):
        values = {data[name] for data in cleaned if name in data}
        values.discard(None)
        values.discard(cleaning.BLANK)
        if values:
            wanted[name] = values
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
        # An API item's empty value (BLANK) names no contact.
        externals = {d["external_id"] for d in rows if _given(d.get("external_id"))}
        emails = {d["email"] for d in rows if _given(d.get("email"))}
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


def _same_values(before: dict, after: dict) -> bool:
    """Whether _apply changed nothing of a loaded row but its updated_at."""
    return all(
        name == "updated_at" or (name in before and before[name] == value)
        for name, value in after.items()
    )


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


# --- The staged write (PostgreSQL) ----------------------------------------------------------
#
# Contacts on PostgreSQL are not read whole, merged in Python (_apply) and written back.
# New rows are copied straight into the table (COPY, with ids reserved from its sequence
# first); the matched rows' cleaned values go into a staging table with COPY, then one
# UPDATE … FROM changes those whose values differ. The merge rules are _apply's, written
# as SQL (a new row takes '' or NULL where the staged value is NULL, as the model would):
#
#   staged value   a text column           a nullable column    properties
#   NULL           keeps the row's value   keeps it             keeps them
#   '' (BLANK)     sets ''                 sets NULL            —
#   a value        sets it                 sets it              merged in (row || value)
#
# and suppressed_at follows suppressed_reason as in _apply. A row whose values would not
# change is not written at all (its updated_at stays): re-importing a file writes nothing.
# Only identities are read back (_existing_identities), so the rules that need them (an
# email that belongs to another contact, the same contact twice) stay in Python. What needs
# no database answer (each item's cells in COPY's text format, its result's key) is built
# by records_prepare, which an importer runs in its reading thread while the previous
# chunk is written: the writing thread only adds ids and references.

STAGE_TABLE = "accounts_contact_upsert_stage_v2"  # its columns: _staged_sql


def writes_staged(kind: UpsertKind) -> bool:
    return kind is CONTACTS and connection.vendor == "postgresql"


def _existing_identities(organization, rows: list[dict]) -> dict:
    """The contacts the batch names, by ("external_id", …) and ("email", …): id and
    identities only, which is all the matching needs."""
    lists = {}
    for name in ("external_id", "email"):
        values = {d[name] for d in rows if name in d}
        values.discard(None)
        values.discard(cleaning.BLANK)  # an API item's empty value names no contact
        if values:
            lists[name] = values
    if not lists:
        return {}
    found = {}
    matches = Contact.objects.filter(_any_of(Contact, **lists), organization=organization)
    for pk, external_id, email in matches.order_by().values_list("id", "external_id", "email"):
        contact = {"id": pk, "external_id": external_id, "email": email}
        if external_id:
            found[("external_id", external_id)] = contact
        if email:
            found[("email", email)] = contact
    return found


@dataclass(frozen=True)
class _StagedColumn:
    name: str  # the input field
    column: str  # the model's column
    kind: str  # "text" | "ref" | "json"
    nullable: bool


def staged_columns(kind: UpsertKind) -> list[_StagedColumn]:
    """The staging table's columns after idx and id: the references, then the text ones,
    then the JSON ones (the order _staged_lines writes them in)."""
    columns = []
    by_attname = {f.attname: f for f in _columns(kind.model)}
    for name, spec in kind.fields.items():
        model_field = by_attname[spec.target]
        column_kind = "json" if name in JSON_FIELDS else "ref" if spec.ref else "text"
        columns.append(_StagedColumn(name, model_field.column, column_kind, model_field.null))
    order = {"ref": 0, "text": 1, "json": 2}
    return sorted(columns, key=lambda column: order[column.kind])


NULL_CELL = "\\N"  # COPY's text format for NULL
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_cell(value) -> str:
    """A cell of COPY's text format: \\N for NULL, the text with its specials escaped."""
    if value is None:
        return NULL_CELL
    if value is cleaning.BLANK:  # an API item's empty value is staged as ''
        return ""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def staged_texts(kind: UpsertKind, cleaned: dict) -> dict:
    """Item index → what its rows need that no database answer changes, in COPY's text
    format: (its staging cells, its cells as a new row, whether a new row is suppressed).
    The text and JSON cells, tab-separated: built while preparing, so the write only adds
    each row's idx or id and references (_staged_lines, _new_lines). Run once per item, so
    kept to C-level calls where the values need no escaping (nearly always)."""
    columns = staged_columns(kind)
    texts = [c.name for c in columns if c.kind == "text"]
    nullable = [c.nullable for c in columns if c.kind == "text"]
    jsons = [c.name for c in columns if c.kind == "json"]
    # Where a new row's text cell differs from the staging one: NULLIF(…, '') for a
    # nullable column, COALESCE(…, '') for the others (as the UPDATE reads them).
    null_if_empty = [n for n, is_nullable in enumerate(nullable) if is_nullable]
    empty_if_null = [n for n, is_nullable in enumerate(nullable) if not is_nullable]
    cell, dumps, blank, null = copy_cell, json.dumps, cleaning.BLANK, NULL_CELL
    staged = {}
    for index, data in cleaned.items():
        values = list(map(data.get, texts))
        present = [value for value in values if value is not None]
        probe = "".join(present) if blank not in present else "\\"
        if "\\" in probe or "\t" in probe or "\n" in probe or "\r" in probe:
            stage = [cell(value) for value in values]  # escapes, and BLANK → ''
        else:
            stage = [null if value is None else value for value in values]
        new = list(stage)
        for n in null_if_empty:
            if new[n] == "":
                new[n] = null
        for n in empty_if_null:
            if new[n] == null:
                new[n] = ""
        for name in jsons:
            value = data.get(name)
            text = null if value is None else cell(dumps(value))
            stage.append(text)
            new.append("{}" if value is None else text)
        reason = data.get("suppressed_reason")
        suppressed = reason is not None and reason is not blank and reason != ""
        staged[index] = ("\t".join(stage), "\t".join(new), suppressed)
    return staged


def _ref_cells(refs, data, *, flags: bool) -> list[str]:
    cells = []
    for name, resolved in refs:
        value = data.get(resolved)
        if flags:
            cells.append("t" if name in data else "f")
        cells.append(NULL_CELL if value is None else str(value))
    return cells


def _staged_lines(columns: list[_StagedColumn], writes, staged: dict) -> list[str]:
    """The staging rows in COPY's text format, one line per (item index, cleaned data,
    matched row): idx, the matched id, each reference's flag (whether the item sets it)
    and resolved id, then the item's prepared cells (staged_texts)."""
    refs = [(c.name, f"_{c.name}") for c in columns if c.kind == "ref"]
    return [
        "\t".join(
            [str(position), str(row["id"]), *_ref_cells(refs, data, flags=True), staged[index][0]]
        )  # fmt: skip
        for position, (index, data, row) in enumerate(writes)
    ]


def _new_lines(columns: list[_StagedColumn], writes, staged: dict, ids, head: str, moment):
    """New rows in COPY's text format for _staged_sql's new-row COPY: id, `head` (the
    organization and the times), suppressed_at, the references, then the prepared cells."""
    refs = [(c.name, f"_{c.name}") for c in columns if c.kind == "ref"]
    when = moment.isoformat()
    lines = []
    append = lines.append
    if len(refs) == 1:  # contacts: the account
        ((_, resolved),) = refs
        for pk, (index, data, _) in zip(ids, writes, strict=True):
            _, text, suppressed = staged[index]
            ref = data.get(resolved)
            append(f"{pk}\t{head}\t{when if suppressed else NULL_CELL}\t"
                   f"{NULL_CELL if ref is None else ref}\t{text}")  # fmt: skip
        return lines
    for pk, (index, data, _) in zip(ids, writes, strict=True):
        _, text, suppressed = staged[index]
        cells = _ref_cells(refs, data, flags=False)
        append("\t".join([str(pk), head, when if suppressed else NULL_CELL, *cells, text]))
    return lines


def _staged_sql(kind: UpsertKind, columns: list[_StagedColumn]) -> tuple[str, str, str, str, str]:
    """(CREATE of the staging table, its COPY, the reservation of ids for new rows (takes
    the count), the COPY of new rows (_new_lines), the UPDATE of matched ones (takes
    moment, moment, moment))."""
    quote = connection.ops.quote_name
    table = quote(kind.model._meta.db_table)
    stage_columns = ["idx integer", "id bigint"]
    changed: dict[str, str] = {}  # column → expression of s and t (the existing row)
    for c in columns:
        q = quote(c.column)
        if c.kind == "ref":
            flag = quote(f"{c.name}_set")
            stage_columns += [f"{flag} boolean", f"{q} bigint"]
            changed[q] = f"CASE WHEN s.{flag} THEN s.{q} ELSE t.{q} END"
        elif c.kind == "json":
            stage_columns.append(f"{q} jsonb")
            changed[q] = f"CASE WHEN s.{q} IS NULL THEN t.{q} ELSE t.{q} || s.{q} END"
        else:
            stage_columns.append(f"{q} text")
            if c.nullable:
                changed[q] = f"CASE WHEN s.{q} IS NULL THEN t.{q} ELSE NULLIF(s.{q}, '') END"
            else:
                changed[q] = f"COALESCE(s.{q}, t.{q})"
    # suppressed_at follows suppressed_reason (as in _apply): set when a reason is, kept
    # while it stays, cleared with it.
    reason, at = quote("suppressed_reason"), quote("suppressed_at")
    changed[at] = (
        f"CASE WHEN s.{reason} IS NULL THEN t.{at} WHEN s.{reason} = '' THEN NULL "
        f"ELSE COALESCE(t.{at}, %s::timestamptz) END"
    )
    stage = quote(STAGE_TABLE)
    create = (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ({', '.join(stage_columns)}) "
        "ON COMMIT DELETE ROWS"
    )
    copy = f"COPY {stage} FROM STDIN"
    # New rows go straight into the table (COPY's bulk insert is cheaper than INSERT …
    # SELECT from the staging table), with ids taken from the table's sequence first. Model
    # columns the input does not set take their defaults: none of Contact's
    # (last_surveyed_at, last_responded_at) has one but NULL.
    new_columns = [quote("id"), quote("organization_id"), quote("created_at"),
                   quote("updated_at"), quote("suppressed_at"),
                   *(quote(c.column) for c in columns)]  # fmt: skip
    # MATERIALIZED: looked up once, not once per id.
    reserve = (
        "WITH q AS MATERIALIZED (SELECT pg_get_serial_sequence(%s, 'id')::regclass AS s) "
        "SELECT nextval(q.s) FROM q, generate_series(1, %s)"
    )
    copy_new = f"COPY {table} ({', '.join(new_columns)}) FROM STDIN"
    assignments = ", ".join(f"{q} = {expression}" for q, expression in changed.items())
    update = (
        f"UPDATE {table} AS t SET {assignments}, {quote('updated_at')} = %s::timestamptz "  # noqa: S608
        f"FROM {stage} AS s WHERE t.id = s.id "
        f"AND ({', '.join(f't.{q}' for q in changed)}) IS DISTINCT FROM "
        f"({', '.join(changed.values())})"
    )
    return create, copy, reserve, copy_new, update


def _write_staged(organization, kind: UpsertKind, writes: list[tuple[int, dict, dict]], staged,
                  moment):  # fmt: skip
    """Writes (item index, cleaned data, matched row) triples: a matched row is {"id": …}
    and goes through the staging table; a new one is {}, gets its "id" here and is copied
    straight in. `staged` holds each item's prepared cells (staged_texts)."""
    columns = staged_columns(kind)
    create, copy_sql, reserve, copy_new, update = _staged_sql(kind, columns)
    new = [write for write in writes if "id" not in write[2]]
    matched = [write for write in writes if "id" in write[2]] if len(new) < len(writes) else []
    with connection.cursor() as cursor:
        if new:
            cursor.execute(reserve, [kind.model._meta.db_table, len(new)])
            ids = [pk for (pk,) in cursor.fetchall()]
            head = f"{organization.pk}\t{moment.isoformat()}\t{moment.isoformat()}"
            lines = _new_lines(columns, new, staged, ids, head, moment)
            # A contact created meanwhile by another request breaks a unique index here:
            # the IntegrityError makes records_upsert try again.
            with connection.wrap_database_errors, cursor.cursor.copy(copy_new) as copy:
                # One buffer for the batch: far cheaper than a write_row call per row.
                copy.write("\n".join(lines).encode() + b"\n")
            for (_, _, row), pk in zip(new, ids, strict=True):
                row["id"] = pk
        if matched:
            cursor.execute(create)
            lines = _staged_lines(columns, matched, staged)
            with cursor.cursor.copy(copy_sql) as copy:
                copy.write("\n".join(lines).encode() + b"\n")
            # Unlike _write_postgresql this cannot count the rows it updated (unchanged
            # ones are skipped), so a matched row deleted meanwhile is not noticed: the
            # batch then reads as if it had been written just before that delete.
            cursor.execute(update, [moment, moment, moment])
            # Emptied for the next batch of this transaction (COMMIT empties it as well):
            # TRUNCATE costs the same for any number of rows, DELETE a little per row.
            cursor.execute(f"TRUNCATE {connection.ops.quote_name(STAGE_TABLE)}")


def _given(value) -> bool:
    return value is not None and value is not cleaning.BLANK


@dataclass(frozen=True)
class PreparedBatch:
    """A batch cleaned and checked against itself, before any database work."""

    kind: str
    results: list  # ItemResult for the items already refused, None for the others
    cleaned: dict  # item index → cleaned data
    # Item index → its staging text (staged_texts), for a kind written staged; else None.
    staged: dict | None = None
    labels: dict | None = None  # item index → its result's key, where already known


def records_prepare(*, kind: str, items: Iterable, blank_unsets: bool = False) -> PreparedBatch:
    """The first half of records_upsert, without the database: each item cleaned, and
    identities that appear twice in the batch refused. An importer prepares its next batch
    with it while the current one is being written. It takes batches of any size (a file
    import sends IMPORT_BATCH rows); records_upsert holds `items` to MAX_BATCH."""
    return _prepare(KINDS[kind], list(items), blank_unsets=blank_unsets)


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
    items twice leaves the same state and reports them as updated; a row whose values
    would not change is not written (its updated_at stays). Pass `prepared` (from
    records_prepare) instead of `items` to skip the cleaning done already.
    """
    spec = KINDS[kind]
    if prepared is None:
        items = list(items)
        if len(items) > MAX_BATCH:
            raise ValidationError(f"Send at most {MAX_BATCH} items at once; this has {len(items)}.")
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
    memo: dict = {}
    for index, item in enumerate(items):
        data, errors = _clean_item(kind, item, blank_unsets=blank_unsets, memo=memo)
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
    staged = labels = None
    if writes_staged(kind):  # the write's per-item work that needs no database, done here
        staged = staged_texts(kind, cleaned)
        labels = {index: kind.label(data) for index, data in cleaned.items()}
    return PreparedBatch(kind.name, results, cleaned, staged, labels)


def _upsert_batch(organization, kind: UpsertKind, prepared: PreparedBatch) -> UpsertReport:
    moment = now()
    # Copies: a retry after an IntegrityError starts again from the prepared batch.
    results = list(prepared.results)
    cleaned = {index: dict(data) for index, data in prepared.cleaned.items()}
    refs = _resolve_refs(organization, list(cleaned.values()))
    resolved_as = [(name, table, f"_{name}") for name, table in refs.items()]
    for index, data in list(cleaned.items()):
        errors = {}
        for name, table, resolved in resolved_as:
            value = data.get(name)
            if value is None or value is cleaning.BLANK:
                continue
            if value not in table:
                errors[name] = [REF_MESSAGES[name].format(value)]
            else:
                data[resolved] = table[value]
        if errors:
            results[index] = ItemResult(index, "error", key=kind.label(data), errors=errors)
            del cleaned[index]
        elif kind is USAGE:
            data["account_id"] = data["_account_external_id"]

    staged = writes_staged(kind)
    if staged:
        update_fields = []
        existing = _existing_identities(organization, list(cleaned.values()))
    else:
        mentioned = set().union(*cleaned.values()) if cleaned else set()
        update_fields = _update_fields(kind, mentioned)
        existing = _existing(organization, kind, list(cleaned.values()), update_fields)
    to_write: list[tuple[int, dict, bool]] = []
    required = [name for name, spec in kind.fields.items() if spec.required_on_create]
    written: dict[int, int] = {}  # id of an existing row → the item that updates it
    unchanged: set[int] = set()  # items whose row would not change
    pending = cleaned.items()
    if staged and not existing and not required:
        # A batch of new contacts only (a first import) matches nothing: no rule to check.
        to_write, pending = [(index, {}, True) for index in cleaned], ()
    for index, data in pending:
        row, conflict = _match_existing(kind, existing, data) if existing else (None, None)
        if conflict:
            field_name, message = conflict
            results[index] = ItemResult(
                index, "error", key=kind.label(data), errors={field_name: [message]}
            )
            continue
        is_new = row is None
        if is_new:
            missing = required and [
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
            row = {} if staged else {"organization_id": organization.pk, "created_at": moment}
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
        if not staged:
            before = None if is_new else dict(row)
            _apply(kind, row, data, is_new=is_new, moment=moment)
            if before is not None and _same_values(before, row):
                unchanged.add(index)  # reported as updated, not written: as the staged write
        to_write.append((index, row, is_new))

    if to_write and staged:
        staged_texts = prepared.staged
        if staged_texts is None:
            staged_texts = staged_texts(kind, cleaned)
        _write_staged(
            organization,
            kind,
            [(i, cleaned[i], row) for i, row, _ in to_write],
            staged_texts,
            moment,
        )
    elif to_write:
        _write(
            kind,
            [row for _, row, is_new in to_write if is_new],
            [row for i, row, is_new in to_write if not is_new and i not in unchanged],
            update_fields,
        )
    labels = prepared.labels
    for index, row, is_new in to_write:
        results[index] = ItemResult(
            index,
            "created" if is_new else "updated",
            id=row["id"],
            key=labels[index] if labels is not None else kind.label(cleaned[index]),
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
