"""CSV imports: checking an upload, mapping its columns to fields, and running it.

What a file can hold is a registered import kind (accounts/import_kinds.py): accounts,
contacts and support tickets go through `services.records_upsert` (the one upsert every
channel uses); other apps register theirs (responses registers "responses"). Each kind
cleans a chunk with its `prepare` (or `prepare_columns`, a column at a time) and saves it
with its `write`. The rows are read with pandas chunk by chunk, so a file of any size never
sits in memory whole: a reader thread prepares the next chunk while the ones before are
written, on PostgreSQL by two writing threads in turn, one writing a chunk while the other
commits the one before. `import_run` is what the `accounts.run_import` task calls.
"""

import contextvars
import csv
import functools
import gc
import io
import itertools
import logging
import re
import sys
import tempfile
import threading
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import PurePath

import pandas as pd
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import connection, connections, transaction
from django.utils.timezone import now

from accounts import import_kinds, services
from accounts.models import ImportJob, ImportStatus
from nps_platform.models import Organization

logger = logging.getLogger(__name__)

HEAD_BYTES = 64 * 1024
READER_SLICE_SECONDS = 0.0005
SAMPLE_ROWS = 5
PROPERTIES_PREFIX = "properties."
DELIMITERS = (",", ";", "\t", "|")


class _Identity:
    """What identifies a row, per kind (at least one of these must be mapped): read from the
    registered kinds."""

    def __getitem__(self, kind: str) -> tuple[str, ...]:
        return import_kinds.get(kind).identity

    def __contains__(self, kind: str) -> bool:
        return any(spec.name == kind for spec in import_kinds.all_kinds())


IDENTITY = _Identity()


# --- Mapping columns -------------------------------------------------------------------------


def normalise_header(header: str) -> str:
    """ "  Account-Name.1 " → "account_name_1"."""
    name = re.sub(r"[\s\-.]+", "_", str(header).strip().lower())
    return re.sub(r"_+", "_", name).strip("_")


_WRAPPED = re.compile(r"^\s*(?:person_)?properties\[(.+)\]\s*$", re.IGNORECASE)


def unwrapped(header: str) -> str:
    """ "person_properties[Plan]" (Delighted's API names) → "Plan"; other headers as they are."""
    match = _WRAPPED.match(str(header))
    return match.group(1) if match else str(header)


def property_target(header: str) -> str:
    """The `properties.<key>` a column lands in when mapped to the properties."""
    text = unwrapped(header).strip()
    if text.lower().startswith(PROPERTIES_PREFIX):
        text = text[len(PROPERTIES_PREFIX) :]
    return PROPERTIES_PREFIX + (normalise_header(text) or "column")


def fields_of(kind: str) -> list[str]:
    return list(import_kinds.get(kind).fields)


def auto_mapping(kind: str, headers: list[str]) -> dict[str, str]:
    """CSV header → field name, or "" to ignore. Exact field names win over synonyms, and
    no field is chosen twice (the first column that matches takes it). A kind that keeps
    what it does not know (responses) maps the other columns to properties."""
    spec = import_kinds.get(kind)
    fields = list(spec.fields)
    synonyms = {
        normalise_header(alias): field_name
        for field_name, aliases in spec.synonyms.items()
        for alias in aliases
    }
    mapping = dict.fromkeys(headers, "")
    taken: set[str] = set()
    for header in headers:  # first pass: the field's own name
        normalised = normalise_header(unwrapped(header))
        if normalised in fields and normalised not in taken:
            mapping[header] = normalised
            taken.add(normalised)
    for header in headers:  # then other names for it, and "properties.<key>" columns
        if mapping[header]:
            continue
        normalised = normalise_header(unwrapped(header))
        if str(header).strip().lower().startswith(PROPERTIES_PREFIX):
            target = property_target(header)
        else:
            target = synonyms.get(normalised, "")
        if target and target not in taken:
            mapping[header] = target
            taken.add(target)
    if spec.unmatched_to_properties:
        for header in headers:
            target = property_target(header)
            if (
                not mapping[header]
                and str(header).strip()
                and not str(header).startswith("Unnamed: ")
                and target not in taken
            ):
                mapping[header] = target
                taken.add(target)
    return mapping


