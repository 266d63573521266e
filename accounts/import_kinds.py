"""What a CSV import can hold: one registered kind per thing a file can fill.

accounts' own kinds (accounts, contacts, support tickets) are registered at the end of this
module, with `parse_when`, the date reader every kind uses; another app registers its own
from its AppConfig.ready() (responses registers "responses"), so accounts never imports the
apps that build on it. The upload form, the mapping page, the
progress page and the error report work for every kind registered here.

A kind's two callables split a chunk of rows the way the importer overlaps its work:
`prepare(items)` cleans a chunk without touching the database (it runs in the reader
thread while the previous chunk is written; a kind may also give `prepare_columns`, the
same for a chunk given column by column, which contacts do to clean a whole column at a
time), and `write(organization, prepared)` saves it
and returns an object whose `results` hold one result per item, in order, each with
`status` ("created" | "updated" | "error"), `key` and `errors` ({field: [message]}).
"""

import dataclasses
import email.utils
import functools
import json
import operator
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import models
from django.utils.dateparse import parse_datetime

from accounts import cleaning, services
from accounts.models import Contact, ImportKind, SuppressionReason
from nps_platform.models import Organization


@dataclass(frozen=True)
class ImportKindSpec:
    name: str  # stored in ImportJob.kind
    label: str  # "Accounts", "Responses"
    fields: tuple[str, ...]  # what a column can be mapped to, besides properties.<key>
    identity: tuple[str, ...]  # one of these must be mapped: it identifies a row
    prepare: Callable  # (items: list[dict]) -> prepared batch, no database
    write: Callable  # (organization, prepared) -> object with .results
    # What prepare does, for a chunk given column by column ({field: cells}): an importer
    # that reads a file by columns uses it when a kind has it.
    prepare_columns: Callable | None = None
    # Whether a chunk may be written while the one before commits, on another connection
    # (PostgreSQL). It may when every row a chunk creates has an identity a unique index
    # keeps (a row created meanwhile is refused, and the write tries again), the results
    # give the id of each row read and written ("updated"), identity conflicts are errors
    # on `identity` fields, and the prepared batch's `results` are the items refused while
    # preparing: the importer then writes a chunk again when it may have read rows the
    # chunk before changed.
    overlapping_chunks: bool = False
    synonyms: dict[str, list[str]] = field(default_factory=dict)  # field → other names
    required: tuple[str, ...] = ()  # must be mapped, besides the identity
    required_on_create: tuple[str, ...] = ()  # needed for new rows (help box only)
    field_help: dict[str, str] = field(default_factory=dict)  # field → what it takes
    model: type[models.Model] | None = None  # the table the import fills (statistics)
    unmatched_to_properties: bool = False  # unmatched columns default to properties.<key>
    results_url: str = "accounts:list"  # where "Go to …" leads when it is done
    results_label: str = "the accounts"
    description: str = ""  # one line for the upload page


_KINDS: dict[str, ImportKindSpec] = {}


def register(spec: ImportKindSpec) -> ImportKindSpec:
    """Adds (or replaces, on a reload) the kind `spec.name`."""
    if len(spec.name) > 20:
        raise ValueError(f"Import kind names fit in 20 characters: {spec.name!r}.")
    _KINDS[spec.name] = spec
    return spec


def get(name: str) -> ImportKindSpec:
    """The kind named `name`; KeyError when none is registered."""
    return _KINDS[name]


def all_kinds() -> list[ImportKindSpec]:
    """Every registered kind, in the order they were registered."""
    return list(_KINDS.values())


def label_of(name: str) -> str:
    spec = _KINDS.get(name)
    return spec.label if spec else name.replace("_", " ").capitalize()


# --- Dates as exports write them -------------------------------------------------------------

