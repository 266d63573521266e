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
is p95 ≤ 5 s. It then waits for the comment analysis (queued at a lower priority) and
prints the CPU the run used, read from /proc: the worker's processes, the PostgreSQL
backends serving the worker and the ingest, the ingesting process, and the worker's CPU
by task (bench/followups_probe.py, loaded into the worker), with the load average. From
those costs it projects the delays on 2 idle cores (and replays the same model with the
share of the machine the run actually got, to check it against the measured delays): on
a shared machine the CPU per follow-up holds where wall-clock figures do not. At the end
it stops the worker, drops the database and deletes its queue.

    .venv/bin/python bench/followups.py [--responses 10000] [--batch 1000] [--concurrency 2]

Needs PostgreSQL (BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres;
the scratch database's name starts with BENCH_DB_PREFIX, default nps_bench_) and Redis
(BENCH_REDIS_URL, default redis://127.0.0.1:6379/12; only the bench's own queue is touched).
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
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
DB_NAME = f"{os.environ.get('BENCH_DB_PREFIX', 'nps_bench_')}followups_{os.getpid()}"
QUEUE = f"bench-followups-{uuid.uuid4().hex[:8]}"
NODE = f"{QUEUE}@{socket.gethostname()}"
TASK_LOG = Path(f"/tmp/{QUEUE}.tasks")  # noqa: S108 - the bench's own file, removed at the end
OPEN_TASK, ANALYSIS_TASK = "followups.open", "responses.analyze"


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
            "--include",
            "bench.followups_probe",
        ],  # fmt: skip
        cwd=ROOT,
        env={**app_environment(), "BENCH_TASK_CPU_LOG": str(TASK_LOG), "BENCH_QUEUE": QUEUE},
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
    # kombu keeps a list per priority step next to the queue (the analysis runs at 6).
    lists = [QUEUE, *(f"{QUEUE}\x06\x16{step}" for step in (3, 6, 9))]
    left = sum(client.llen(name) for name in lists)
    client.delete(*lists, f"_kombu.binding.{QUEUE}", f"_kombu.binding_permanent.{QUEUE}")
    return left


# --- CPU accounting -----------------------------------------------------------------------


TICK = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _cpu(fields: list[str], *, children: bool = False) -> float:
    """utime + stime (and, with `children`, of the children it has waited for), seconds."""
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


class Cpu:
    """CPU seconds used by the worker (its main process and pool, one session), by the
    PostgreSQL backends of the scratch database (the ingest's own backend apart from the
    worker's), and by this process while it ingests; read from /proc (PostgreSQL runs on
    this host). CPU per follow-up holds on a shared machine, where wall clock does not."""

    def __init__(self, worker_pid: int, ingest_backend_pid: int):
        self.worker_pid = worker_pid
        self.ingest_backend_pid = ingest_backend_pid
        self.backends: dict[int, float] = {}  # last reading per backend pid
        self.start_backends: dict[int, float] = {}
        self.worker_start = self.worker_now()
        self.machine_start = self.machine_busy()
        self.sample_backends()
        self.start_backends = dict(self.backends)
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample_often, daemon=True)
        self._sampler.start()

    def _sample_often(self) -> None:
        while not self._stop.wait(0.5):
            self.sample_backends()

    def worker_now(self) -> float:
        total = 0.0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            fields = _proc_stat(int(entry.name))
            if fields and int(fields[3]) == self.worker_pid:  # session id: started in its own
                total += _cpu(fields, children=int(entry.name) == self.worker_pid)
        return total

    def sample_backends(self) -> None:
        """Backends come and go (a pool process's connection may be closed): read them
        often, keep each one's last reading."""
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            pids = [
                pid
                for (pid,) in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s", [DB_NAME]
                ).fetchall()
            ]
        for pid in pids:
            fields = _proc_stat(pid)
            if fields:
                self.backends[pid] = _cpu(fields)

    @staticmethod
    def machine_busy() -> tuple[float, float]:
        """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return (sum(values) - idle) / TICK, sum(values) / TICK

    def used(self) -> dict:
        self._stop.set()
        self._sampler.join()
        self.sample_backends()
        grown = {pid: cpu - self.start_backends.get(pid, 0.0) for pid, cpu in self.backends.items()}
        ingest_db = grown.pop(self.ingest_backend_pid, 0.0)
        busy, total = self.machine_busy()
        return {
            "worker": self.worker_now() - self.worker_start,
            "worker_db": sum(grown.values()),
            "ingest_db": ingest_db,
            "machine_busy": busy - self.machine_start[0],
            "machine_total": total - self.machine_start[1],
        }


def open_chunk() -> int:
    from followups.apps import OPEN_CHUNK

    return OPEN_CHUNK


def backend_pid() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


# --- The run ------------------------------------------------------------------------------


def ingest(organization, total: int, batch: int, pace: float = 0) -> tuple[float, float]:
    """Records `total` responses in batches, back to back (or `pace` responses a second
    on average); returns the seconds it took and the CPU seconds this process used."""
    from django_scopes import scope

    from accounts.models import Contact
    from responses.demo import COMMENTS
    from responses.services import responses_record

    rng = random.Random(17)  # noqa: S311
    with scope(organization=organization):
        contacts = list(
            Contact.objects.filter(organization=organization).values_list("pk", flat=True)
        )
        started, cpu_started = time.perf_counter(), time.process_time()
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
        return time.perf_counter() - started, time.process_time() - cpu_started


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


def wait_for_analysis(organization, timeout: float, started: float) -> None:
    """The comment analysis runs after the follow-ups (a lower priority): wait for it too,
    so the CPU figures cover all the work the answers caused."""
    from django_scopes import scope

    from responses.models import Response

    deadline = time.monotonic() + timeout
    with scope(organization=organization):
        pending = Response.objects.filter(
            organization=organization, has_comment=True, analyzed_hash=""
        )
        while time.monotonic() < deadline and pending.exists():
            time.sleep(0.25)
    print(f"  comments analysed after {time.perf_counter() - started:.1f} s")


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


def task_cpu() -> dict[str, list[float]]:
    """Per task name: [CPU seconds, ids handled, runs], from the worker's probe."""
    found: dict[str, list[float]] = {}
    if TASK_LOG.exists():
        for line in TASK_LOG.read_text().splitlines():
            name, cpu, ids = line.split("\t")
            entry = found.setdefault(name, [0.0, 0, 0])
            entry[0] += float(cpu)
            entry[1] += int(ids)
            entry[2] += 1
    return found