def target_choices(kind: str, header: str) -> list[tuple[str, str]]:
    """The options of one column's select: (value, label)."""
    choices = [("", "— ignore —")]
    choices += [(name, name) for name in fields_of(kind)]
    choices.append((property_target(header), f"{property_target(header)} (custom property)"))
    return choices


@dataclass(frozen=True)
class FieldHelp:
    name: str
    requirement: str  # "" | "required" | "required for new rows" | "this or …"
    note: str = ""  # what the field takes, when it is not obvious


def fields_help(kind: str) -> list[FieldHelp]:
    """The fields a kind accepts and which are required, for the help box."""
    spec = import_kinds.get(kind)
    identity = spec.identity
    result = []
    for name in spec.fields:
        if name in identity and len(identity) == 1:
            requirement = "required: identifies the row"
        elif name in identity:
            others = " or ".join(other for other in identity if other != name)
            requirement = f"this or {others} is required: identifies the row"
        elif name in spec.required:
            requirement = "required"
        elif name in spec.required_on_create:
            requirement = "required for new rows"
        else:
            requirement = ""
        result.append(FieldHelp(name, requirement, spec.field_help.get(name, "")))
    return result


# --- Reading files ---------------------------------------------------------------------------


def is_utf8(head: bytes) -> bool:
    """True when these first bytes of a file are valid UTF-8 (a character cut off at the
    end of a full head is fine)."""
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.reason == "unexpected end of data" and len(head) >= HEAD_BYTES
    return True