# Month names, only tried on text with letters in it (strptime is slow to fail).
_NAMED_MONTH_FORMATS = (
    "%B %d, %Y %I:%M %p",
    "%B %d, %Y %H:%M",
    "%B %d, %Y",
    "%b %d, %Y %I:%M %p",
    "%b %d, %Y",
    "%d %B %Y %H:%M",
    "%d %B %Y",
    "%d %b %Y %H:%M",
    "%d %b %Y",
)
_TIME = r"(?:[ T,]+(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?\s*(?P<half>[AaPp][Mm])?)?"
_NUMERIC_DATES = (
    # 03/05/2024 (US: month first, unless the first number cannot be a month)
    re.compile(r"^(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>\d{4})" + _TIME + "$"),
    re.compile(r"^(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})" + _TIME + "$"),  # 05.03.2024
    re.compile(r"^(?P<y>\d{4})/(?P<m>\d{1,2})/(?P<d>\d{1,2})" + _TIME + "$"),  # 2024/03/05
    re.compile(r"^(?P<y>\d{4})年(?P<m>\d{1,2})月(?P<d>\d{1,2})日" + _TIME + "$"),
)
_ZONE_WORD = re.compile(r"\s*\b(UTC|GMT)$", re.IGNORECASE)
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)


def _numeric_date(text: str) -> datetime | None:
    for pattern in _NUMERIC_DATES:
        if match := pattern.match(text):
            parts = match.groupdict()
            if "a" in parts:
                first, second = int(parts["a"]), int(parts["b"])
                month, day = (first, second) if first <= 12 else (second, first)
            else:
                month, day = int(parts["m"]), int(parts["d"])
            hour = int(parts["H"] or 0)
            if parts["half"]:
                hour = hour % 12 + (12 if parts["half"].lower() == "pm" else 0)
            try:
                return datetime(
                    int(parts["y"]), month, day, hour, int(parts["M"] or 0), int(parts["S"] or 0)
                )
            except ValueError:
                return None
    return None


def parse_when(value) -> datetime:
    """A moment as exports write it, timezone-aware: ISO 8601, Unix seconds or milliseconds
    (Delighted's API), "2024-03-05 14:22:01 UTC", US "03/05/2024 2:22 PM" (day first when
    the first number cannot be a month, 13/05/2024), German "05.03.2024 14:22",
    "March 5, 2024", "5 Mar 2024", RFC 2822 and Japanese "2024年3月5日". A time without a zone
    is UTC. Raises ValueError with a message a person can act on."""
    raw = cleaning._as_text(value)
    result = None
    if re.fullmatch(r"\d{9,13}(\.\d+)?", raw):
        seconds = float(raw) / (1000 if len(raw.split(".")[0]) == 13 else 1)
        result = datetime.fromtimestamp(seconds, tz=UTC)
    text = _ZONE_WORD.sub("+00:00" if re.search(r"\d:\d\d$", _ZONE_WORD.sub("", raw)) else "", raw)
    text = text.strip()
    if result is None:
        try:
            result = parse_datetime(text.replace(" +", "+"))
        except ValueError:
            result = None
    if result is None:
        result = _numeric_date(text)
    if result is None and re.search(r"[A-Za-z]", text):
        for pattern in _NAMED_MONTH_FORMATS:
            try:
                result = datetime.strptime(text, pattern)
                break
            except ValueError:
                continue
    if result is None and "," in raw:
        try:
            result = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            result = None
    if result is None:
        raise ValueError(
            f"“{raw}” is not a date we can read; use ISO 8601 (2024-03-05T14:22:00Z) or MM/DD/YYYY."
        )
    if result.tzinfo is None:
        result = result.replace(tzinfo=UTC)
    if result < EARLIEST:
        raise ValueError(f"“{raw}” is before {EARLIEST.year}: check the date.")
    return result


# --- Accounts, contacts and support tickets --------------------------------------------------

