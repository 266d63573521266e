"""The "responses" CSV import kind: past answers from a file, a Delighted export as it is.

Registered from ResponsesConfig.ready() into accounts' import kinds, so the upload, the
column mapping, the progress and the error report are the accounts import's. Each chunk:

1. `responses_prepare` (no database; the importer's reader thread): dates read in the many
   ways exports write them (`accounts.import_kinds.parse_when`), account fields and the
   response itself checked by their own cleaners (`services.clean_item`), notes split.
2. `responses_write`: the accounts the rows name are found or created (the contact's own
   account first, then the account id, then the company name), and their fields (plan,
   ARR…) set from the newest answer of the batch, unless the account has a newer answer
   already; missing contacts are created and blank names, locales and accounts filled; the
   answers go through `services.responses_record` (channel "import", `skip_unchanged`),
   the one way a response is recorded; the notes are added once each.

Idempotent: a response's `external_id` is the file's response id, and a note's is a hash of
its text, so importing the same file again creates nothing and reports the rows as updated
(and writes nothing for a row that would not change). Answers older than
settings.IMPORT_FOLLOWUP_MAX_AGE_DAYS are history: they open no follow-up (see
responses_record and events.response_recorded's `historical_ids`).
"""

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q
from django.db.models.functions import Lower

from accounts import cleaning, import_kinds
from accounts import services as account_services
from accounts.import_kinds import parse_when
from accounts.imports import PROPERTIES_PREFIX
from accounts.models import Account, Contact
from nps_platform.models import Organization
from responses import services
from responses.models import Channel, Response, ResponseNote

KIND = "responses"
MAX_NOTE = 10_000

ACCOUNT_FIELDS = (
    "plan", "arr", "industry", "size", "lifecycle_stage", "renewal_date", "signed_up_on",
    "health_score",
)  # fmt: skip
FIELDS = (
    "external_id", "score", "comment", "submitted_at", "email", "contact_external_id",
    "contact_name", "locale", "account_external_id", "account_name", *ACCOUNT_FIELDS, "tags",
    "notes",
)  # fmt: skip

# A Delighted responses export ("Response ID", "Score", "Comment", "Created at", "Email",
# "Name", "Tags", "Notes", then a column per person property), its API's names
# (person_email, created_at, person_properties[plan]) and what other tools call them.
SYNONYMS = {
    "external_id": [
        "response id", "response_id", "id", "survey response id", "delighted response id",
    ],
    "score": ["rating", "nps", "nps score", "likelihood to recommend", "answer", "response score"],
    "comment": ["comments", "feedback", "reason", "response comment", "open answer", "text"],
    "submitted_at": [
        "created at", "created_at", "created", "date", "response date", "response timestamp",
        "responded at", "responded on", "timestamp", "time", "submitted", "submitted on",
        "survey date", "date responded",
    ],
    "email": [
        "email address", "e-mail", "e-mail address", "person email", "person_email",
        "respondent email", "customer email", "mail",
    ],
    "contact_external_id": ["contact id", "contact external id", "customer contact id"],
    "contact_name": ["name", "person name", "person_name", "full name", "respondent name"],
    "locale": ["language", "lang", "person locale"],
    "account_external_id": ["account id", "company id", "customer id", "account external id"],
    "account_name": [
        "company", "company name", "account", "account name", "organization", "organisation",
        "customer",
    ],
    "plan": ["subscription", "tier", "pricing plan", "plan name"],
    "arr": ["annual revenue", "annual recurring revenue", "revenue"],
    "industry": ["sector", "vertical"],
    "size": ["company size", "employees", "headcount"],
    "lifecycle_stage": ["stage", "lifecycle"],
    "signed_up_on": ["customer since", "signup date", "sign up date"],
    "renewal_date": ["renewal", "renews on"],
    "health_score": ["health"],
    "tags": ["tag", "labels", "label"],
    "notes": ["note", "internal notes", "internal note"],
}  # fmt: skip

