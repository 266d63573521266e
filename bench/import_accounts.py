"""Throughput of the CSV importer: 100,000 contacts through the same service the
accounts.run_import task calls, compared with PostgreSQL's COPY of the same file.

Runs in-process against a throwaway database (SQLite in memory unless DATABASE_URL is
set), with its own scratch media directory. Prints figures only: rows/s, and the CPU each
row costs in Python (the reading thread, the writing threads) and in the PostgreSQL
backends the import used (/proc/<pid>/stat of each), with the load average, since wall
clock on a shared machine says little on its own.

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/nps_dev
    .venv/bin/python bench/import_accounts.py
    .venv/bin/python bench/import_accounts.py --rows 20000 --profile new
"""

import argparse
import cProfile
import csv
import os
import pstats
import random
import sys
import tempfile
import threading
import time
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nps_platform.settings")
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = "sqlite://:memory:"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.backends.base.base import BaseDatabaseWrapper as DatabaseWrapper  # noqa: E402
from django.test.utils import override_settings, setup_test_environment  # noqa: E402
from django.utils.timezone import now  # noqa: E402
from django_scopes import scope, scopes_disabled  # noqa: E402

from accounts import imports, services  # noqa: E402
from accounts.models import Contact, ImportJob, ImportStatus  # noqa: E402
from nps_platform import services as platform_services  # noqa: E402
from nps_platform.models import Role, User  # noqa: E402

ACCOUNTS = 300
HEADERS = ["Email Address", "Full Name", "Job Title", "Account ID", "Language", "Time Zone",
           "Phone"]  # fmt: skip
FIRST = ["Ann", "Ben", "Chloe", "Dev", "Eva", "Farid", "Gia", "Hugo", "Ines", "Jon", "Kira",
         "Liam", "Mia", "Noah", "Omar", "Pia", "Ravi", "Sara", "Tom", "Uma", "Vera", "Will",
         "Yuki", "Zoe", "José", "Zoë", "Łukasz", "Søren"]  # fmt: skip
LAST = ["Adams", "Berg", "Chen", "Diaz", "Eze", "Fox", "Garcia", "Haas", "Ito", "Jensen",
        "Khan", "Lopez", "Moreau", "Novak", "Okafor", "Park", "Quinn", "Rossi", "Silva",
        "Tanaka", "Umar", "Vogel", "Weber", "Young", "Müller", "O'Brien"]  # fmt: skip
TITLES = ["CEO", "CTO", "Head of Operations", "Product Manager", "Engineer", "Analyst", "CFO",
          "VP Customer Success", "IT Administrator", ""]  # fmt: skip
LOCALES = ["en", "en", "en-GB", "de-DE", "fr", "es", "pt-BR", "ja", ""]
TIMEZONES = ["America/New_York", "America/Chicago", "Europe/London", "Europe/Berlin",
             "Asia/Tokyo", "Australia/Sydney", ""]  # fmt: skip


def write_csv(path: Path, rows: int, account_ids: list[str]) -> None:
    rng = random.Random(7)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADERS)
        for n in range(rows):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            account = rng.choice(account_ids) if rng.random() < 0.8 else ""
            domain = f"{account}.example.com" if account else "mail.example.org"
            local = unicodedata.normalize("NFKD", f"{first}.{last}.{n}").encode("ascii", "ignore")
            email = f"{local.decode().lower().replace(chr(39), '')}@{domain}"
            if rng.random() < 0.002:  # a few typos, rejected into the error report
                email = email.replace("@", " at ")
            writer.writerow(
                [
                    email,
                    f"{first} {last}",
                    rng.choice(TITLES),
                    account,
                    rng.choice(LOCALES),
                    rng.choice(TIMEZONES),
                    f"+1 555 {n:07d}" if rng.random() < 0.5 else "",
                ]
            )