def project_on_idle_cores(
    *,
    total: int,
    batch: int,
    chunk: int,
    concurrency: int,
    ingest_per_batch: float,
    open_per_response: float,
    other_per_batch: float,
    analysis_per_response: float,
    cores: int = 2,
) -> tuple[float, float, float]:
    """The p50, p95 and max delay the measured CPU costs give on `cores` idle cores.

    The ingest (one process with its backend: one core at most) records batch after batch.
    Each committed batch queues, at the default priority, its other tasks (webhooks, Slack,
    rollups: `other_per_batch`) then its follow-up tasks of `chunk` responses, and at a lower
    priority its comment analysis. `concurrency` worker processes take the default
    priority first, in order. The cores are shared evenly among whoever is running."""
    batches = [min(batch, total - start) for start in range(0, total, batch)]
    urgent: list[tuple[float, float, int]] = []  # (CPU, batch start, follow-ups it opens)
    later: list[tuple[float, float, int]] = []
    running: list[list] = []  # [CPU left, batch start, follow-ups]
    ingest_left, ingest_index, batch_start, clock = ingest_per_batch, 0, 0.0, 0.0
    delays: list[float] = []
    while ingest_index < len(batches) or urgent or later or running:
        while (urgent or later) and len(running) < concurrency:
            running.append(list((urgent or later).pop(0)))
        ingesting = ingest_index < len(batches)
        speed = min(1.0, cores / (len(running) + (1 if ingesting else 0)))
        step = min([job[0] for job in running] + ([ingest_left] if ingesting else [])) / speed
        clock += step
        for job in running:
            job[0] -= step * speed
        if ingesting:
            ingest_left -= step * speed
            if ingest_left <= 1e-12:
                size = batches[ingest_index]
                if other_per_batch:
                    urgent.append((other_per_batch, batch_start, 0))
                for offset in range(0, size, chunk):
                    part = min(chunk, size - offset)
                    urgent.append((part * open_per_response, batch_start, part))
                if analysis_per_response:
                    later.append((size * analysis_per_response, batch_start, 0))
                ingest_index, ingest_left, batch_start = ingest_index + 1, ingest_per_batch, clock
        for job in [job for job in running if job[0] <= 1e-12]:
            running.remove(job)
            delays.extend([clock - job[1]] * job[2])
    delays.sort()
    return statistics.median(delays), percentile(delays, 95), delays[-1]