FIELD_HELP = {
    "external_id": "the response's id in the file (Delighted's Response ID): a re-import "
    "updates it instead of adding it twice",
    "score": "0 to 10",
    "submitted_at": "when it was answered: ISO 8601, Unix time, MM/DD/YYYY and more; no "
    "zone means UTC",
    "account_name": "the company: the account is found by name, or created",
    "tags": "comma-separated",
    "notes": "one note per line",
    "plan": "and the other account fields: set on the account from its newest answer",
}


@dataclass
class RowResult:
    index: int
    status: str  # "created" | "updated" | "error"
    key: str = ""
    errors: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class ImportReport:
    results: list[RowResult]


@dataclass
class _Row:
    index: int
    item: dict  # for responses_record
    email: str | None
    contact_external_id: str | None
    submitted_at: datetime
    contact: dict  # name, locale (for new contacts or blank ones)
    account_external_id: str | None
    account_name: str | None
    account: dict  # cleaned account fields
    notes: list[str]

    @property
    def person(self) -> tuple[str, str]:
        if self.contact_external_id:
            return ("external_id", self.contact_external_id)
        return ("email", self.email or "")

    @property
    def key(self) -> str:
        return self.item.get("external_id") or self.email or self.contact_external_id or ""


@dataclass
class _Prepared:
    results: list  # RowResult for rows refused already, None for the others
    rows: list[_Row]


def _whole(value: str) -> str:
    """ "9.0" → "9": spreadsheets save whole numbers so."""
    text = str(value).strip()
    return text.split(".")[0] if re.fullmatch(r"\d+\.0+", text) else text


def _note_bodies(value) -> list[str]:
    text = cleaning._as_text(value)
    bodies = [line.strip() for line in re.split(r"\r?\n", text) if line.strip()]
    return [body[:MAX_NOTE] for body in bodies]


def _prepare_row(index: int, raw: dict) -> tuple[_Row | None, dict]:
    errors: dict[str, list[str]] = {}
    item: dict = {}
    properties: dict = {}
    account: dict = {}
    contact: dict = {}
    notes: list[str] = []
    when = None
    for name, value in raw.items():
        if name.startswith(PROPERTIES_PREFIX):
            if not cleaning.is_blank(value):
                try:
                    properties[name[len(PROPERTIES_PREFIX) :]] = cleaning._as_text(value)
                except ValueError as exc:
                    errors[name] = [f"{name} {exc}"]
            continue
        if cleaning.is_blank(value):
            continue
        try:
            if name == "submitted_at":
                when = parse_when(value)
            elif name in ACCOUNT_FIELDS:
                account[name] = account_services.ACCOUNT_FIELDS[name].clean(value)
            elif name == "locale":
                contact["locale"] = cleaning.locale(value)
            elif name == "notes":
                notes = _note_bodies(value)
            elif name == "score":
                item["score"] = _whole(value)
            else:
                item[name] = value
        except ValueError as exc:
            text = str(exc)
            errors[name] = [f"{name} {text}" if text[:1].islower() else text]
    if "score" not in item:
        item["score"] = ""
    if when is None and "submitted_at" not in errors:
        errors["submitted_at"] = ["submitted_at is empty: a past answer needs its date."]
    if when is not None:
        item["submitted_at"] = when
    if properties:
        item["properties"] = properties
    data, item_errors = services.clean_item(item)
    for name, messages in item_errors.items():
        errors.setdefault(name, messages)
    if errors:
        return None, errors
    if data.get("contact_name"):
        contact["name"] = data["contact_name"]
    item = {k: v for k, v in item.items() if k not in {"account_name", "account_external_id"}}
    return _Row(
        index=index,
        item=item,
        email=data.get("email"),
        contact_external_id=data.get("contact_external_id"),
        submitted_at=when,
        contact=contact,
        account_external_id=data.get("account_external_id"),
        account_name=data.get("account_name"),
        account=account,
        notes=notes,
    ), {}


