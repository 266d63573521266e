"""The exec dashboard's metrics over 1,000,000 responses in two years, on PostgreSQL.

Creates a scratch database (dropped at the end), fills it in SQL over generate_series
(10,000 accounts, 200,000 contacts, 1,000,000 responses over 730 days with comments,
themes, detractor follow-ups and invitations, 5 segments, plus another organization's
200,000 responses as noise), rebuilds the rollups, then times, in the same run:

- the full dashboard computation (`insights.metrics.dashboard`, default filters: the last
  12 months by month);
- the headline plus the monthly trend through the service (`headline` + `trend`);
- one raw SQL query computing the headline NPS and the monthly trend from the responses.

Prints the median of several runs of each, their ratio, the Python and PostgreSQL CPU per
run (our backend's: with parallel query its workers' CPU is not counted; `--serial` turns
parallel query off so it is; nor is the CPU of the second connection the dashboard runs
some reads on, `--in-turn` runs every read on ours), the load average, and each figure on
its own. `--keep`
keeps the scratch database and `--reuse` measures it again as it is (after migrating it,
which rebuilds a new rollup, and a VACUUM ANALYZE), so the few minutes of filling are paid
once. `--profile` then also prints one full computation's statements by time and its
Python functions by own time (cProfile).

    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/nps_dev
    .venv/bin/python bench/dashboard.py
    .venv/bin/python bench/dashboard.py --responses 200000 --keep
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nps_platform.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_scopes import scope, scopes_disabled  # noqa: E402

from accounts import services as account_services  # noqa: E402
from insights import metrics, selectors, services  # noqa: E402
from nps_platform import services as platform_services  # noqa: E402
from nps_platform.celery import app as celery_app  # noqa: E402

RUNS = 5
FIGURES = ["headline", "trend", "histogram", "segments", "account_level", "revenue_at_risk",
           "rates", "coverage", "loop_health", "themes", "churn"]  # fmt: skip


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


def fill(org: int, *, accounts: int, contacts: int, responses: int, prefix: str, rich: bool):
    """Accounts, contacts and responses in SQL: nothing passes through Python."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO accounts_account (organization_id, external_id, name, domain, plan, arr,
                industry, size, lifecycle_stage, renewal_date, signed_up_on, health_score,
                churned_at, properties, created_at, updated_at)
            SELECT %(org)s, '{prefix}acc-' || g, 'Customer ' || g, '',
                (ARRAY['starter', 'growth', 'growth', 'enterprise'])[1 + g %% 4],
                ((g * 7919) %% 200) * 1000, 'Software', '51-200', 'active',
                CURRENT_DATE + ((g * 31) %% 365)::int, CURRENT_DATE - ((g * 104729) %% 1800)::int,
                CASE WHEN g %% 13 = 0 THEN NULL ELSE ((g * 31) %% 101)::int END,
                CASE WHEN g %% 25 = 0 THEN now() - ((g %% 300) || ' days')::interval END,
                '{{}}'::jsonb, now(), now()
            FROM generate_series(1::bigint, %(accounts)s) g
            """,
            {"org": org, "accounts": accounts},
        )
        cursor.execute("SELECT min(id) FROM accounts_account WHERE organization_id = %s", [org])
        first_account = cursor.fetchone()[0]
        cursor.execute(
            f"""
            INSERT INTO accounts_contact (organization_id, account_id, email, name, phone, title,
                locale, timezone, properties, suppressed_reason, suppression_note, created_at,
                updated_at)
            SELECT %(org)s, %(first)s + (hashint8(g) & 2147483647) %% %(accounts)s,
                '{prefix}c' || g || '@bench.example', 'Contact ' || g, '', '', 'en', '',
                '{{}}'::jsonb, '', '', now(), now()
            FROM generate_series(1::bigint, %(contacts)s) g
            """,
            {"org": org, "first": first_account, "accounts": accounts, "contacts": contacts},
        )
        cursor.execute("SELECT min(id) FROM accounts_contact WHERE organization_id = %s", [org])
        first_contact = cursor.fetchone()[0]
        # Scores skewed like a real base: ~45% promoters, ~30% passives, ~25% detractors.
        cursor.execute(
            """
            INSERT INTO responses_response (organization_id, contact_id, account_id, survey_id,
                score, comment, category, danger_zone, channel, has_comment, themes,
                analyzed_hash, tags, properties, submitted_at, created_at, updated_at)
            SELECT %(org)s, c.id, c.account_id, NULL, s.score,
                CASE WHEN g %% 3 = 0 THEN 'Comment ' || g ELSE '' END,
                CASE WHEN s.score >= 9 THEN 'promoter' WHEN s.score >= 7 THEN 'passive'
                     ELSE 'detractor' END,
                s.score <= 3,
                (ARRAY['email', 'email', 'link', 'in_app', 'api'])[1 + g %% 5],
                g %% 3 = 0, '[]'::jsonb, '', '[]'::jsonb, '{}'::jsonb,
                t.at, t.at, t.at
            FROM generate_series(1::bigint, %(responses)s) g
            CROSS JOIN LATERAL (SELECT
                (ARRAY[0,1,2,3,4,5,6,6,7,7,7,8,8,8,9,9,9,9,10,10,10,10])
                    [1 + (hashint8(g * 3) & 2147483647) %% 22] AS score) s
            CROSS JOIN LATERAL (SELECT now() - ((hashint8(g * 7) & 2147483647) %% (730 * 86400))
                * INTERVAL '1 second' AS at) t
            JOIN accounts_contact c
                ON c.id = %(first)s + (hashint8(g * 5) & 2147483647) %% %(contacts)s
            """,
            {"org": org, "first": first_contact, "contacts": contacts, "responses": responses},
        )
        cursor.execute(LATEST_SCORE, [org])
        if not rich:
            return
        cursor.execute(
            """
            INSERT INTO responses_responsetheme (organization_id, response_id, theme)
            SELECT organization_id, id,
                (ARRAY['pricing', 'support', 'performance', 'usability', 'onboarding',
                       'praise', 'bugs', 'billing'])[1 + id %% 8]
            FROM responses_response WHERE organization_id = %s AND has_comment
            """,
            [org],
        )
        cursor.execute(
            """
            INSERT INTO followups_followup (organization_id, response_id, account_id, contact_id,
                playbook, priority, priority_reasons, status, due_at, draft_subject, draft_body,
                draft_edited, outcome, closing_notes, first_contact_at, closed_at, created_at,
                updated_at)
            SELECT organization_id, id, account_id, contact_id, 'recover', 50, '[]'::jsonb,
                CASE WHEN id %% 4 = 0 THEN 'new' ELSE 'closed' END,
                submitted_at + INTERVAL '24 hours', '', '', false,
                CASE WHEN id %% 4 = 0 THEN '' ELSE
                    (ARRAY['resolved', 'churn_risk', 'no_response'])[1 + id %% 3] END, '',
                CASE WHEN id %% 4 = 0 THEN NULL
                     ELSE submitted_at + (id %% 48) * INTERVAL '1 hour' END,
                CASE WHEN id %% 4 = 0 THEN NULL
                     ELSE submitted_at + (id %% 200) * INTERVAL '1 hour' END,
                submitted_at, submitted_at
            FROM responses_response WHERE organization_id = %s AND category = 'detractor'
            """,
            [org],
        )


LATEST_SCORE = """
    UPDATE accounts_account a SET last_score = l.score, last_score_at = l.submitted_at
    FROM (SELECT DISTINCT ON (account_id) account_id, score, submitted_at
          FROM responses_response WHERE organization_id = %s AND account_id IS NOT NULL
          ORDER BY account_id, submitted_at DESC, id DESC) l
    WHERE a.id = l.account_id