# Other names people give these columns, written as a person would; matched normalised.
ACCOUNT_SYNONYMS = {
    "external_id": ["account id", "id", "customer id", "account external id"],
    "name": ["company", "account name", "account", "company name", "customer"],
    "domain": ["website", "url", "web"],
    "arr": ["annual revenue", "annual recurring revenue"],
    "owner_email": ["owner", "csm", "account owner", "csm email", "owner email"],
    "signed_up_on": ["signup date", "sign up date", "customer since", "created"],
    "renewal_date": ["renewal", "renews on"],
    "health_score": ["health"],
    "lifecycle_stage": ["stage", "lifecycle"],
    "size": ["company size", "employees", "headcount"],
    "churned_at": ["churned", "churn date"],
}
# Besides a CRM's names, a Delighted people export's ("Email", "Name", "Phone number",
# "Unsubscribed at", "Bounced at", a status column): its person id is Delighted's own, not
# the CRM's, so it is not taken for external_id.
CONTACT_SYNONYMS = {
    "email": [
        "email address", "e-mail", "e-mail address", "mail", "person email", "person_email",
        "respondent email", "customer email",
    ],
    "external_id": ["contact id", "id", "contact external id"],
    "name": ["full name", "contact name", "person name", "person_name", "respondent name"],
    "title": ["job title", "role", "position"],
    "account_external_id": ["account id", "company id", "account external id"],
    "locale": ["language", "lang", "person locale"],
    "timezone": ["time zone", "tz"],
    "phone": ["phone number", "telephone", "mobile", "person phone number", "phone_number"],
    "suppressed_reason": [
        "suppressed", "suppression reason", "status", "state", "subscription status",
        "email status", "person status",
    ],
    "unsubscribed_at": [
        "unsubscribed", "unsubscribed on", "unsubscribe date", "unsubscribed date",
        "opted out at", "opted out",
    ],
    "bounced_at": ["bounced", "bounced on", "bounce date", "bounced date"],
}  # fmt: skip
TICKET_SYNONYMS = {
    "external_id": ["ticket id", "id", "ticket external id"],
    "account_external_id": ["account id", "account external id"],
    "contact_email": ["requester email", "requester", "contact"],
    "opened_at": ["created", "created at", "opened", "opened on"],
    "closed_at": ["solved at", "closed", "solved", "closed at"],
    "url": ["link", "ticket url"],
    "subject": ["title", "summary"],
}
# Kept for readers of the old name: kind → field → other names.
SYNONYMS = {"accounts": ACCOUNT_SYNONYMS, "contacts": CONTACT_SYNONYMS, "tickets": TICKET_SYNONYMS}


def _upsert_prepare(kind: str):
    def prepare(items: list[dict]):
        return services.records_prepare(kind=kind, items=items, blank_unsets=True)

    return prepare


def _upsert_write(kind: str):
    def write(organization: Organization, prepared):
        return services.records_upsert(organization=organization, kind=kind, prepared=prepared)

    return write


# A status cell of a people export, and what it means here; "active" suppresses nothing (and
# an import never lifts a suppression).
_STATUS_WORDS = {
    "unsubscribed": SuppressionReason.UNSUBSCRIBED,
    "unsubscribe": SuppressionReason.UNSUBSCRIBED,
    "opted out": SuppressionReason.UNSUBSCRIBED,
    "opted_out": SuppressionReason.UNSUBSCRIBED,
    "bounced": SuppressionReason.BOUNCED,
    "bounce": SuppressionReason.BOUNCED,
    "hard bounce": SuppressionReason.BOUNCED,
    "complained": SuppressionReason.COMPLAINED,
    "spam": SuppressionReason.COMPLAINED,
    "marked as spam": SuppressionReason.COMPLAINED,
}
_NOT_SUPPRESSED = {"active", "subscribed", "ok", "none", "-", "no", "false", "0"}


@dataclass
class _ContactsBatch:
    batch: services.PreparedBatch
    suppressed_on: dict  # item index → (reason, when) read from the file

    @property
    def results(self) -> list:
        """The items refused while preparing (ItemResult), None for the others."""
        return self.batch.results


def _contacts_prepare(items: list[dict]) -> _ContactsBatch:
    """_contacts_prepare_columns of rows given as dicts (a missing cell is a blank one)."""
    names = dict.fromkeys(name for item in items for name in item)
    return _contacts_prepare_columns({name: [item.get(name) for item in items] for name in names})


