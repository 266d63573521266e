"""Ingest throughput and latency of the responses API, served for real.

Creates a scratch PostgreSQL database, migrates and seeds it (an organization, an API key,
200 accounts and 1,000 contacts), serves the app with gunicorn on 127.0.0.1, and drives it
from here at a FIXED arrival rate (open loop: a request is sent when its time comes, whether
or not earlier ones have been answered, and its latency counts from that moment, so a
stalled server cannot hide its queue). Then bulk ingest in batches of 1,000. Prints figures;
stops gunicorn, drops the database and empties its Redis database at the end.

Each run also prints what its requests cost in CPU (gunicorn's workers and the database's
PostgreSQL backends, read from /proc, per request served) and the rate that allows on idle
cores: a figure that holds on a shared machine, where latencies depend on everyone's load.

Production-like: DEBUG off, tasks go to Redis (no worker runs: the comment analysis is
queued, not done in the web process), the per-key rate limit lifted for the run, planner
statistics gathered after seeding. A recorded batch joins its organization's announcement
queue in Redis, and only the request that finds no drain scheduled publishes a Celery task;
with no worker draining it, that is the run's first request only (with one, about one
publish per drain, still a small share of the requests at this rate). The load generator
is light on purpose (it shares the cores): asyncio over keep-alive HTTP/1.1 connections,
reading only the status and length.

    .venv/bin/python bench/ingest.py [--rate 300] [--seconds 20] [--rows 50000]
        [--workers 2] [--threads 4]

Needs PostgreSQL (BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres)
and Redis (BENCH_REDIS_URL, default redis://127.0.0.1:6379/7; its database is flushed).
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
DB_NAME = f"{os.environ.get('BENCH_DB_PREFIX', 'nps_bench_')}ingest_{os.getpid()}"
CONTACTS = 1000
COMMENTS = [
    "",
    "",
    "Great product, support answered within minutes.",
    "Too expensive for what we use, and the export keeps failing.",
    "Setup was confusing but it works now.",
    "Love the dashboards. Please add a Salesforce integration.",
    "Slow to load in the mornings.",
]


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
        "SECURE_HSTS_SECONDS": "0",
        "API_RATE_LIMIT": "100000000/min",
        "LOG_LEVEL": "WARNING",
    }


def admin_sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(statement)


def admin_sql_in(database: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(database_url(database), autocommit=True) as conn:
        conn.execute(statement)


# --- Setup --------------------------------------------------------------------------------


def setup_database() -> str:
    """Creates, migrates and seeds the scratch database; returns the raw API key."""
    admin_sql(f'CREATE DATABASE "{DB_NAME}"')
    os.environ.update(app_environment())
    import django

    django.setup()
    from django.core.management import call_command
    from django_scopes import scope, scopes_disabled

    from accounts import services as account_services
    from nps_platform import services

    call_command("migrate", verbosity=0)
    with scopes_disabled():
        organization = services.organization_create(name="Bench Co", slug="bench")
        raw_key = services.api_key_create(
            organization=organization, name="bench", created_by=None
        ).raw_key
    with scope(organization=organization):
        account_services.records_upsert(
            organization=organization,
            kind="accounts",
            items=[
                {"external_id": f"acc-{n}", "name": f"Customer {n}", "arr": 1000 * n}
                for n in range(200)
            ],
        )
        account_services.records_upsert(
            organization=organization,
            kind="contacts",
            items=[
                {
                    "email": f"person{n}@customer.example",
                    "external_id": f"c-{n}",
                    "account_external_id": f"acc-{n % 200}",
                }
                for n in range(CONTACTS)
            ],
        )
    from django.db import connection, connections

    with connection.cursor() as cursor:
        # Planner statistics, as a live database has them (autovacuum would gather them a
        # minute later): without them, a lookup by email may scan the organization's contacts.
        cursor.execute("ANALYZE")
    connections.close_all()
    return raw_key


def teardown_database() -> None:
    admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def flush_redis() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(port: int, workers: int, threads: int, access_log: Path) -> subprocess.Popen:
    process = subprocess.Popen(  # noqa: S603 (our own interpreter and fixed arguments)
        [
            *(sys.executable, "-m", "gunicorn", "nps_platform.wsgi:application"),
            *("-w", str(workers), "-b", f"127.0.0.1:{port}"),
            # One thread: sync workers, which close the connection after each answer. More:
            # gthread workers, which keep it open for the client's next request.
            *(("--threads", str(threads), "--keep-alive", "10") if threads > 1 else ()),
            *("--backlog", "2048", "--log-level", "warning"),
            *("--access-logfile", str(access_log)),
        ],
        cwd=ROOT,
        env=app_environment(),
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("gunicorn did not answer /healthz within 30 s")


def stop_gunicorn(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- CPU accounting ---------------------------------------------------------------------------


class ServerCpu:
    """CPU time used by gunicorn's workers and by the PostgreSQL backends serving the scratch
    database (read from /proc; PostgreSQL runs on this host). Per-request CPU holds on a busy
    shared machine, where wall-clock figures depend on everyone else's load."""

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, gunicorn_pid: int, access_log: Path):
        self.gunicorn_pid = gunicorn_pid
        self.access_log = access_log

    def served(self) -> int:
        """Requests gunicorn has answered so far (its access log), health probes aside:
        under overload many are answered after their client gave up, and still cost CPU."""
        with self.access_log.open("rb") as log:
            return sum(1 for line in log if b"/healthz" not in line)

    @classmethod
    def _stat(cls, pid: int) -> tuple[int, float] | None:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / cls.TICK  # ppid, cpu

    def _database_pids(self) -> list[int]:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [DB_NAME],
            ).fetchall()
        return [pid for (pid,) in rows]

    def snapshot(self) -> dict:
        app = {}
        for entry in Path("/proc").iterdir():
            stat = self._stat(int(entry.name)) if entry.name.isdigit() else None
            if stat and stat[0] == self.gunicorn_pid:
                app[int(entry.name)] = stat[1]
        database = {pid: stat[1] for pid in self._database_pids() if (stat := self._stat(pid))}
        return {
            "app": app,
            "db": database,
            "bench": time.process_time(),
            "served": self.served(),
        }

    @staticmethod
    def used(before: dict, after: dict) -> tuple[float, float, float]:
        def grown(kind):
            return sum(v - before[kind].get(pid, 0.0) for pid, v in after[kind].items())

        return grown("app"), grown("db"), after["bench"] - before["bench"]