def readable(value) -> str:
    """A cell fit for a page or a UTF-8 report: bytes that were not UTF-8 (kept as
    surrogates by surrogateescape) are shown as Windows-1252, the usual culprit."""
    text = "" if value is None else str(value)
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    raw = text.encode("utf-8", errors="surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def detect_delimiter(head: bytes) -> str:
    """The separator of the header line: comma, or semicolon/tab/pipe when those are
    clearly what separates the columns (spreadsheets in many locales save with ";")."""
    first_line = head.split(b"\n", 1)[0].decode("utf-8", errors="replace")
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > counts[","] else ","


def _read_csv(handle, *, delimiter: str, **kwargs):
    return pd.read_csv(
        handle,
        sep=delimiter,
        dtype=str,
        keep_default_na=False,
        na_filter=False,
        encoding="utf-8",
        encoding_errors="surrogateescape",
        index_col=False,
        **kwargs,
    )


@dataclass
class Preview:
    headers: list[str]
    samples: dict[str, list[str]]  # header → first values
    rows: int  # how many sample rows there are (at most SAMPLE_ROWS)
    is_utf8: bool
    delimiter: str


def _preview(handle) -> Preview:
    handle.seek(0)
    head = handle.read(HEAD_BYTES)
    if b"\x00" in head:
        raise ValidationError("This is not a CSV file: it holds binary data.")
    delimiter = detect_delimiter(head)
    handle.seek(0)
    try:
        frame = _read_csv(
            handle, delimiter=delimiter, nrows=SAMPLE_ROWS, on_bad_lines="skip", header=0
        )
    except pd.errors.EmptyDataError:
        raise ValidationError(
            "The file has no header row: the first line names the columns."
        ) from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise ValidationError(f"The header row could not be read: {exc}".strip()) from None
    headers = [readable(column) for column in frame.columns]
    if not any(str(h).strip() and not str(h).startswith("Unnamed: ") for h in headers):
        raise ValidationError("The file has no header row: the first line names the columns.")
    samples = {
        header: [readable(value) for value in frame.iloc[:, position].tolist()]
        for position, header in enumerate(headers)
    }
    return Preview(headers, samples, len(frame), is_utf8(head), delimiter)


_DATA_LIKE = re.compile(
    r"^(\S+@\S+\.\S+|-?[\d.,]+|\d{4}-\d{2}-\d{2}.*|https?://\S+|[a-z0-9-]+\.(com|io|net|org))$",
    re.IGNORECASE,
)


def _looks_like_data(headers: list[str], mapping: dict[str, str]) -> bool:
    """No column name matched, and some "names" are emails, numbers, dates or URLs."""
    return not any(mapping.values()) and any(_DATA_LIKE.match(h.strip()) for h in headers)


def preview_of(job: ImportJob) -> Preview:
    with job.file.open("rb") as handle:
        return _preview(handle)


# --- Uploading and mapping -----------------------------------------------------------------


def import_create(*, organization: Organization, kind: str, upload, created_by) -> ImportJob:
    """Checks an uploaded CSV and keeps it as a job waiting for its column mapping.

    Raises ValidationError with a message a person can act on."""
    if kind not in IDENTITY:
        labels = ", ".join(spec.label.lower() for spec in import_kinds.all_kinds())
        raise ValidationError(f"Choose what the file holds: {labels}.")
    name = PurePath(upload.name or "upload.csv").name
    content_type = (getattr(upload, "content_type", "") or "").split(";")[0].strip().lower()
    if not name.lower().endswith(".csv") and content_type != "text/csv":
        raise ValidationError(
            f"“{name}” is not a CSV file. Export the sheet as CSV (comma-separated values)."
        )
    if not upload.size:
        raise ValidationError("The file is empty.")
    limit = settings.IMPORT_MAX_UPLOAD_MB
    if upload.size > limit * 1024 * 1024:
        raise ValidationError(
            f"The file is {upload.size / 1024 / 1024:.1f} MB; the most is {limit} MB. "
            "Split it into several files."
        )
    preview = _preview(upload)
    mapping = auto_mapping(kind, preview.headers)
    if _looks_like_data(preview.headers, mapping):
        raise ValidationError(
            "The first line looks like data, not column names. Add a header row, e.g. "
            f"{','.join(fields_of(kind)[:3])}."
        )
    if not preview.rows:
        raise ValidationError("The file has a header row but no rows below it.")
    job = ImportJob(
        organization=organization,
        kind=kind,
        original_name=name[:255],
        headers=preview.headers,
        mapping=mapping,
        status=ImportStatus.UPLOADED,
        created_by=created_by,
    )
    upload.seek(0)
    job.file.save(f"{uuid.uuid4().hex}.csv", upload, save=False)
    job.save()
    return job


def mapping_errors(kind: str, headers: list[str], mapping: dict[str, str]) -> list[str]:
    """What is wrong with a column mapping, in words; empty when it can run."""
    errors = []
    fields = set(fields_of(kind))
    chosen: dict[str, str] = {}
    for header in headers:
        target = mapping.get(header, "")
        if not target:
            continue
        if target not in fields and target != property_target(header):
            errors.append(f"“{target}” is not a field of {kind}; choose another for “{header}”.")
            continue
        if target in chosen:
            errors.append(
                f"{target} is chosen for both “{chosen[target]}” and “{header}”: "
                "map each field from one column only."
            )
            continue
        chosen[target] = header
    spec = import_kinds.get(kind)
    for name in reversed(spec.required):
        if name not in chosen:
            errors.insert(0, f"Map a column to {name}: each row needs one.")
    identity = spec.identity
    if not any(name in chosen for name in identity):
        label = spec.label.lower()
        if len(identity) == 1:
            errors.insert(0, f"Map a column to {identity[0]}: it identifies each of the {label}.")
        else:
            errors.insert(
                0,
                f"Map a column to {' or '.join(identity)}: one of them identifies each of "
                f"the {label}.",
            )
    return errors


def import_start(*, organization: Organization, job: ImportJob, mapping: dict) -> ImportJob:
    """Saves the mapping and queues the import (the task starts once this commits)."""
    from accounts.tasks import run_import

    mapping = {header: str(mapping.get(header) or "") for header in job.headers}
    if errors := mapping_errors(job.kind, job.headers, mapping):
        raise ValidationError(errors)
    started = ImportJob.objects.filter(
        pk=job.pk, organization=organization, status=ImportStatus.UPLOADED
    ).update(mapping=mapping, status=ImportStatus.QUEUED)
    if not started:
        raise ValidationError("This import has started already.")
    run_import.delay_on_commit(organization.pk, job.pk)
    job.mapping, job.status = mapping, ImportStatus.QUEUED
    return job


# --- Running ---------------------------------------------------------------------------------


class _ErrorReport:
    """Rejected rows, written to a temporary file as they come: row, key, errors, then the
    row's original cells."""

    def __init__(self, headers: list[str]):
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.text = io.TextIOWrapper(self.file, encoding="utf-8", newline="")
        self.writer = csv.writer(self.text)
        self.writer.writerow(["row", "key", "errors", *headers])
        self.rows = 0

    def add(self, row: int, key: str, errors: dict[str, list[str]], cells=()) -> None:
        message = "; ".join(
            f"{name}: {text.removeprefix(f'{name} ')}"
            for name, texts in errors.items()
            for text in texts
        )
        self.writer.writerow([row, readable(key), message, *map(readable, cells)])
        self.rows += 1

    def save_to(self, job: ImportJob) -> str:
        """Stores the report as the job's error_report; returns its storage name."""
        self.text.flush()
        self.file.seek(0)
        stem = PurePath(job.original_name).stem[:80] or "import"
        job.error_report.save(f"{stem}-errors.csv", File(self.file), save=False)
        return job.error_report.name

    def close(self) -> None:
        self.text.close()


def _count_rows(handle) -> int:
    """Data rows in the file, by counting line ends (a quoted cell across lines counts
    more than once; the total is set exactly when the import is done)."""
    lines, last = 0, b"\n"
    while block := handle.read(1024 * 1024):
        lines += block.count(b"\n")
        last = block[-1:]
    if last != b"\n":
        lines += 1
    return max(0, lines - 1)


def import_run(*, organization_id: int, import_id: int) -> ImportJob | None:
    """Runs a queued import once: claims it, upserts its rows chunk by chunk with progress
    after each, writes the rejected rows to an error report, and ends done or failed.

    A job found running (the task redelivered after a worker died) runs again from the
    start; the upsert is idempotent, so rows already saved are reported as updated."""
    jobs = ImportJob.objects.filter(organization_id=organization_id)
    claimed = jobs.filter(pk=import_id, status=ImportStatus.QUEUED).update(
        status=ImportStatus.RUNNING, started_at=now(), failure=""
    )
    job = jobs.filter(pk=import_id).first()
    if job is None:
        logger.warning("Import %s of organization %s is gone.", import_id, organization_id)
        return None
    if not claimed:
        if job.status != ImportStatus.RUNNING:
            return job  # done, failed, or never queued: nothing to do
        logger.warning("Import %s was running already: running it again.", import_id)
    organization = Organization.objects.get(pk=organization_id)
    try:
        _process(organization, job)
    except Exception as exc:
        logger.exception("Import %s failed.", import_id)
        jobs.filter(pk=import_id).update(
            status=ImportStatus.FAILED, failure=_failure_message(exc), finished_at=now()
        )
    job.refresh_from_db()
    return job


def _failure_message(exc: Exception) -> str:
    if isinstance(exc, pd.errors.ParserError):
        return (
            f"The file could not be read to the end ({exc}). The rows before that point "
            "were imported; fix the file (often a quote that is never closed) and import "
            "it again."
        )
    if isinstance(exc, SoftTimeLimitExceeded):
        return (
            "The import took longer than it may. The rows imported until then stay; split "
            "the file into smaller ones and import the rest (rows already there are updated)."
        )
    if isinstance(exc, FileNotFoundError):
        return "The uploaded file is no longer available. Upload it again."
    return (
        "The import stopped because of an unexpected error. Rows imported before it stay; "
        "importing the same file again is safe and completes the rest. If it happens again, "
        "contact support."
    )


def _process(organization: Organization, job: ImportJob) -> None:
    jobs = ImportJob.objects.filter(organization=organization, pk=job.pk)
    columns = [
        (position, header, job.mapping[header])
        for position, header in enumerate(job.headers)
        if job.mapping.get(header)
    ]
    positions = [position for position, _, _ in columns]
    targets = [target for _, _, target in columns]
    with job.file.open("rb") as handle:
        delimiter = detect_delimiter(handle.read(HEAD_BYTES))
        handle.seek(0)
        total = _count_rows(handle)
    jobs.update(total_rows=total, processed_rows=0, created_count=0, updated_count=0, error_count=0)

    report = _ErrorReport([header for _, header, _ in columns])
    progress = _Progress()
    # A chunk allocates a great many short-lived objects and no cycles, and every
    # collection of the oldest generation walks all of Django and pandas: rarer while the
    # import runs (the worker runs one task at a time).
    thresholds = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    # The writing threads mostly wait on PostgreSQL; each answer must get the interpreter
    # back from the busy reader thread quickly, not after the default 5 ms slice.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(READER_SLICE_SECONDS)
    writers = _chunk_writers(job.kind)
    try:
        with (
            job.file.open("rb") as handle,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-reader") as reader,
        ):
            # Only the mapped columns are read; pandas then takes a row with more cells than
            # the header has by its leading cells, as spreadsheets do.
            chunks = _read_csv(
                handle,
                delimiter=delimiter,
                header=0,
                usecols=positions,
                # The upsert's kinds take bigger batches from a file than from the API.
                chunksize=services.IMPORT_BATCH
                if job.kind in services.KINDS
                else services.MAX_BATCH,
                skip_blank_lines=False,  # so that a row's index gives its line number
            )
            write = functools.partial(
                _write_in_turn, organization, jobs, job.kind, targets, report, progress
            )
            try:
                _write_chunks(reader, chunks, job.kind, targets, write, writers)
            finally:
                for writer in writers:  # each closes its connection once its chunks are done
                    writer.submit(connections.close_all)
                    writer.shutdown()
        error_report = report.save_to(job) if report.rows else ""
    except Exception:
        if report.rows:  # keep what was rejected so far: it helps with what went wrong
            jobs.update(error_report=report.save_to(job))
        raise
    finally:
        report.close()
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(switch_interval)
    jobs.update(
        status=ImportStatus.DONE,
        total_rows=progress.processed,
        processed_rows=progress.processed,
        created_count=progress.created,
        updated_count=progress.updated,
        error_count=progress.errors,
        error_report=error_report,
        finished_at=now(),
    )


def _write_chunks(reader, chunks, kind: str, targets: list[str], write, writers) -> None:
    """The reader thread parses and cleans the next chunk (pure Python, no database) while
    the writing threads write the ones before, mostly waiting on PostgreSQL. Chunks take
    turns on the writers, one writing while the other commits; with none, they are written
    here, one after the other."""
    upcoming = reader.submit(_read_chunk, chunks, kind, targets)
    previous, in_flight = _Turn.first(), deque()
    for number in itertools.count():
        if (chunk := upcoming.result()) is None:
            break
        upcoming = reader.submit(_read_chunk, chunks, kind, targets)
        turn = _Turn()
        if writers:
            context = contextvars.copy_context()  # the tenant's scope
            writer = writers[number % len(writers)]
            in_flight.append(writer.submit(context.run, write, chunk, previous, turn))
            if len(in_flight) == len(writers):  # no more chunks read ahead than writers
                in_flight.popleft().result()
        else:
            write(chunk, previous, turn)
        previous = turn
    while in_flight:
        in_flight.popleft().result()


def _chunk_writers(kind: str) -> list[ThreadPoolExecutor]:
    """Two writing threads, each with its own connection, when one chunk can be written
    while the one before commits (its deferred foreign-key checks are a good part of a
    chunk's time): on PostgreSQL, for a kind that allows it (`overlapping_chunks`), and for
    an import not inside a transaction of its caller's (whose rows another connection could
    not see). None: the chunks are written here, one after the other."""
    overlapping = import_kinds.get(kind).overlapping_chunks
    if not overlapping or connection.vendor != "postgresql" or connection.in_atomic_block:
        return []
    return [
        ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"import-writer-{n}") for n in range(2)
    ]