def _contacts_prepare_columns(columns: dict[str, list]) -> _ContactsBatch:
    """The contacts upsert's cleaning of a chunk given column by column (field → cells),
    after a people export's suppression columns became suppressed_reason: a date in
    unsubscribed_at or bounced_at suppresses the contact with that reason and keeps the date
    as suppressed_at; a status of "active" changes nothing."""
    size = len(next(iter(columns.values()), ()))
    columns = dict(columns)
    errors, suppressed_on = _read_suppressions(columns, size)
    batch = _prepare_contacts(columns, size)
    for index, messages in errors.items():
        data = batch.cleaned.pop(index, None) or _row(columns, index)
        key = data.get("email") or data.get("external_id")
        batch.results[index] = services.ItemResult(
            index, "error", key=str(key or ""), errors=messages
        )
    return _ContactsBatch(batch, suppressed_on)


_SUPPRESSION_COLUMNS = ("suppressed_reason", "unsubscribed_at", "bounced_at")


def _read_suppressions(columns: dict[str, list], size: int) -> tuple[dict, dict]:
    """Turns the status and the dates of a people export into suppressed_reason and
    suppression_note, in place (the date columns go), row by row where one of them has
    something: (errors by row, {row: (reason, when)})."""
    errors: dict[int, dict] = {}
    suppressed_on: dict[int, tuple[str, datetime]] = {}
    present = [name for name in _SUPPRESSION_COLUMNS if name in columns]
    if not present:
        return errors, suppressed_on
    rows = sorted({n for name in present for n, value in enumerate(columns[name]) if value})
    for name in ("suppressed_reason", "suppression_note"):
        columns[name] = list(columns.get(name) or [""] * size)
    dates = {name: columns.pop(name) for name in ("bounced_at", "unsubscribed_at")
             if name in columns}  # fmt: skip
    for index in rows:
        status = str(columns["suppressed_reason"][index] or "").strip().lower()
        if status in _NOT_SUPPRESSED:
            columns["suppressed_reason"][index] = ""
        elif status in _STATUS_WORDS:
            columns["suppressed_reason"][index] = _STATUS_WORDS[status]
        for name, reason in (
            ("bounced_at", SuppressionReason.BOUNCED),
            ("unsubscribed_at", SuppressionReason.UNSUBSCRIBED),
        ):
            value = dates[name][index] if name in dates else None
            if cleaning.is_blank(value):
                continue
            try:
                when = parse_when(value)
            except ValueError as exc:
                errors.setdefault(index, {})[name] = [str(exc)]
                continue
            if index in suppressed_on:
                continue  # both: bounced wins, the address does not work at all
            if cleaning.is_blank(columns["suppressed_reason"][index]):
                columns["suppressed_reason"][index] = reason
            if cleaning.is_blank(columns["suppression_note"][index]):
                columns["suppression_note"][index] = (
                    f"{SuppressionReason(reason).label} on {when:%Y-%m-%d} (imported)."
                )
            suppressed_on[index] = (columns["suppressed_reason"][index], when)
    return errors, suppressed_on


def _row(columns: dict[str, list], index: int) -> dict:
    return {name: values[index] for name, values in columns.items()}


# Cleans a properties.<key> cell: any text.
_PROPERTY = cleaning.text(sys.maxsize)