def responses_prepare(items: list[dict]) -> _Prepared:
    """Cleans a chunk of rows without the database (the importer's reader thread)."""
    results: list = [None] * len(items)
    rows = []
    for index, raw in enumerate(items):
        row, errors = _prepare_row(index, raw)
        if errors:
            key = raw.get("external_id") or raw.get("email") or raw.get("contact_external_id")
            results[index] = RowResult(index, "error", str(key or "").strip(), errors)
        else:
            rows.append(row)
    return _Prepared(results, rows)


def _fail(results: list, row: _Row, name: str, messages: list[str]) -> None:
    results[row.index] = RowResult(row.index, "error", row.key, {name: messages})


def _existing_contacts(organization, rows: list[_Row]) -> dict:
    emails = {r.email for r in rows if r.email}
    externals = {r.contact_external_id for r in rows if r.contact_external_id}
    found = {}
    if not emails and not externals:
        return found
    for contact in Contact.objects.filter(
        Q(email__in=emails) | Q(external_id__in=externals), organization=organization
    ).only("id", "email", "external_id", "name", "locale", "account_id"):
        if contact.email:
            found["email", contact.email] = contact
        if contact.external_id:
            found["external_id", contact.external_id] = contact
    return found


def _accounts_for(organization, rows: list[_Row], contacts: dict, results: list) -> None:
    """Sets each row's account_external_id: the account it names by id, else its contact's
    account, else the account of that company name (created when there is none); then
    writes the account fields the rows carry, from the newest answer per account."""
    by_id = {r.account_external_id for r in rows if r.account_external_id}
    contact_accounts = {
        c.account_id for r in rows if (c := contacts.get(r.person)) and c.account_id
    }
    names = {r.account_name.lower() for r in rows if r.account_name}
    known = list(
        Account.objects.filter(organization=organization)
        .annotate(name_lower=Lower("name"))
        .filter(
            Q(external_id__in=by_id | names) | Q(pk__in=contact_accounts) | Q(name_lower__in=names)
        )
        .only("id", "external_id", "name", "last_score_at")
    )
    by_pk = {a.pk: a for a in known}
    by_external = {a.external_id: a for a in known}
    by_name: dict[str, Account] = {}
    for account in sorted(known, key=lambda a: a.pk):
        by_name.setdefault(account.name.lower(), account)
    newest: dict[str, _Row] = {}
    for row in rows:
        contact = contacts.get(row.person)
        if row.account_external_id:
            external = row.account_external_id
        elif contact is not None and contact.account_id in by_pk:
            external = by_pk[contact.account_id].external_id
        elif row.account_name:
            lowered = row.account_name.lower()
            account = by_name.get(lowered) or by_external.get(lowered[:200])
            external = account.external_id if account else lowered[:200]
        else:
            continue
        row.account_external_id = external
        if external not in newest or row.submitted_at >= newest[external].submitted_at:
            newest[external] = row
    items, owners = [], []
    for external, row in newest.items():
        account = by_external.get(external)
        item = {"external_id": external}
        if account is None:
            item["name"] = row.account_name or external
        elif account.last_score_at and account.last_score_at > row.submitted_at:
            continue  # a newer answer knows better: history does not overwrite it
        elif not row.account:
            continue
        item.update(row.account)
        items.append(item)
        owners.append(external)
    if not items:
        return
    report = account_services.records_upsert(
        organization=organization, kind="accounts", items=items, blank_unsets=True
    )
    failed = {
        external: [f"{k}: {' '.join(v)}" for k, v in result.errors.items()]
        for external, result in zip(owners, report.results, strict=True)
        if result.status == "error"
    }
    for row in rows:
        if row.account_external_id in failed and results[row.index] is None:
            _fail(results, row, "account_name", failed[row.account_external_id])