CPU: ServerCpu | None = None


def cpu_report(before: dict, count: int | None = None, unit: str = "request") -> float:
    """Prints the CPU used per request served (or per `count` rows) since `before`; returns
    the server's part (app + PostgreSQL) in ms."""
    after = CPU.snapshot()
    app, database, bench = ServerCpu.used(before, after)
    if count is None:
        count = after["served"] - before["served"]
    per = [1000 * x / max(count, 1) for x in (app, database, bench)]
    ceiling = (os.cpu_count() or 1) * 1000 / sum(per) if sum(per) else float("nan")
    print(
        f"{'':<38} CPU per {unit}: app {per[0]:.2f} ms + PostgreSQL {per[1]:.2f} ms + "
        f"load generator {per[2]:.2f} ms -> at most {ceiling:,.0f} {unit}s/s on "
        f"{os.cpu_count()} idle cores"
    )
    return per[0] + per[1]


# --- Load ---------------------------------------------------------------------------------


def raw_request(method: str, path: str, port: int, key: str, body=None, headers=None) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Authorization: Bearer {key}",
        "Connection: keep-alive",
        f"Content-Length: {len(payload)}",
    ]
    if body is not None:
        lines.append("Content-Type: application/json")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


TIMEOUT = 60.0  # seconds; a request not answered by then counts as failed (status 0)