def cpu_report(
    used: dict,
    *,
    total: int,
    ingest_cpu: float,
    batch: int,
    chunk: int,
    concurrency: int,
    elapsed: float,
    measured: dict,
) -> None:
    per = {
        "worker": used["worker"],
        "worker PostgreSQL": used["worker_db"],
        "ingest": ingest_cpu,
        "ingest PostgreSQL": used["ingest_db"],
    }
    ms = {name: 1000 * seconds / total for name, seconds in per.items()}
    print(
        "  CPU seconds: "
        + ", ".join(f"{name} {seconds:.1f}" for name, seconds in per.items())
        + f"; whole machine {used['machine_busy']:.1f} of {used['machine_total']:.1f} "
        f"({100 * used['machine_busy'] / max(used['machine_total'], 1e-9):.0f}% busy)\n"
        "  CPU per follow-up: "
        + " + ".join(f"{name} {value:.2f} ms" for name, value in ms.items())
        + f" = {sum(ms.values()):.2f} ms"
    )
    # The worker's CPU by task (its probe), with the worker's PostgreSQL time and its own
    # overhead (the main process, the pool) shared out in proportion.
    tasks = task_cpu()
    in_tasks = sum(cpu for cpu, _, _ in tasks.values())
    scale = (used["worker"] + used["worker_db"]) / in_tasks if in_tasks else 0.0
    opened = tasks.get(OPEN_TASK, [0.0, 0, 0])
    analysed = tasks.get(ANALYSIS_TASK, [0.0, 0, 0])
    others = {n: v for n, v in tasks.items() if n not in {OPEN_TASK, ANALYSIS_TASK}}
    open_per_response = scale * opened[0] / total
    analysis_per_response = scale * analysed[0] / total
    batches = -(-total // batch)
    other_per_batch = scale * sum(cpu for cpu, _, _ in others.values()) / batches
    print(
        f"  worker CPU by task (its PostgreSQL time shared in proportion): follow-ups "
        f"{1000 * open_per_response:.2f} ms per follow-up ({opened[2]:.0f} tasks), comment "
        f"analysis {1000 * analysis_per_response:.2f} ms per response ({analysed[2]:.0f} "
        f"tasks), the rest {1000 * other_per_batch * batches / total:.2f} ms per response ("
        + ", ".join(f"{n} ×{v[2]:.0f}" for n, v in sorted(others.items()))
        + ")"
    )
    if not in_tasks:
        open_per_response = (used["worker"] + used["worker_db"]) / total
    costs = {
        "total": total,
        "batch": batch,
        "chunk": chunk,
        "concurrency": concurrency,
        "ingest_per_batch": (ingest_cpu + used["ingest_db"]) / batches,
        "open_per_response": open_per_response,
        "other_per_batch": other_per_batch,
        "analysis_per_response": analysis_per_response,
    }
    # The model's check: replayed with the share of the machine this run actually got.
    got = sum(per.values()) / elapsed
    p50, p95, _ = project_on_idle_cores(**costs, cores=got)
    print(
        f"  the same model with the {got:.2f} cores this run got: p50 {p50:.2f} s, "
        f"p95 {p95:.2f} s (measured: p50 {measured['p50']:.2f} s, p95 {measured['p95']:.2f} s)"
    )
    p50, p95, longest = project_on_idle_cores(**costs)
    print(
        f"  projected on 2 idle cores from these CPU costs: p50 {p50:.2f} s, p95 {p95:.2f} s, "
        f"max {longest:.2f} s ({'meets' if p95 <= 5 else 'misses'} the target); the worker "
        f"opens at most {min(concurrency, 2) / open_per_response:,.0f} follow-ups/s"
    )


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

        load_before = os.getloadavg()
        cpu = Cpu(worker.pid, backend_pid())
        started = time.perf_counter()
        ingest_seconds, ingest_cpu = ingest(organization, args.responses, args.batch, args.pace)
        print(
            f"  recorded {args.responses:,} responses in batches of {args.batch:,} in "
            f"{ingest_seconds:.1f} s"
        )
        if not wait_for_followups(organization, args.responses, args.timeout, started):
            print(f"gave up after {args.timeout:.0f} s")
        print(f"  all follow-ups drafted after {time.perf_counter() - started:.1f} s")
        wait_for_analysis(organization, args.timeout, started)
        used = cpu.used()
        elapsed = time.perf_counter() - started
        load_after = os.getloadavg()
        measured = report(organization, args.responses, ingest_seconds)
        cpu_report(
            used,
            total=args.responses,
            ingest_cpu=ingest_cpu,
            batch=args.batch,
            chunk=open_chunk(),
            concurrency=args.concurrency,
            elapsed=elapsed,
            measured=measured,
        )
        print(
            "  load average (1 min) before "
            f"{load_before[0]:.2f}, after {load_after[0]:.2f}, on {os.cpu_count()} CPUs"
        )
    finally:
        if worker is not None:
            stop_worker(worker)
        left = drop_queue()
        teardown_database()
        TASK_LOG.unlink(missing_ok=True)
        print(f"\nworker stopped, {DB_NAME} dropped, queue deleted ({left} messages left in it)")


if __name__ == "__main__":
    main()
