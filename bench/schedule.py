"""One planning tick over 1,000,000 contacts and 5 programmes, on PostgreSQL.

Creates a scratch database (dropped at the end), fills it with SQL (INSERT … SELECT over
generate_series: 100,000 accounts and 1,000,000 contacts with varied time zones, some
suppressed, some churned, some new, some surveyed recently, with their invitation history),
sets up 5 programmes over different segments through the services, then times one tick
(the scheduler's planning of every active programme, as the beat's tick runs it) and a
second tick right after. Prints seconds, contacts considered per second, invitations
planned, skips recorded, and the process's peak RSS before and after: the contacts stay in
the database, so memory stays flat.

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/nps_dev
    .venv/bin/python bench/schedule.py
    .venv/bin/python bench/schedule.py --contacts 200000 --keep
    .venv/bin/python bench/schedule.py --contact-index   # with the index asked for
"""

import argparse
import os
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nps_platform.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django_scopes import scope, scopes_disabled  # noqa: E402

from accounts import services as account_services  # noqa: E402
from nps_platform import services as platform_services  # noqa: E402
from nps_platform.celery import app as celery_app  # noqa: E402
from surveys import eligibility, scheduler, services  # noqa: E402
from surveys.models import Programme  # noqa: E402

NOW = datetime(2026, 3, 4, 0, 5, tzinfo=UTC)  # a Wednesday, just after midnight UTC
TIMEZONES = ["", "America/New_York", "America/Los_Angeles", "Europe/London", "Europe/Berlin",
             "Asia/Tokyo", "Australia/Sydney", "Asia/Kolkata", "America/Sao_Paulo"]  # fmt: skip
LOCALES = ["en", "en-GB", "de-DE", "fr", "es", "ja", ""]


CONTACT_INDEX = (
    "CREATE INDEX IF NOT EXISTS bench_contact_survey_order"
    " ON accounts_contact (organization_id, last_surveyed_at NULLS FIRST, id)"
)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def database_cpu() -> float | None:
    """CPU seconds the database backend serving us has used (PostgreSQL on this host)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fill(organization_id: int, *, accounts: int, contacts: int, prefix: str) -> None:
    """Accounts and contacts in SQL: nothing passes through Python."""
    tz_array = "ARRAY[" + ", ".join(f"'{name}'" for name in TIMEZONES) + "]"
    locale_array = "ARRAY[" + ", ".join(f"'{name}'" for name in LOCALES) + "]"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO accounts_account (organization_id, external_id, name, domain, plan, arr,
                industry, size, lifecycle_stage, signed_up_on, health_score, churned_at,
                properties, created_at, updated_at)
            SELECT %(org)s, '{prefix}acc-' || g, 'Customer ' || g, '{prefix}' || g || '.example',
                (ARRAY['starter', 'growth', 'growth', 'enterprise'])[1 + g %% 4],
                ((g * 7919) %% 200) * 1000, 'Software', '51-200',
                CASE WHEN g %% 40 = 0 THEN 'churned' WHEN g %% 9 = 0 THEN 'renewal'
                     ELSE 'active' END,
                DATE '2026-03-04' - ((g * 104729) %% 1800)::int,
                CASE WHEN g %% 13 = 0 THEN NULL ELSE ((g * 31) %% 101)::int END,
                CASE WHEN g %% 40 = 0 THEN TIMESTAMPTZ '2026-01-01' ELSE NULL END,
                '{{}}'::jsonb, now(), now()
            FROM generate_series(1::bigint, %(accounts)s) g
            """,
            {"org": organization_id, "accounts": accounts},
        )
        cursor.execute(
            "SELECT min(id) FROM accounts_account WHERE organization_id = %s", [organization_id]
        )
        first_account = cursor.fetchone()[0]
        cursor.execute(
            f"""
            INSERT INTO accounts_contact (organization_id, account_id, external_id, email, name,
                phone, title, locale, timezone, properties, suppressed_reason, suppression_note,
                last_surveyed_at, last_responded_at, created_at, updated_at)
            SELECT %(org)s, %(first)s + (hashint8(g) & 2147483647) %% %(accounts)s,
                CASE WHEN g %% 100 = 0 THEN '{prefix}crm-' || g END,
                CASE WHEN g %% 100 = 0 THEN NULL ELSE '{prefix}c' || g || '@bench.example' END,
                'Contact ' || g, '', '', ({locale_array})[1 + g %% {len(LOCALES)}],
                ({tz_array})[1 + (g / 7) %% {len(TIMEZONES)}], '{{}}'::jsonb,
                CASE WHEN g %% 50 = 0 THEN 'unsubscribed' WHEN g %% 173 = 0 THEN 'bounced'
                     ELSE '' END, '',
                CASE WHEN g %% 5 = 0
                     THEN TIMESTAMPTZ '2026-03-04' - (1 + (g * 48271) %% 150) * INTERVAL '1 day'
                     WHEN g %% 5 = 1
                     THEN TIMESTAMPTZ '2026-03-04' - (200 + (g * 48271) %% 500) * INTERVAL '1 day'
                END,
                NULL, now(), now()
            FROM generate_series(1::bigint, %(contacts)s) g
            """,
            {"org": organization_id, "first": first_account, "accounts": accounts,
             "contacts": contacts},
        )  # fmt: skip