"""


def fill_invitations(org: int, survey_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO surveys_invitation (organization_id, survey_id, contact_id, account_id,
                channel, state, skip_reason, trigger, planned_for, sent_at, delivered_at,
                answered_at, attempts, last_error, message_id, created_at)
            SELECT organization_id, %s, contact_id, account_id, channel, 'answered', '', '',
                submitted_at - INTERVAL '1 day', submitted_at - INTERVAL '1 day',
                submitted_at - INTERVAL '1 day', submitted_at, 1, '', '', submitted_at
            FROM responses_response WHERE organization_id = %s AND id %% 2 = 0
            """,
            [survey_id, org],
        )


RAW_QUERY = """
    SELECT date_trunc('month', submitted_at AT TIME ZONE %(tz)s) AS month,
        count(*) FILTER (WHERE score >= 9) AS promoters,
        count(*) FILTER (WHERE score BETWEEN 7 AND 8) AS passives,
        count(*) FILTER (WHERE score <= 6) AS detractors
    FROM responses_response
    WHERE organization_id = %(org)s AND submitted_at >= %(low)s AND submitted_at < %(high)s
    GROUP BY ROLLUP (month)
"""


def timed(label, work):
    """Median wall time of RUNS runs (after one warm-up), with CPU per run."""
    work()
    walls, cpu_before, db_before = [], time.process_time(), database_cpu()
    for _ in range(RUNS):
        started = time.perf_counter()
        result = work()
        walls.append(time.perf_counter() - started)
    python_cpu = (time.process_time() - cpu_before) / RUNS
    db_after = database_cpu()
    db_cpu = None if db_before is None or db_after is None else (db_after - db_before) / RUNS
    median = statistics.median(walls)
    print(
        f"{label:<34} median {median * 1000:8.1f} ms  (min {min(walls) * 1000:7.1f} ms; CPU per"
        f" run: Python {python_cpu * 1000:6.1f} ms, PostgreSQL "
        f"{'?' if db_cpu is None else f'{db_cpu * 1000:6.1f}'} ms)"
    )
    return median, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--serial",
        action="store_true",
        help="no parallel query workers, so the PostgreSQL CPU column counts all of it (it "
        "reads only our backend's CPU, not its workers')",
    )
    parser.add_argument(
        "--in-turn",
        action="store_true",
        help="every read of the dashboard in turn on one connection (DASHBOARD_READS_ASIDE "
        "off), so the PostgreSQL CPU column counts all of it",
    )
    parser.add_argument(
        "--reuse", action="store_true", help="reuse a kept scratch database as it is (no fill)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print one full computation's statements by time and its Python profile",
    )
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("bench/dashboard.py needs PostgreSQL: set DATABASE_URL=postgres://…; skipped.")
        return
    setup_test_environment()
    celery_app.conf.task_always_eager = True
    database = settings.DATABASES["default"]
    database["TEST"]["NAME"] = f"bench_dashboard_{database['NAME']}"
    old_name = database["NAME"]
    connection.creation.create_test_db(
        verbosity=0, autoclobber=True, keepdb=args.reuse, serialize=False
    )
    try:
        run(args)
    finally:
        if not (args.keep or args.reuse):
            connection.creation.destroy_test_db(old_name, verbosity=0)