def _contacts_for(organization, rows: list[_Row], contacts: dict, results: list) -> None:
    """Creates the people the rows name that do not exist yet, and fills an existing
    contact's blank name, locale and account (a file never overwrites what is known)."""
    newest: dict[tuple, _Row] = {}
    for row in rows:
        if results[row.index] is None and (
            row.person not in newest or row.submitted_at >= newest[row.person].submitted_at
        ):
            newest[row.person] = row
    items, owners = [], []
    for person, row in newest.items():
        contact = contacts.get(person)
        item = {}
        if contact is None:
            item = {
                "email": row.email,
                "external_id": row.contact_external_id,
                **row.contact,
                "account_external_id": row.account_external_id,
            }
        else:
            for name in ("name", "locale"):
                if row.contact.get(name) and not getattr(contact, name):
                    item[name] = row.contact[name]
            if row.account_external_id and not contact.account_id:
                item["account_external_id"] = row.account_external_id
            if not item:
                continue
            item["email" if contact.email else "external_id"] = contact.email or (
                contact.external_id
            )
        items.append({k: v for k, v in item.items() if v})
        owners.append(person)
    if not items:
        return
    report = account_services.records_upsert(
        organization=organization, kind="contacts", items=items, blank_unsets=True
    )
    failed = {
        person: [f"{k}: {' '.join(v)}" for k, v in result.errors.items()]
        for person, result in zip(owners, report.results, strict=True)
        if result.status == "error"
    }
    for row in rows:
        if row.person in failed and results[row.index] is None:
            _fail(results, row, "email", failed[row.person])


def _note_id(body: str) -> str:
    return "import:" + hashlib.sha256(body.encode()).hexdigest()[:32]


def _add_notes(organization, pairs: list[tuple[_Row, Response]]) -> set[int]:
    """Adds the notes not there yet; returns the ids of responses that got one."""
    wanted = {
        (response.pk, _note_id(body)): (response, body)
        for row, response in pairs
        for body in row.notes
    }
    if not wanted:
        return set()
    have = set(
        ResponseNote.objects.filter(
            organization=organization,
            response_id__in={pk for pk, _ in wanted},
            external_id__in={external for _, external in wanted},
        ).values_list("response_id", "external_id")
    )
    new = [
        ResponseNote(
            organization=organization,
            response=response,
            body=body,
            imported=True,
            external_id=external,
            created_at=response.submitted_at,
        )
        for (pk, external), (response, body) in wanted.items()
        if (pk, external) not in have
    ]
    ResponseNote.objects.bulk_create(new)
    return {note.response_id for note in new}


def responses_write(organization: Organization, prepared: _Prepared) -> ImportReport:
    """Saves a prepared chunk: accounts, contacts, the responses (through
    responses_record), their notes. One result per row, in order."""
    results = list(prepared.results)
    rows = list(prepared.rows)
    if rows:
        contacts = _existing_contacts(organization, rows)
        _accounts_for(organization, rows, contacts, results)
        _contacts_for(organization, rows, contacts, results)
        rows = [row for row in rows if results[row.index] is None]
    if rows:
        report = services.responses_record(
            organization=organization,
            items=[row.item for row in rows],
            channel=Channel.IMPORT,
            create_missing=True,
            skip_unchanged=True,
        )
        saved = []
        for row, result in zip(rows, report.results, strict=True):
            if result.status == "error":
                results[row.index] = RowResult(row.index, "error", row.key, result.errors)
                continue
            saved.append((row, result.response))
            # The importer counts created and updated; a row that changed nothing is
            # counted as updated, as a re-imported account is.
            status = "created" if result.status == "created" else "updated"
            results[row.index] = RowResult(row.index, status, row.key)
        _add_notes(organization, saved)
    return ImportReport(results)


def register() -> None:
    """Adds the "responses" kind to the CSV imports (called from ResponsesConfig.ready)."""
    import_kinds.register(
        import_kinds.ImportKindSpec(
            name=KIND,
            label="Responses",
            fields=FIELDS,
            identity=("email", "contact_external_id"),
            required=("score", "submitted_at"),
            prepare=responses_prepare,
            write=responses_write,
            synonyms=SYNONYMS,
            field_help=FIELD_HELP,
            model=Response,
            unmatched_to_properties=True,
            results_url="responses:explorer",
            results_label="the responses",
            description="Past answers, e.g. a Delighted responses export as it is: scores, "
            "comments, dates, tags, notes; person properties fill the account (Company, "
            "Plan, ARR…) or are kept on the response. Answers older than a few weeks "
            "open no follow-up.",
        )
    )