class Connections:
    """Keep-alive HTTP/1.1 connections to the server, reused while it keeps them open (gthread
    workers do; sync workers answer `Connection: close`). A light client: it reads the status
    line and Content-Length, nothing else, so its CPU stays small beside the server's."""

    def __init__(self, port: int):
        self.port = port
        self.idle: list = []

    async def exchange(self, request: bytes) -> int:
        for attempt in range(2):
            reused = bool(self.idle) and not attempt  # a retry always opens a new one
            reader, writer = (
                self.idle.pop() if reused else await asyncio.open_connection("127.0.0.1", self.port)
            )
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
            except (OSError, asyncio.IncompleteReadError):
                writer.close()
                if reused and not attempt:
                    continue  # the server closed an idle connection: once more on a new one
                raise
            lowered = head.lower()
            start = lowered.find(b"content-length:")
            length = int(lowered[start + 15 : lowered.index(b"\r\n", start)]) if start >= 0 else 0
            await reader.readexactly(length)
            if b"connection: close" in lowered:
                writer.close()
            else:
                self.idle.append((reader, writer))
            return int(head[9:12]) if head.startswith(b"HTTP/1.") else 0
        return 0


async def _exchange(port: int, request: bytes) -> int:
    return await CONNECTIONS.setdefault(port, Connections(port)).exchange(request)


CONNECTIONS: dict[int, Connections] = {}
NO_ANSWER: Counter = Counter()  # why requests got no answer (status 0), by exception


async def _one(port: int, request: bytes, due: float, results: list) -> None:
    try:
        status = await asyncio.wait_for(_exchange(port, request), TIMEOUT)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
        status = 0
        NO_ANSWER[type(exc).__name__] += 1
    results.append((status, time.perf_counter() - due, time.perf_counter()))


async def _open_loop(port: int, rate: float, seconds: float, make_request) -> tuple[list, float]:
    total = int(rate * seconds)
    results: list = []
    tasks = []
    start = time.perf_counter() + 0.1
    for n in range(total):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(port, make_request(n), due, results)))
    await asyncio.gather(*tasks)
    _close_connections(port)
    return results, start


def _close_connections(port: int) -> None:
    """Closes the idle connections: they belong to this event loop, which ends."""
    for _, writer in CONNECTIONS.pop(port, Connections(port)).idle:
        writer.close()


async def _closed_loop(port: int, clients: int, seconds: float, make_request) -> list:
    results: list = []
    deadline = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def client():
        while time.perf_counter() < deadline:
            await _one(port, make_request(next(counter)), time.perf_counter(), results)

    await asyncio.gather(*(client() for _ in range(clients)))
    _close_connections(port)
    return results


def capacity(label: str, port: int, clients: int, seconds: float, make_request, ok: set[int]):
    """Closed loop: `clients` connections back to back. The most the server can do, which
    says whether a fixed rate is sustainable at all."""
    results = asyncio.run(_closed_loop(port, clients, seconds, make_request))
    latencies = sorted(latency * 1000 for status, latency, _ in results if status in ok)
    print(
        f"{label:<38} capacity ({clients} clients back to back, {seconds:.0f} s): "
        f"{len(latencies) / seconds:6.1f} ok/s  p50 {percentile(latencies, 50):6.1f} ms"
    )
    return len(latencies) / seconds


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


def drain(port: int) -> None:
    """Waits until the server has worked off what a run left queued (requests whose client
    gave up are still served), so the next run and its CPU count start clean."""
    deadline, quick = time.monotonic() + 600, 0
    while quick < 3 and time.monotonic() < deadline:
        began = time.perf_counter()
        try:
            conn = HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            conn.close()
        except OSError:
            pass
        quick = quick + 1 if time.perf_counter() - began < 0.1 else 0
        time.sleep(0.1)