def run(args):
    if args.in_turn:
        settings.DASHBOARD_READS_ASIDE = False
    if args.serial:
        with connection.cursor() as cursor:
            cursor.execute("SET max_parallel_workers_per_gather = 0")
    from nps_platform.models import Organization
    from surveys import services as survey_services

    with scopes_disabled():
        existing = Organization.objects.filter(slug="bench").first()
    if args.reuse and existing is not None:
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")  # a migration may have just filled a rollup
        measure(existing, filled=None, rebuilt=None, profile=args.profile)
        return
    with scopes_disabled():
        organization = platform_services.organization_create(name="Bench Co", slug="bench")
        other = platform_services.organization_create(name="Other Co", slug="other")
    started = time.perf_counter()
    fill(organization.pk, accounts=args.accounts, contacts=args.contacts,
         responses=args.responses, prefix="", rich=True)  # fmt: skip
    fill(other.pk, accounts=1_000, contacts=20_000, responses=args.responses // 5, prefix="o-",
         rich=False)  # fmt: skip
    with scope(organization=organization):
        survey = survey_services.survey_save(organization=organization, name="Relationship")
        for name, conditions in [
            ("Enterprise", [{"field": "plan", "op": "eq", "value": "enterprise"}]),
            ("Growth", [{"field": "plan", "op": "eq", "value": "growth"}]),
            ("ARR ≥ 100k", [{"field": "arr", "op": "gte", "value": "100000"}]),
            ("Low health", [{"field": "health_score", "op": "lt", "value": "40"}]),
            ("Renewing in 90 days", [{"field": "renewal_date", "op": "within_next_days",
                                      "value": "90"}]),
        ]:  # fmt: skip
            account_services.segment_save(
                organization=organization,
                name=name,
                rules={"match": "all", "conditions": conditions},
            )
    fill_invitations(organization.pk, survey.pk)
    filled = time.perf_counter() - started
    started = time.perf_counter()
    with scope(organization=organization):
        services.rollup_rebuild(organization.pk)
    with scope(organization=other):
        services.rollup_rebuild(other.pk)
    rebuilt = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    measure(organization, filled=filled, rebuilt=rebuilt, profile=args.profile)