def backend_cpu_of(pid: int) -> float | None:
    """CPU seconds a PostgreSQL backend has used (Linux, local server)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu() -> float | None:
    """CPU seconds the PostgreSQL backend serving this connection has used."""
    if connection.vendor != "postgresql":
        return None
    connection.ensure_connection()
    return backend_cpu_of(connection.connection.info.backend_pid)


class ThreadClock:
    """CPU seconds spent in the importer's reading and writing threads (each call's
    thread_time), and by the backends of the connections those threads close."""

    def __init__(self):
        self.reading = self.writing = self.closed_backends = 0.0
        self.lock = threading.Lock()

    def install(self) -> None:
        read_chunk, write_in_turn = imports._read_chunk, imports._write_in_turn

        def timed(original, attribute):
            def call(*args, **kwargs):
                start = time.thread_time()
                try:
                    return original(*args, **kwargs)
                finally:
                    with self.lock:
                        setattr(
                            self, attribute, getattr(self, attribute) + time.thread_time() - start
                        )

            return call

        imports._read_chunk = timed(read_chunk, "reading")
        imports._write_in_turn = timed(write_in_turn, "writing")
        close = DatabaseWrapper.close

        def close_counted(wrapper):
            if wrapper.connection is not None and wrapper.vendor == "postgresql":
                cpu = backend_cpu_of(wrapper.connection.info.backend_pid)
                with self.lock:
                    self.closed_backends += cpu or 0.0
            return close(wrapper)

        DatabaseWrapper.close = close_counted

    def reset(self) -> None:
        self.reading = self.writing = self.closed_backends = 0.0


CLOCK = ThreadClock()


def run_importer(organization, user, name: str, profile: bool):
    """(wall seconds, (Python CPU seconds, of which in the reading thread, in the writing
    threads), PostgreSQL CPU seconds (every backend the import used) or None, the job)."""
    with scope(organization=organization):
        job = ImportJob.objects.create(
            organization=organization,
            kind="contacts",
            original_name="contacts.csv",
            headers=HEADERS,
            mapping=imports.auto_mapping("contacts", HEADERS),
            status=ImportStatus.QUEUED,
            created_by=user,
        )
        job.file.name = name
        job.save(update_fields=["file"])
        profiler = cProfile.Profile(time.thread_time) if profile else None  # CPU, this thread
        database = backend_cpu()
        CLOCK.reset()
        start, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        job = imports.import_run(organization_id=organization.pk, import_id=job.pk)
        if profiler:
            profiler.disable()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        if database is not None:
            database = backend_cpu() - database + CLOCK.closed_backends
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return elapsed, (cpu, CLOCK.reading, CLOCK.writing), database, job


def report_line(label: str, rows: int, elapsed: float, cpu, database) -> None:
    """Wall clock and rows/s, then CPU per row: Python (the whole process, the reading
    thread, the writing threads) and the PostgreSQL backends. CPU per row holds when the
    machine is busy."""
    per_row = 1e6 / rows
    database_text = (
        f"{database:5.2f} s = {database * per_row:4.1f} µs/row" if database is not None else "—"
    )
    print(f"{label:<28} {elapsed:6.2f} s {rows / elapsed:9,.0f} rows/s\n"
          f"    Python CPU {cpu[0]:5.2f} s = {cpu[0] * per_row:4.1f} µs/row "
          f"(reading thread {cpu[1] * per_row:4.1f}, writing threads {cpu[2] * per_row:4.1f}); "
          f"PostgreSQL backends' CPU {database_text}")  # fmt: skip
    if database is not None:
        print(f"    {ceiling(cpu, database, rows)}")


def ceiling(cpu, database: float, rows: int) -> str:
    """The rate these CPU figures allow on idle cores. The reading thread prepares the next
    chunk while the writing threads write the ones before (one chunk's statements while the
    chunk before commits): all Python shares one interpreter lock, and everything shares the
    cores."""
    bounds = {
        "reading thread": cpu[1],
        "all Python (one lock)": cpu[0],
        f"all CPU on {os.cpu_count()} cores": (cpu[0] + database) / os.cpu_count(),
    }
    name, seconds = max(bounds.items(), key=lambda bound: bound[1])
    per_row = 1e6 / rows
    figures = ", ".join(f"{label} {value * per_row:.1f}" for label, value in bounds.items())
    return f"at most {rows / seconds:,.0f} rows/s on idle cores (bound: {name}); µs/row: {figures}"


def load_average() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def run_copy(path: Path) -> float:
    columns = ["email", "name", "title", "account_external_id", "locale", "timezone", "phone"]
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_contacts_copy")
        cursor.execute(
            "CREATE TABLE bench_contacts_copy (" + ", ".join(f"{c} text" for c in columns) + ")"
        )
        start = time.perf_counter()
        with (
            path.open("rb") as handle,
            cursor.cursor.copy(
                f"COPY bench_contacts_copy ({', '.join(columns)}) FROM STDIN "
                "WITH (FORMAT csv, HEADER true)"
            ) as copy,
        ):
            while block := handle.read(1024 * 1024):
                copy.write(block)
        elapsed = time.perf_counter() - start
        cursor.execute("SELECT count(*) FROM bench_contacts_copy")
        copied = cursor.fetchone()[0]
        cursor.execute("DROP TABLE bench_contacts_copy")
    assert copied > 0
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--profile", choices=["new", "again"], help="cProfile one of the runs")
    args = parser.parse_args()

    setup_test_environment(debug=False)  # as a worker runs: no query log kept
    CLOCK.install()
    database_name = connection.settings_dict["NAME"]
    # A database of its own, named after the configured one (nps → nps_bench_import_<pid>):
    # never the test database a test run may be using right now.
    connection.settings_dict["TEST"]["NAME"] = f"{database_name}_bench_import_{os.getpid()}"
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        call_command("migrate", verbosity=0)
        media = tempfile.TemporaryDirectory(prefix="nps-bench-media-")
        with override_settings(MEDIA_ROOT=media.name), media:
            with scopes_disabled():
                organization = platform_services.organization_create(name="Bench Co", slug="bench")
                user = User.objects.create_user(email="admin@bench.test", password="x" * 12)
                platform_services.membership_add(
                    organization=organization, user=user, role=Role.ADMIN
                )
            account_ids = [f"acc-{n:04d}" for n in range(ACCOUNTS)]
            with scope(organization=organization):
                services.records_upsert(
                    organization=organization,
                    kind="accounts",
                    items=[{"external_id": a, "name": f"Customer {a}"} for a in account_ids],
                )
            path = Path(media.name) / "imports" / "contacts.csv"
            path.parent.mkdir(parents=True)
            write_csv(path, args.rows, account_ids)
            size_mb = path.stat().st_size / 1024 / 1024

            print(
                f"database: {connection.vendor}; {args.rows:,} contacts, {size_mb:.1f} MB of CSV, "
                f"{services.IMPORT_BATCH:,}-row chunks; load average "
                f"{load_average()} (1 / 5 / 15 min) on {os.cpu_count()} CPUs"
            )
            first, cpu, database, job = run_importer(
                organization, user, "imports/contacts.csv", args.profile == "new"
            )
            report_line("importer, new contacts", args.rows, first, cpu, database)
            print(
                f"    {job.created_count:,} created, {job.updated_count:,} updated, "
                f"{job.error_count:,} rejected, status {job.status}"
            )
            if job.error_report:
                with job.error_report.open("r") as report:
                    print("    rejected, e.g.:", report.readlines()[1].strip()[:110])
            second_started = now()
            again, cpu, database, job = run_importer(
                organization, user, "imports/contacts.csv", args.profile == "again"
            )
            report_line("importer, same file again", args.rows, again, cpu, database)
            with scope(organization=organization):
                assert Contact.objects.count() == job.updated_count
                written = Contact.objects.filter(updated_at__gte=second_started).count()
            print(
                f"    {job.created_count:,} created, {job.updated_count:,} updated "
                f"({written:,} rows written), {job.error_count:,} rejected, status {job.status}"
            )
            if connection.vendor == "postgresql":
                copy = run_copy(path)
                print(
                    f"{'COPY into a text table':<28} {copy:6.2f} s {args.rows / copy:9,.0f} rows/s"
                )
                print(
                    f"importer / COPY: the importer runs at {copy / first:.1%} of COPY's speed "
                    f"(new contacts), {copy / again:.1%} (same file again)"
                )
            else:
                print("COPY needs PostgreSQL: set DATABASE_URL=postgres://… to compare with it.")
            print(f"load average at the end {load_average()}")
    finally:
        connection.creation.destroy_test_db(database_name, verbosity=0)


if __name__ == "__main__":
    main()