def fixed_rate(label: str, port: int, rate: float, seconds: float, make_request, ok: set[int]):
    before = CPU.snapshot()
    NO_ANSWER.clear()
    results, start = asyncio.run(_open_loop(port, rate, seconds, make_request))
    drain(port)
    latencies = sorted(latency * 1000 for status, latency, _ in results if status in ok)
    failures = [status for status, _, _ in results if status not in ok]
    finished = max(done for _, _, done in results) - start
    summary = {
        "label": label,
        "sent": len(results),
        "ok": len(latencies),
        "failed": len(failures),
        "throughput": len(latencies) / finished,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "max": latencies[-1] if latencies else float("nan"),
    }
    print(
        f"{label:<38} offered {rate:5.0f}/s for {seconds:.0f} s: "
        f"{summary['throughput']:6.1f} ok/s  p50 {summary['p50']:6.1f} ms  "
        f"p95 {summary['p95']:6.1f} ms  p99 {summary['p99']:7.1f} ms  "
        f"max {summary['max']:7.1f} ms  failed {summary['failed']}"
        + (
            f" (statuses {sorted(set(failures))}"
            + (f"; 0: no answer: {dict(NO_ANSWER)}" if NO_ANSWER else "")
            + ")"
            if failures
            else ""
        )
    )
    summary["cpu"] = cpu_report(before)
    return summary


def a_response(rng: random.Random, n: int, *, external_id: str | None = None) -> dict:
    item = {
        "score": rng.randint(0, 10),
        "email": f"person{rng.randrange(CONTACTS)}@customer.example",
        "comment": rng.choice(COMMENTS),
        "tags": ["bench"],
    }
    if external_id:
        item["external_id"] = external_id
    return item