def _prepare_contacts(columns: dict[str, list], size: int) -> services.PreparedBatch:
    """services.records_prepare(kind="contacts", items=…, blank_unsets=True) of the `size`
    rows these columns (input field → cells) hold, cleaned a column at a time
    (cleaning.clean_column): the same PreparedBatch, with most of the work in C-level loops.

    A row with a cell the column checks refuse, or without an email or external_id, is
    prepared alone by records_prepare, so its errors read exactly as the API's; then the
    identities the batch holds twice are refused, and the staging texts built (on
    PostgreSQL) a column at a time."""
    kind, fields = services.CONTACTS, services.CONTACTS.fields
    values: dict[str, list] = {}  # field → each row's cleaned value, None where blank
    properties: dict[str, list] = {}  # properties.<key> → the same
    refused: set[int] = set()
    for name, cells in columns.items():
        head, _, key = name.partition(".")
        if key and head in services.JSON_FIELDS and head in fields:
            properties[key], bad = cleaning.clean_column(_PROPERTY, cells)
        elif name in fields and name not in services.JSON_FIELDS:
            values[name], bad = cleaning.clean_column(fields[name].clean, cells)
        else:  # the properties as JSON, or a field contacts do not have: row by row
            bad = range(size)
        refused.update(bad)
    nothing = [None] * size
    emails, external_ids = values.get("email", nothing), values.get("external_id", nothing)
    if None in emails and None in external_ids:  # no identity: records_prepare says so
        refused.update(n for n in range(size) if emails[n] is None and external_ids[n] is None)
    rows = _row_dicts(values, size)
    if properties:
        for n, row in enumerate(rows):
            given = {key: cells[n] for key, cells in properties.items() if cells[n] is not None}
            if given:
                row["properties"] = given
    results: list = [None] * size
    for index in sorted(refused):
        alone = services.records_prepare(
            kind=kind.name, items=[_row(columns, index)], blank_unsets=True
        )
        if (result := alone.results[0]) is not None:
            results[index] = services.ItemResult(
                index, "error", key=result.key, errors=result.errors
            )
            continue
        rows[index] = alone.cleaned[0]
        for name in fields:  # the columns the staging texts are built from
            if rows[index].get(name) is not None:
                values.setdefault(name, list(nothing))[index] = rows[index][name]
    _refuse_repeated_identities(rows, results, values)
    kept = [index for index in range(size) if results[index] is None]
    cleaned = dict(zip(kept, map(rows.__getitem__, kept), strict=True))
    staged = labels = None
    if services.writes_staged(kind):  # what the write needs that no database answer changes
        if len(kept) < size:
            values = {name: list(map(cells.__getitem__, kept)) for name, cells in values.items()}
        staged = dict(zip(kept, staged_texts(values, cleaned.values(), len(kept)), strict=True))
        emails = values.get("email", [None] * len(kept))
        external_ids = values.get("external_id", [None] * len(kept))
        labels = dict(zip(kept, map(_label, emails, external_ids), strict=True))
    return services.PreparedBatch(kind.name, results, cleaned, staged, labels)


def _label(email: str | None, external_id: str | None) -> str:
    return email or external_id or ""  # services.CONTACTS.label, from the columns


def _row_dicts(values: dict[str, list], size: int) -> list[dict]:
    """Each row's cleaned values by field, its blank cells (None) left out."""
    if not values:
        return [{} for _ in range(size)]
    names, columns = list(values), list(values.values())
    pairs = map(functools.partial(zip, names), zip(*columns, strict=True))
    if all(cells.count(None) == len(cells) - sum(map(bool, cells)) for cells in columns):
        # Every value is truthy (text, nearly always): the blanks are the falsy ones.
        return list(map(dict, map(functools.partial(filter, operator.itemgetter(1)), pairs)))
    return [{name: value for name, value in row if value is not None} for row in pairs]


def _refuse_repeated_identities(rows: list[dict], results: list, values: dict) -> None:
    """Refuses a row whose email or external_id an earlier row of the batch has, as
    records_prepare does: the first one wins. A contact's identities are its external_id
    and its email, so a batch without repeats has all of them distinct."""
    given = [n for n, result in enumerate(results) if result is None]
    identities = [
        value
        for name in ("external_id", "email")
        if name in values
        for value in map(values[name].__getitem__, given)
        if value is not None
    ]
    if len(set(identities)) == len(identities):
        return
    seen: dict[str, int] = {}
    for index in given:
        row = rows[index]
        key = services.CONTACTS.key(row)
        mine = [key, row["email"]] if row.get("email") and row.get("external_id") else [key]
        if repeated := next((identity for identity in mine if identity in seen), None):
            results[index] = services.ItemResult(
                index,
                "error",
                key=services.CONTACTS.label(row),
                errors={
                    "external_id": [
                        f"“{repeated}” appears twice in this batch "
                        f"(first at item {seen[repeated]})."
                    ]
                },
            )
        else:
            seen.update(dict.fromkeys(mine, index))