@dataclass
class _Progress:
    """What the chunks written so far add up to; each chunk updates it in its turn."""

    processed: int = 0
    created: int = 0
    updated: int = 0
    errors: int = 0
    analyzed_at: int = 0  # rows created when the statistics were last refreshed


@dataclass
class _Turn:
    """One chunk's place in the file's order. `written`: its rows are final (`touched`
    holds their ids) and its progress sent; the next chunk may write. `ended`: its
    transaction is over, committed unless `failed`; the next chunk may commit. So the chunks
    commit in file order, and a failure leaves the chunks before it committed, none after."""

    written: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    failed: bool = False
    touched: set = field(default_factory=set)

    @classmethod
    def first(cls) -> "_Turn":
        turn = cls()
        turn.written.set()
        turn.ended.set()
        return turn


class _Abandoned(Exception):
    """A chunk is not committed because the one before it failed."""


class _ReadStale(Exception):
    """A chunk read rows the chunk before it was writing, before that one committed."""


def _write_in_turn(
    organization, jobs, kind, targets, report, progress, chunk, previous, turn
) -> None:
    """Writes one chunk, with the progress that counts it, in one transaction, in its turn:
    once the chunk before is written; committed once that one is.

    The chunk before may still be committing, on the other writer's connection, while this
    one is written: what this one reads does not show that chunk's rows yet. A row it
    created is created again here, which its unique index refuses once that commit is over
    (records_upsert then tries again, and updates it). A row both chunks name, or an
    identity conflict found here, may have been judged on what that chunk changed: then
    this chunk is written again, after that commit, as if one after the other."""
    try:
        previous.written.wait()
        if previous.failed:
            raise _Abandoned
        spec = import_kinds.get(kind)
        with transaction.atomic():
            _commit_without_waiting_for_disk()
            try:
                with transaction.atomic():
                    result = _write_rows(organization, spec, chunk)
                    previous.ended.wait()
                    if previous.failed:
                        raise _Abandoned
                    if _read_stale(spec, chunk, result, previous.touched):
                        raise _ReadStale
            except _ReadStale:
                result = _write_rows(organization, spec, chunk)
            created, updated, errors = _report_results(kind, chunk, result, targets, report)
            progress.processed += chunk.size
            progress.created += created
            progress.updated += updated
            progress.errors += errors
            jobs.update(
                processed_rows=progress.processed,
                created_count=progress.created,
                updated_count=progress.updated,
                error_count=progress.errors,
            )
            # Statistics taken once the table holds the first rows keep their proportions
            # (every email distinct) as it grows; again only when it grew tenfold.
            analyze = progress.created >= max(services.MAX_BATCH, 10 * progress.analyzed_at)
            if analyze:
                progress.analyzed_at = progress.created
            if spec.overlapping_chunks:  # what the next chunk must not have read stale
                turn.touched = {item.id for item in result.results if item.id is not None}
            turn.written.set()
    except BaseException:
        turn.failed = True
        raise
    finally:
        turn.written.set()
        turn.ended.set()
    if analyze:
        _refresh_statistics(spec.model)