def fill_history(organization_id: int, programme: Programme) -> None:
    """The programme's invitations behind each recent last_surveyed_at."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO surveys_invitation (organization_id, programme_id, survey_id, contact_id,
                account_id, channel, state, skip_reason, trigger, planned_for, sent_at,
                answered_at, attempts, last_error, message_id, created_at)
            SELECT organization_id, %s, %s, id, account_id, 'email',
                CASE WHEN id %% 3 = 0 THEN 'answered' ELSE 'sent' END, '', '',
                last_surveyed_at, last_surveyed_at,
                CASE WHEN id %% 3 = 0 THEN last_surveyed_at END, 1, '', '', last_surveyed_at
            FROM accounts_contact
            WHERE organization_id = %s
                AND last_surveyed_at >= TIMESTAMPTZ '2026-03-04' - INTERVAL '120 days'
            """,
            [programme.pk, programme.survey_id, organization_id],
        )


def segment(organization, name, conditions, match="all"):
    return account_services.segment_save(
        organization=organization, name=name, rules={"match": match, "conditions": conditions}
    )


def make_programmes(organization) -> list[Programme]:
    survey = services.survey_save(organization=organization, name="Relationship NPS")
    enterprise = segment(organization, "Enterprise", [{"field": "plan", "op": "eq",
                                                      "value": "enterprise"}])  # fmt: skip
    big = segment(organization, "ARR ≥ 100k", [{"field": "arr", "op": "gte", "value": "100000"}])
    emea = segment(organization, "EMEA", [{"field": "contact.timezone", "op": "in",
                                          "value": ["Europe/London", "Europe/Berlin"]}],
                   )  # fmt: skip
    loyal = segment(
        organization,
        "Loyal, not up for renewal",
        [{"field": "tenure_days", "op": "gte", "value": "365"},
         {"field": "lifecycle_stage", "op": "neq", "value": "renewal"}],
    )  # fmt: skip

    def programme(name, **fields):
        return services.programme_save(organization=organization, name=name, survey=survey,
                                       **fields)  # fmt: skip

    return [
        programme("Everyone quarterly", every_days=90, account_cap=3, account_cap_days=30,
                  min_tenure_days=30),
        programme("Enterprise", segment=enterprise, every_days=60, daily_cap=2000,
                  reminder_after_days=3),
        programme("Big accounts", segment=big, every_days=90, business_days_only=True),
        programme("EMEA monthly", segment=emea, every_days=30, account_cap=1),
        programme("Loyal customers", segment=loyal, every_days=180, min_tenure_days=365),
    ]  # fmt: skip