def staged_texts(values: dict[str, list], rows, size: int) -> list[tuple[str, str, bool]]:
    """services.staged_texts of the kept rows, built a column at a time from their
    cleaned values (`values`, field → value or None) and, for the properties, their rows:
    (the staging cells, the new row's cells, whether it is suppressed) of each row."""
    null, nothing = services.NULL_CELL, [None] * size
    stage, new = [], []
    for column in services.staged_columns(services.CONTACTS):
        if column.kind == "ref":
            continue
        if column.kind == "json":
            given = [row.get(column.name) for row in rows]
            cells = [null if value is None else services.copy_cell(json.dumps(value))
                     for value in given]  # fmt: skip
            stage.append(cells)
            pairs = zip(given, cells, strict=True)
            new.append([cell if value is not None else "{}" for value, cell in pairs])
            continue
        given = values.get(column.name, nothing)
        text = "".join(filter(None, given))
        if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
            cells = list(map(services.copy_cell, given))
        else:
            cells = [null if value is None else value for value in given]
        stage.append(cells)
        if column.nullable and "" in cells:
            cells = [null if cell == "" else cell for cell in cells]
        elif not column.nullable and null in cells:
            cells = ["" if cell == null else cell for cell in cells]
        new.append(cells)
    # suppressed: a reason is given (cleaned, it is never an empty text)
    suppressed = map(bool, values.get("suppressed_reason", nothing))
    stage_lines = map("\t".join, zip(*stage, strict=True))
    new_lines = map("\t".join, zip(*new, strict=True))
    return list(zip(stage_lines, new_lines, suppressed, strict=True))


def _contacts_write(organization: Organization, prepared: _ContactsBatch):
    """The contacts upsert, then the suppression dates the file gave (one query)."""
    report = services.records_upsert(
        organization=organization, kind="contacts", prepared=prepared.batch
    )
    suppressed_on = prepared.suppressed_on
    dated = suppressed_on and {
        result.id: suppressed_on[result.index]
        for result in report.results
        if result.status != "error" and result.index in suppressed_on
    }
    if dated:
        contacts = list(
            Contact.objects.filter(organization=organization, pk__in=dated).only(
                "id", "suppressed_reason", "suppressed_at"
            )
        )
        changed = []
        for contact in contacts:
            reason, when = dated[contact.pk]
            if contact.suppressed_reason == reason and contact.suppressed_at != when:
                contact.suppressed_at = when
                changed.append(contact)
        if changed:
            Contact.objects.bulk_update(changed, ["suppressed_at"])
    return report


def _upsert_kind(kind: str, label: str, synonyms: dict, **extra) -> ImportKindSpec:
    upsert = services.KINDS[kind]
    return ImportKindSpec(
        name=kind,
        label=label,
        fields=tuple(upsert.fields),
        identity=tuple(services.REQUIRED_KEYS[kind][0]),
        prepare=_upsert_prepare(kind),
        write=_upsert_write(kind),
        synonyms=synonyms,
        required_on_create=tuple(
            name for name, spec in upsert.fields.items() if spec.required_on_create
        ),
        model=upsert.model,
        overlapping_chunks=True,
        **extra,
    )


register(_upsert_kind(ImportKind.ACCOUNTS, "Accounts", ACCOUNT_SYNONYMS))
register(
    dataclasses.replace(
        _upsert_kind(ImportKind.CONTACTS, "Contacts", CONTACT_SYNONYMS),
        fields=(*services.KINDS["contacts"].fields, "unsubscribed_at", "bounced_at"),
        prepare=_contacts_prepare,
        prepare_columns=_contacts_prepare_columns,
        write=_contacts_write,
        field_help={
            "suppressed_reason": "unsubscribed, bounced or complained; active changes nothing",
            "unsubscribed_at": "a date: the contact is suppressed as unsubscribed since then",
            "bounced_at": "a date: the contact is suppressed as bounced since then",
        },
        description="A CRM's contacts, or a Delighted people export: its unsubscribes and "
        "bounces become suppressions.",
    )
)
register(_upsert_kind(ImportKind.TICKETS, "Support tickets", TICKET_SYNONYMS))
