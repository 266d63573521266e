"""Follow-ups opened by a real Celery worker under an ingest of 10,000 responses.

Creates a scratch PostgreSQL database, migrates and seeds it like the demo (an
organization, its CS team, 300 accounts with ~1,200 contacts, support tickets and a year
of usage, so every draft has real context to render), starts a real worker
(`celery -A nps_platform worker -c 2 --pool=prefork`) on a queue of its own, then records
10,000 responses through services.responses_record (the function behind the API) in
batches of 1,000, back to back. Each batch's commit sends response_recorded, which
enqueues followups.open (and the comment analysis) for the worker.

It polls until all 10,000 follow-ups exist with their drafts, then prints follow-ups/s and
the p50/p95 delay from a response's created_at to its follow-up's created_at. The target
is p95 ≤ 5 s. At the end it stops the worker, drops the database and deletes its queue.

    .venv/bin/python bench/followups.py [--responses 10000] [--batch 1000] [--concurrency 2]

Needs PostgreSQL (BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres)
and Redis (BENCH_REDIS_URL, default redis://127.0.0.1:6379/12; only the bench's own queue
is touched).
"""

import argparse
import io
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
DB_NAME = f"nps_bench_followups_{os.getpid()}"
QUEUE = f"bench-followups-{uuid.uuid4().hex[:8]}"
NODE = f"{QUEUE}@{socket.gethostname()}"


def database_url(name: str) -> str:
    parts = urlsplit(POSTGRES_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def app_environment() -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "nps_platform.settings",
        "DATABASE_URL": database_url(DB_NAME),
        "REDIS_URL": REDIS_URL,
        "DEBUG": "0",
        "SECRET_KEY": f"bench-only-{uuid.uuid4().hex}",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
    }


def admin_sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(statement)


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


# --- Setup --------------------------------------------------------------------------------


WEAK_CLOSURES: list[str] = []


def keep_receivers_alive() -> None:
    """Signal receivers defined inside AppConfig.ready() and connected weakly (Django's
    default) are garbage-collected once ready() returns when DEBUG is off: then
    response_recorded reaches nobody and no follow-up is ever opened. Until every such
    connect() says weak=False, hold them strongly for this run, and say which ones."""
    from django.dispatch import Signal

    connect = Signal.connect

    def strong_connect(self, receiver, sender=None, weak=True, dispatch_uid=None):
        if weak and "<locals>" in getattr(receiver, "__qualname__", ""):
            WEAK_CLOSURES.append(dispatch_uid or receiver.__qualname__)
        return connect(self, receiver, sender, weak=False, dispatch_uid=dispatch_uid)

    Signal.connect = strong_connect


def setup_database():
    """Creates, migrates and seeds the scratch database; returns the organization."""
    admin_sql(f'CREATE DATABASE "{DB_NAME}"')
    os.environ.update(app_environment())
    import django

    keep_receivers_alive()
    from nps_platform.celery import app

    # Before anything is sent (the router keeps the queues it first saw): every task this
    # process enqueues goes to the bench's own queue and worker.
    app.conf.task_default_queue = QUEUE
    django.setup()
    from django.core.management import call_command
    from django_scopes import scope, scopes_disabled

    from accounts.demo import seed_accounts
    from nps_platform import services
    from nps_platform.models import Role, User
    from responses.events import response_recorded

    if WEAK_CLOSURES:
        print(
            f"note: {len(WEAK_CLOSURES)} signal receivers are closures connected weakly "
            f"({', '.join(WEAK_CLOSURES)}); kept alive for this run. With DEBUG off they "
            "are garbage-collected unless connected with weak=False."
        )
    receivers = [r.__qualname__ for r in response_recorded._live_receivers(None)[0]]
    if not any("open_on_record" in name for name in receivers):
        raise SystemExit(f"response_recorded does not reach the follow-ups: {receivers}")
    call_command("migrate", verbosity=0)
    with scopes_disabled():
        organization = services.organization_create(name="Bench Co", slug="bench")
        for email, role in [
            ("admin@bench.test", Role.ADMIN),
            ("cs1@bench.test", Role.CS_MANAGER),
            ("cs2@bench.test", Role.CS_MANAGER),
            ("cs3@bench.test", Role.CS_MANAGER),
        ]:
            user = User.objects.create_user(email=email, name=email.split("@")[0].upper())
            services.membership_add(organization=organization, user=user, role=role)
    with scope(organization=organization):
        seed_accounts(organization=organization, stdout=io.StringIO())
    return organization