def one_tick(organization, programmes, label: str):
    total_planned, total_skipped, rows = 0, 0, []
    cpu_before, db_before = time.process_time(), database_cpu()
    started = time.perf_counter()
    for programme in programmes:
        began = time.perf_counter()
        with scope(organization=organization):
            report = scheduler.programme_plan(organization=organization, programme=programme,
                                              at=NOW)  # fmt: skip
        rows.append((programme.name, report, time.perf_counter() - began))
        total_planned += report.planned
        total_skipped += report.skipped
    seconds = time.perf_counter() - started
    python_cpu = time.process_time() - cpu_before
    db_after = database_cpu()
    db_cpu = None if db_before is None or db_after is None else db_after - db_before
    load = os.getloadavg()[0]
    print(f"\n{label}: {seconds:.2f} s (CPU: Python {python_cpu:.2f} s, database "
          f"{'?' if db_cpu is None else f'{db_cpu:.2f}'} s; load average {load:.1f} "
          f"on {os.cpu_count()} CPUs)")  # fmt: skip
    for name, report, spent in rows:
        skips = ", ".join(f"{k} {v}" for k, v in sorted(report.skipped_by_reason.items()))
        print(f"  {name:<22} {spent:5.2f} s  quota {report.quota:>6}  planned {report.planned:>6}"
              f"  skips recorded {report.skipped:>5}{' (capped)' if report.skips_capped else ''}"
              f"  [{skips}]")  # fmt: skip
    return seconds, total_planned, total_skipped


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--contact-index",
        action="store_true",
        help="add the index on contacts (organization, last_surveyed_at NULLS FIRST, id) that "
        "serves the pick (asked of the accounts app) before timing",
    )
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("bench/schedule.py needs PostgreSQL: set DATABASE_URL=postgres://…; skipped.")
        return
    setup_test_environment()
    celery_app.conf.task_always_eager = True
    database = settings.DATABASES["default"]
    database["TEST"]["NAME"] = f"bench_schedule_{database['NAME']}"
    old_name = database["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        run(args)
    finally:
        if not args.keep:
            connection.creation.destroy_test_db(old_name, verbosity=0)


def run(args):
    with scopes_disabled():
        organization = platform_services.organization_create(name="Bench Co", slug="bench")
        other = platform_services.organization_create(name="Other Co", slug="other")
    started = time.perf_counter()
    fill(organization.pk, accounts=args.accounts, contacts=args.contacts, prefix="")
    fill(other.pk, accounts=1_000, contacts=10_000, prefix="o-")  # another tenant, untouched
    with scope(organization=organization):
        programmes = make_programmes(organization)
    fill_history(organization.pk, programmes[0])
    with connection.cursor() as cursor:
        if args.contact_index:
            cursor.execute(CONTACT_INDEX)
        # What autovacuum does to tables that have settled: hint bits, visibility, stats.
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("SELECT count(*) FROM surveys_invitation")
        history = cursor.fetchone()[0]
    index = "with" if args.contact_index else "without"
    print(f"database: {connection.vendor} {connection.pg_version // 10000}, {index} the contact "
          "index, "
          f"{args.contacts:,} contacts, {args.accounts:,} accounts, {history:,} past invitations,"
          f" filled in {time.perf_counter() - started:.1f} s")  # fmt: skip
    considered = 0
    with scope(organization=organization):
        for programme in programmes:
            size = eligibility.in_segment(organization, programme).count()
            considered += size
            print(f"  {programme.name:<22} segment {size:>9,} contacts")

    rss_before = peak_rss_mb()
    seconds, planned, skipped = one_tick(organization, programmes, "one tick, 5 programmes")
    rss_after = peak_rss_mb()
    again, planned_again, skipped_again = one_tick(organization, programmes, "the next tick")
    print(f"\ntick: {seconds:.2f} s (target < 10 s), {considered / seconds:,.0f} contacts "
          f"considered/s ({considered:,} in segments), {planned:,} invitations planned, "
          f"{skipped:,} skips recorded")  # fmt: skip
    print(f"next tick: {again:.2f} s, {planned_again} planned, {skipped_again} skips recorded")
    print(f"peak RSS: {rss_before:.0f} MB before the tick, {rss_after:.0f} MB after")


if __name__ == "__main__":
    main()
