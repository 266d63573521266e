"""Request overhead of the platform layer: API-key auth + tenant scope, and a page render.

Runs in-process with Django's test client against a throwaway database (SQLite in memory
unless DATABASE_URL is set), so it measures our code, not a network. Prints figures only.

    .venv/bin/python bench/platform_requests.py
"""

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nps_platform.settings")
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = "sqlite://:memory:"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django_scopes import scopes_disabled  # noqa: E402

from nps_platform import services  # noqa: E402
from nps_platform.models import Role, User  # noqa: E402

N = 500


def timed(label, call):
    for _ in range(20):  # warm up
        call()
    samples = []
    for _ in range(N):
        start = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.status_code
    samples.sort()
    p50 = statistics.median(samples)
    p95 = samples[int(len(samples) * 0.95)]
    print(f"{label:<46} n={N}  p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  {1000 / p50:7.0f} req/s")


def main():
    setup_test_environment()
    from django.db import connection

    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    call_command("migrate", verbosity=0)
    with scopes_disabled():
        organization = services.organization_create(name="Bench Co", slug="bench")
        user = User.objects.create_user(email="admin@bench.test", password="x" * 12)
        services.membership_add(organization=organization, user=user, role=Role.ADMIN)
        raw_key = services.api_key_create(
            organization=organization, name="bench", created_by=user
        ).raw_key
        for n in range(50):
            services.api_key_create(organization=organization, name=f"k{n}", created_by=user)

    print(f"database: {connection.vendor}")
    api = Client()
    timed(
        "GET /api/v1/me (Bearer key, scoped)",
        lambda: api.get("/api/v1/me", headers={"Authorization": f"Bearer {raw_key}"}),
    )
    browser = Client()
    browser.force_login(user)
    timed(
        "GET /settings/api-keys/ (51 keys, signed in)", lambda: browser.get("/settings/api-keys/")
    )
    timed("GET /healthz", lambda: Client().get("/healthz"))


if __name__ == "__main__":
    main()