def teardown_database() -> None:
    from django.db import connections

    connections.close_all()
    admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def start_worker(concurrency: int, log_path: Path) -> subprocess.Popen:
    log = log_path.open("w")
    process = subprocess.Popen(  # noqa: S603 (the venv's celery, fixed arguments)
        [
            str(Path(sys.executable).with_name("celery")),
            "-A",
            "nps_platform",
            "worker",
            "-c",
            str(concurrency),
            "--pool=prefork",
            "-Q",
            QUEUE,
            "-n",
            NODE,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        ],  # fmt: skip
        cwd=ROOT,
        env=app_environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    from nps_platform.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the worker exited ({process.returncode}); see {log_path}")
        if app.control.ping(destination=[NODE], timeout=0.5):
            return process
    stop_worker(process)
    raise SystemExit(f"the worker did not answer a ping within 60 s; see {log_path}")


def stop_worker(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()  # a warm shutdown: the main process lets running tasks finish
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: it and its children
            process.wait()


def drop_queue() -> int:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    left = client.llen(QUEUE)
    client.delete(QUEUE, f"_kombu.binding.{QUEUE}", f"_kombu.binding_permanent.{QUEUE}")
    return left


# --- The run ------------------------------------------------------------------------------


def ingest(organization, total: int, batch: int, pace: float = 0) -> float:
    """Records `total` responses in batches, back to back (or `pace` responses a second
    on average); returns the seconds it took."""
    from django_scopes import scope

    from accounts.models import Contact
    from responses.demo import COMMENTS
    from responses.services import responses_record

    rng = random.Random(17)  # noqa: S311
    with scope(organization=organization):
        contacts = list(
            Contact.objects.filter(organization=organization).values_list("pk", flat=True)
        )
        started = time.perf_counter()
        for start in range(0, total, batch):
            items = []
            for n in range(start, min(total, start + batch)):
                score = rng.choices(range(11), weights=[2, 2, 2, 3, 3, 4, 5, 9, 12, 16, 14])[0]
                category = "detractor" if score <= 6 else "passive" if score <= 8 else "promoter"
                comment = rng.choice(COMMENTS[category]) if rng.random() < 0.62 else ""
                items.append(
                    {
                        "contact_id": rng.choice(contacts),
                        "score": score,
                        "comment": comment,
                        "external_id": f"bench-{n:06d}",
                    }
                )
            report = responses_record(organization=organization, items=items, channel="api")
            if report.count("error"):
                raise SystemExit(f"ingest errors: {report.as_dict()['results'][:3]}")
            if pace:
                time.sleep(max(0.0, started + (start + len(items)) / pace - time.perf_counter()))
        return time.perf_counter() - started


def wait_for_followups(organization, total: int, timeout: float, started: float) -> bool:
    from django_scopes import scope

    from followups.models import FollowUp

    deadline = time.monotonic() + timeout
    last_print = 0.0
    with scope(organization=organization):
        drafted = FollowUp.objects.filter(organization=organization).exclude(draft_body="")
        while time.monotonic() < deadline:
            done = drafted.count()
            if done >= total:
                return True
            if time.monotonic() - last_print >= 10:
                last_print = time.monotonic()
                print(f"  … {done:>6,} follow-ups after {time.perf_counter() - started:6.1f} s")
            time.sleep(0.25)
    return False


def report(organization, total: int, ingest_seconds: float) -> dict:
    from django_scopes import scope

    from followups.models import FollowUp
    from responses.models import Response

    with scope(organization=organization):
        rows = list(
            FollowUp.objects.filter(organization=organization).values_list(
                "response__created_at", "created_at"
            )
        )
        first_response = Response.objects.filter(organization=organization).earliest("created_at")
    delays = sorted((made - answered).total_seconds() for answered, made in rows)
    last = max(made for _, made in rows)
    span = (last - first_response.created_at).total_seconds()
    figures = {
        "followups": len(rows),
        "ingest_s": ingest_seconds,
        "span_s": span,
        "per_s": len(rows) / span,
        "p50": statistics.median(delays),
        "p95": percentile(delays, 95),
        "max": delays[-1],
    }
    print(
        f"\n{len(rows):,} follow-ups with drafts for {total:,} responses\n"
        f"  ingest: {total:,} responses in {ingest_seconds:.1f} s "
        f"({total / ingest_seconds:,.0f}/s)\n"
        f"  follow-ups: {figures['per_s']:.1f}/s (first response to last follow-up: "
        f"{span:.1f} s)\n"
        f"  delay response.created_at → followup.created_at: p50 {figures['p50']:.2f} s, "
        f"p95 {figures['p95']:.2f} s, max {figures['max']:.2f} s "
        f"({'meets' if figures['p95'] <= 5 else 'misses'} the p95 ≤ 5 s target)"
    )
    return figures


def _terminated(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")


def main():
    signal.signal(signal.SIGTERM, _terminated)  # clean up (worker, database) on a timeout
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--responses", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--pace", type=float, default=0, help="responses a second (default: as fast as possible)"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait")
    args = parser.parse_args()

    print(f"scratch database {DB_NAME}; Redis {REDIS_URL} queue {QUEUE}; {os.cpu_count()} CPUs")
    worker = None
    log_path = Path(f"/tmp/{QUEUE}.log")
    try:
        setup_started = time.perf_counter()
        organization = setup_database()
        print(f"seeded in {time.perf_counter() - setup_started:.1f} s")
        worker = start_worker(args.concurrency, log_path)
        print(f"worker: celery prefork -c {args.concurrency} on {QUEUE} (log {log_path})\n")

        started = time.perf_counter()
        ingest_seconds = ingest(organization, args.responses, args.batch, args.pace)
        print(
            f"  recorded {args.responses:,} responses in batches of {args.batch:,} in "
            f"{ingest_seconds:.1f} s"
        )
        if not wait_for_followups(organization, args.responses, args.timeout, started):
            print(f"gave up after {args.timeout:.0f} s")
        report(organization, args.responses, ingest_seconds)
    finally:
        if worker is not None:
            stop_worker(worker)
        left = drop_queue()
        teardown_database()
        print(f"\nworker stopped, {DB_NAME} dropped, queue deleted ({left} messages left in it)")


if __name__ == "__main__":
    main()