def profile_full(organization, filters):
    """One full computation: each statement's wall time (slowest first), then the Python
    functions by their own time."""
    import cProfile
    import pstats

    statements = []

    def timing(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements.append((time.perf_counter() - started, " ".join(sql.split())))

    profiler = cProfile.Profile()
    with scope(organization=organization), connection.execute_wrapper(timing):
        profiler.enable()
        metrics.dashboard(organization, filters)
        profiler.disable()
    print(f"\none full computation: {len(statements)} statements, slowest first:")
    for seconds, sql in sorted(statements, reverse=True):
        print(f"  {seconds * 1000:7.1f} ms  {sql[:110]}")
    print()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


def measure(organization, *, filled, rebuilt, profile=False):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE organization_id = %s), count(*) FROM responses_response",
            [organization.pk],
        )
        ours, total = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM insights_dailyscore WHERE organization_id = %s",
                       [organization.pk])  # fmt: skip
        rollup_rows = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM insights_accountmonth WHERE organization_id = %s",
                       [organization.pk])  # fmt: skip
        account_months = cursor.fetchone()[0]
        cursor.execute(
            "SELECT (SELECT count(*) FROM insights_themeday WHERE organization_id = %s), "
            "(SELECT count(*) FROM insights_loopday WHERE organization_id = %s)",
            [organization.pk, organization.pk],
        )
        theme_days, loop_days = cursor.fetchone()
    made = (
        "reused"
        if filled is None
        else f"filled in {filled:.1f} s, rollup rebuilt in {rebuilt:.1f} s"
    )
    print(
        f"database: PostgreSQL {connection.pg_version // 10000}; {ours:,} responses in the "
        f"organization, {total - ours:,} in another; {made}; {rollup_rows:,} daily rollup "
        f"rows, {account_months:,} account-month rows, {theme_days:,} theme-day rows, "
        f"{loop_days:,} loop-day rows"
    )

    with scope(organization=organization):
        filters = metrics.filters_from_params(organization, {})
    low = timezone.make_aware(
        timezone.datetime.combine(filters.since, timezone.datetime.min.time())
    )
    high = timezone.make_aware(
        timezone.datetime.combine(filters.until + timezone.timedelta(days=1),
                                  timezone.datetime.min.time())
    )  # fmt: skip
    print(f"filters: {filters.since} … {filters.until}, by {filters.period}")
    print(
        "reads: "
        + (
            "some on a second connection, whose PostgreSQL CPU is not counted\n"
            if settings.DASHBOARD_READS_ASIDE
            else "all in turn on one connection\n"
        )
    )

    def raw():
        with connection.cursor() as cursor:
            cursor.execute(RAW_QUERY, {"tz": settings.TIME_ZONE, "org": organization.pk,
                                       "low": low, "high": high})  # fmt: skip
            return cursor.fetchall()

    def headline_and_trend():
        with scope(organization=organization):
            return metrics.headline(organization, filters), metrics.trend(organization, filters)

    def full():
        with scope(organization=organization):
            return metrics.dashboard(organization, filters)

    raw_s, rows = timed("raw SQL: headline + monthly trend", raw)
    service_s, (head, points) = timed("service: headline + trend", headline_and_trend)
    full_s, board = timed("service: full dashboard", full)

    def cached():
        with scope(organization=organization):
            return metrics.dashboard_cached(organization, filters)

    cached_s, _ = timed("service: dashboard, ≤ 60 s cache", cached)
    total_row = [r for r in rows if r[0] is None][0]
    assert (head.promoters, head.passives, head.detractors) == tuple(total_row[1:]), "mismatch"
    print(f"\nheadline NPS {head.nps:.1f} [{head.low:.1f}, {head.high:.1f}], n = {head.n:,}; "
          f"{len(points)} months; account-level NPS {board.account_level.nps.nps:.1f} over "
          f"{board.account_level.accounts:,} accounts")  # fmt: skip
    print(f"headline + trend / raw query: {service_s / raw_s:.2f}× (target ≤ 2×)")
    print(f"full dashboard: {full_s * 1000:.0f} ms computed, {cached_s * 1000:.1f} ms from the "
          "60-second cache (target ≤ 300 ms)")  # fmt: skip
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    with scope(organization=organization):
        rolled = selectors.account_scores(organization, filters)
        raw = selectors.account_scores(organization, filters, raw=True)
    same = (
        rolled.sort_values("account_id")
        .reset_index(drop=True)
        .equals(raw.sort_values("account_id").reset_index(drop=True))
    )
    print(f"per-account rows from the rollups equal the raw window: {same}")
    assert same, "the account rollups disagree with the responses"
    if profile:
        profile_full(organization, filters)
    with scope(organization=organization):
        print("\nper figure (median of 3 runs; CPU per run):")
        for name in FIGURES:
            walls, cpu_before, db_before = [], time.process_time(), database_cpu()
            for _ in range(3):
                started = time.perf_counter()
                getattr(metrics, name)(organization, filters)
                walls.append(time.perf_counter() - started)
            python_cpu = (time.process_time() - cpu_before) / 3
            db_after = database_cpu()
            db_cpu = (
                "?"
                if db_before is None or db_after is None
                else (f"{(db_after - db_before) / 3 * 1000:6.1f}")
            )
            print(
                f"  {name:<16} {statistics.median(walls) * 1000:8.1f} ms  (Python "
                f"{python_cpu * 1000:6.1f} ms, PostgreSQL {db_cpu} ms)"
            )


if __name__ == "__main__":
    main()