def _read_stale(spec, chunk, result, touched: set) -> bool:
    """Whether a chunk written before the one before it committed (which wrote the rows
    `touched`) may have read what that one changed: it updated one of those rows, or found
    an identity conflict (which a changed email or external_id could have caused)."""
    if not touched:
        return False
    refused = chunk.prepared.results
    for n, item in enumerate(result.results):
        if item.status == "updated" and item.id in touched:
            return True
        if (
            item.status == "error"
            and refused[n] is None
            and not spec.identity.isdisjoint(item.errors)
        ):
            return True
    return False


def _commit_without_waiting_for_disk() -> None:
    """Within a chunk's transaction: its COMMIT returns before the WAL reaches the disk.

    If PostgreSQL itself crashes, the last chunks committed this way (a fraction of a
    second's worth) are lost, together with the progress counting them (same transaction),
    never half of one; the job is then re-run or re-imported, which the idempotent upsert
    makes safe. The database stays consistent either way. It saves a disk flush per chunk."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _refresh_statistics(model) -> None:
    """ANALYZE the table an import is filling, each time the rows it created double.

    PostgreSQL's statistics of a table that grows from (almost) nothing during an import
    still say it is tiny, and plans for it (the batch lookups, the foreign-key checks) stay
    those of a tiny table until autovacuum catches up, a minute or more later."""
    if connection.vendor == "postgresql":
        quote = connection.ops.quote_name
        # Only the columns lookups and constraints go by: statistics of the others cost
        # time and change no plan of the import's.
        columns = [
            f.column for f in model._meta.concrete_fields if f.unique or f.db_index or f.is_relation
        ]
        for constraint in model._meta.constraints:
            fields = getattr(constraint, "fields", ())
            columns += [model._meta.get_field(name).column for name in fields]
        names = ", ".join(quote(column) for column in dict.fromkeys(columns))
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {quote(model._meta.db_table)} ({names})")


@dataclass
class _Chunk:
    size: int  # CSV rows read, empty ones included
    lines: list[int]  # the CSV line of each item
    columns: list[list[str]]  # the original cells of the items, column by column
    prepared: services.PreparedBatch

    def cells(self, item: int) -> tuple[str, ...]:
        return tuple(column[item] for column in self.columns)


def _read_chunk(chunks, kind: str, targets: list[str]) -> _Chunk | None:
    """The next chunk of the file, cleaned (the kind's prepare), or None at the end."""
    chunk = next(chunks, None)
    if chunk is None:
        return None
    # Column by column out of pandas (far cheaper than row access).
    columns = [chunk.iloc[:, position].tolist() for position in range(chunk.shape[1])]
    lines = [index + 2 for index in chunk.index.tolist()]  # the header is line 1
    if (kept := _filled_rows(columns)) is not None:
        # Empty lines, or nothing in the mapped columns: skipped.
        columns = [[column[n] for n in kept] for column in columns]
        lines = [lines[n] for n in kept]
    spec = import_kinds.get(kind)
    if spec.prepare_columns is not None:
        prepared = spec.prepare_columns(dict(zip(targets, columns, strict=True)))
    else:
        items = [dict(zip(targets, cells, strict=True)) for cells in zip(*columns, strict=True)]
        prepared = spec.prepare(items)
    return _Chunk(len(chunk), lines, columns, prepared)


def _filled_rows(columns: list[list[str]]) -> list[int] | None:
    """The rows with something in a cell, when some have not; None when all have."""
    filled = [list(map(str.strip, column)) for column in columns]
    if any("" not in cells for cells in filled):
        return None
    return [n for n, cells in enumerate(zip(*filled, strict=True)) if any(cells)]


def _write_rows(organization, spec, chunk: _Chunk):
    """Upserts one chunk's rows (the kind's write): one result per item."""
    if not chunk.lines:
        return services.UpsertReport(results=[])
    result = spec.write(organization, chunk.prepared)
    if len(result.results) != len(chunk.lines):
        raise ValueError(f"{len(chunk.lines)} rows written, {len(result.results)} results.")
    return result


def _report_results(kind, chunk: _Chunk, result, targets, report) -> tuple[int, int, int]:
    """(created, updated, errors) of a chunk written, with its errors reported."""
    # Counted in C; only the rejected rows are visited.
    statuses = [item.status for item in result.results]
    created, updated = statuses.count("created"), statuses.count("updated")
    errors = len(statuses) - created - updated
    if errors:
        for n, item in enumerate(result.results):
            if item.status != "created" and item.status != "updated":
                cells = chunk.cells(n)
                key = item.key or _raw_key(kind, targets, cells)
                report.add(chunk.lines[n], key, item.errors, cells)
    return created, updated, errors


def _raw_key(kind: str, targets: list[str], cells) -> str:
    values = dict(zip(targets, cells, strict=True))
    return next((values[name].strip() for name in IDENTITY[kind] if values.get(name)), "")