def bulk_ingest(port: int, key: str, rows: int, batch: int, concurrency: int) -> dict:
    rng = random.Random(7)  # noqa: S311
    batches = [
        [
            a_response(rng, n, external_id=f"bulk-{n}")
            for n in range(start, min(rows, start + batch))
        ]
        for start in range(0, rows, batch)
    ]
    bodies = [json.dumps({"items": items}).encode() for items in batches]
    local = threading.local()

    def post(body: bytes) -> tuple[int, int, float]:
        began = time.perf_counter()
        conn = HTTPConnection("127.0.0.1", port, timeout=120)
        local.conn = conn
        conn.request(
            "POST",
            "/api/v1/responses/bulk",
            body=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        answer = conn.getresponse()
        report = json.loads(answer.read())
        conn.close()
        return answer.status, report.get("created", 0), time.perf_counter() - began

    before = CPU.snapshot()
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        outcomes = list(pool.map(post, bodies))
    elapsed = time.perf_counter() - start
    created = sum(created for status, created, _ in outcomes if status == 200)
    per_batch = sorted(seconds * 1000 for _, _, seconds in outcomes)
    print(
        f"{'POST /api/v1/responses/bulk':<38} {len(bodies)} batches of {batch:,} "
        f"({concurrency} at a time): {created:,} rows created in {elapsed:.1f} s = "
        f"{created / elapsed:,.0f} rows/s  (batch p50 {percentile(per_batch, 50):.0f} ms, "
        f"max {per_batch[-1]:.0f} ms; non-200: "
        f"{sum(1 for status, _, _ in outcomes if status != 200)})"
    )
    cpu_report(before, created, "row")
    return {"rows_per_second": created / elapsed, "created": created}


# --- Main ---------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300, help="requests per second offered")
    parser.add_argument("--seconds", type=float, default=20, help="length of each fixed-rate run")
    parser.add_argument("--rows", type=int, default=50_000, help="rows for the bulk ingest")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--bulk-concurrency", type=int, default=2)
    # A process per core, threads to overlap waits on PostgreSQL and Redis, and keep-alive
    # connections (gthread), which spare both sides a TCP handshake per request.
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument(
        "--threads", type=int, default=4, help="threads per worker (1: sync workers)"
    )
    args = parser.parse_args()

    print(f"scratch database {DB_NAME}; Redis {REDIS_URL}; {os.cpu_count()} CPUs")
    gunicorn = None
    scratch_dir = tempfile.mkdtemp(prefix="nps-bench-")
    try:
        key = setup_database()
        port = free_port()
        access_log = Path(scratch_dir) / "access.log"
        gunicorn = start_gunicorn(port, args.workers, args.threads, access_log)
        global CPU
        CPU = ServerCpu(gunicorn.pid, access_log)
        kind = f"gthread workers × {args.threads} threads" if args.threads > 1 else "sync workers"
        print(f"gunicorn: {args.workers} {kind} on 127.0.0.1:{port}, DEBUG off\n")

        me = raw_request("GET", "/api/v1/me", port, key)
        count = max(int(args.rate * args.seconds), 100)  # the warm-up sends 100
        rng = random.Random(1)  # noqa: S311
        posts = [
            raw_request("POST", "/api/v1/responses/", port, key, a_response(rng, n))
            for n in range(count)
        ]
        keyed = [
            raw_request(
                "POST",
                "/api/v1/responses/",
                port,
                key,
                a_response(rng, n),
                {"Idempotency-Key": uuid.uuid4().hex},
            )
            for n in range(count)
        ]
        # Warm up every worker (imports, connections, first-use of the key).
        fixed_rate("warm-up", port, 50, 2, lambda n: me, {200})
        fixed_rate("warm-up", port, 50, 2, lambda n: posts[n], {201})
        print()

        clients = 2 * args.workers
        capacity("GET /api/v1/me", port, clients, 5, lambda n: me, {200})
        capacity(
            "POST /api/v1/responses/", port, clients, 5, lambda n: posts[n % len(posts)], {201}
        )
        print()

        get = fixed_rate("GET /api/v1/me", port, args.rate, args.seconds, lambda n: me, {200})
        post = fixed_rate(
            "POST /api/v1/responses/", port, args.rate, args.seconds, lambda n: posts[n], {201}
        )
        post_keyed = fixed_rate(
            "POST /api/v1/responses/ + Idem.-Key",
            port,
            args.rate,
            args.seconds,
            lambda n: keyed[n],
            {201},
        )
        print(
            f"\nPOST / GET: p50 ×{post['p50'] / get['p50']:.2f}, "
            f"p95 ×{post['p95'] / get['p95']:.2f}, "
            f"throughput ×{post['throughput'] / get['throughput']:.2f}, "
            f"server CPU ×{post['cpu'] / get['cpu']:.2f}; with an Idempotency-Key: "
            f"p95 ×{post_keyed['p95'] / get['p95']:.2f}, "
            f"server CPU ×{post_keyed['cpu'] / get['cpu']:.2f}\n"
        )
        # Planner statistics as a live database has them: autovacuum's ANALYZE follows a
        # table that grew by more than a tenth within a minute or so. This one was analysed
        # empty a minute ago and has grown by the single POSTs since; a plan made from its
        # empty statistics reads every response to find a batch's external ids.
        admin_sql_in(DB_NAME, "ANALYZE responses_response")
        bulk = bulk_ingest(port, key, args.rows, args.batch, args.bulk_concurrency)

        print("\ntargets on a 2-core machine:")
        print(
            f"  single POST ≥ 300/s with p95 ≤ 50 ms: {post['throughput']:.0f}/s, "
            f"p95 {post['p95']:.1f} ms -> "
            f"{'met' if post['throughput'] >= 300 * 0.98 and post['p95'] <= 50 else 'NOT met'}"
        )
        print(
            f"  bulk ≥ 10,000 rows/s: {bulk['rows_per_second']:,.0f} rows/s -> "
            f"{'met' if bulk['rows_per_second'] >= 10_000 else 'NOT met'}"
        )
    finally:
        if gunicorn is not None:
            stop_gunicorn(gunicorn)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001, S110 (Django may not be set up yet)
            pass
        teardown_database()
        flush_redis()
        shutil.rmtree(scratch_dir, ignore_errors=True)
        print(f"\ncleaned up: gunicorn stopped, {DB_NAME} dropped, Redis db flushed")


if __name__ == "__main__":
    main()
