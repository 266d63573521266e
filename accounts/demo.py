"""Demo customers for `seed_demo`: about 300 accounts across plans and industries with a
realistic ARR spread (a few heavy hitters), 1,200 contacts, support tickets, and weekly
usage over twelve months. Everything goes through records_upsert, like any import."""

import random
from datetime import timedelta

from django.utils.timezone import now

from accounts import services
from nps_platform.models import Membership, Role

PLANS = [("starter", 0.45, 6_000), ("growth", 0.35, 30_000), ("enterprise", 0.20, 140_000)]
INDUSTRIES = ["SaaS", "Retail", "Healthcare", "Fintech", "Logistics", "Education", "Media"]
SIZES = ["1-10", "11-50", "51-200", "201-1000", "1000+"]
STAGES = ["onboarding", "active", "active", "active", "expansion", "renewal"]
FIRST = [
    "Ann",
    "Ben",
    "Chloe",
    "Dev",
    "Eva",
    "Farid",
    "Gia",
    "Hugo",
    "Ines",
    "Jon",
    "Kira",
    "Liam",
    "Mia",
    "Noah",
    "Omar",
    "Pia",
    "Ravi",
    "Sara",
    "Tom",
    "Uma",
    "Vera",
    "Will",
    "Yuki",
    "Zoe",
]  # noqa: E501
LAST = [
    "Adams",
    "Berg",
    "Chen",
    "Diaz",
    "Eze",
    "Fox",
    "Garcia",
    "Haas",
    "Ito",
    "Jensen",
    "Khan",
    "Lopez",
    "Moreau",
    "Novak",
    "Okafor",
    "Park",
    "Quinn",
    "Rossi",
    "Silva",
    "Tanaka",
    "Umar",
    "Vogel",
    "Weber",
    "Young",
]  # noqa: E501
TITLES = ["CEO", "CTO", "Head of Operations", "Product Manager", "Engineer", "Analyst", "CFO"]
LOCALES = ["en", "en", "en", "de", "fr", "es"]
TIMEZONES = ["America/New_York", "America/Chicago", "Europe/London", "Europe/Berlin"]
NAME_PARTS = [
    "Acme",
    "Apex",
    "Blue",
    "Bright",
    "Cloud",
    "Core",
    "Delta",
    "Echo",
    "Flux",
    "Globe",
    "Harbor",
    "Iron",
    "Jade",
    "Kite",
    "Lumen",
    "Metro",
    "Nova",
    "Orbit",
    "Pine",
    "Quartz",
    "River",
    "Summit",
    "Terra",
    "Unity",
    "Vertex",
    "Willow",
]  # noqa: E501
SUFFIX = ["Labs", "Systems", "Health", "Retail", "Logistics", "Learning", "Media", "Capital"]
TICKET_SUBJECTS = [
    "CSV export times out",
    "Cannot invite teammates",
    "Billing charged twice",
    "Dashboard loads slowly",
    "SSO login loop",
    "API rate limit too low",
    "How do I set up segments?",
    "Webhook deliveries failing",
]


def _batches(items, size=services.MAX_BATCH):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _upsert_all(organization, kind, items):
    for batch in _batches(items):
        report = services.records_upsert(organization=organization, kind=kind, items=batch)
        if report.errors:
            raise RuntimeError(f"demo {kind}: {report.as_dict()['results'][:3]}")


def seed_accounts(*, organization, stdout, seed: int = 7) -> None:
    rng = random.Random(seed)
    today = now().date()
    owners = list(
        Membership.objects.filter(
            organization=organization, role__in=[Role.CS_MANAGER, Role.ADMIN]
        ).values_list("user__email", flat=True)
    )
    accounts, contacts, tickets, usage = [], [], [], []
    for n in range(300):
        plan = rng.choices([p for p, _, _ in PLANS], weights=[w for _, w, _ in PLANS])[0]
        median = {p: m for p, _, m in PLANS}[plan]
        # Log-normal ARR: most near the plan's median, a long tail of heavy hitters.
        arr = round(median * rng.lognormvariate(0, 0.6), -2)
        if n < 4:
            arr = rng.choice([650_000, 900_000, 1_200_000, 480_000])
            plan = "enterprise"
        name = f"{rng.choice(NAME_PARTS)} {rng.choice(SUFFIX)} {n:03d}"
        signed_up = today - timedelta(days=rng.randint(20, 1800))
        external_id = f"ACME-{n:04d}"
        churned = rng.random() < 0.06
        accounts.append(
            {
                "external_id": external_id,
                "name": name,
                "domain": f"{name.split()[0].lower()}{n:03d}.example",
                "plan": plan,
                "arr": str(arr),
                "industry": rng.choice(INDUSTRIES),
                "size": rng.choice(SIZES),
                "lifecycle_stage": "churned" if churned else rng.choice(STAGES),
                "signed_up_on": signed_up.isoformat(),
                "renewal_date": (today + timedelta(days=rng.randint(-30, 365))).isoformat(),
                "owner_email": rng.choice(owners) if owners and rng.random() < 0.8 else "",
                "health_score": max(5, min(100, int(rng.gauss(68, 18)))),
                "churned_at": (now() - timedelta(days=rng.randint(1, 120))).isoformat()
                if churned
                else "",
                "properties": {"region": rng.choice(["NA", "EU", "APAC"])},
            }
        )
        for c in range(
            rng.choice([2, 3, 4, 5, 6, 7]) if plan != "starter" else rng.choice([2, 3, 4])
        ):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            contacts.append(
                {
                    "external_id": f"{external_id}-C{c}",
                    "email": f"{first}.{last}.{n}{c}@{accounts[-1]['domain']}".lower(),
                    "name": f"{first} {last}",
                    "title": rng.choice(TITLES),
                    "locale": rng.choice(LOCALES),
                    "timezone": rng.choice(TIMEZONES),
                    "account_external_id": external_id,
                }
            )
        for t in range(rng.choice([0, 0, 1, 2, 3, 5])):
            opened = now() - timedelta(days=rng.randint(0, 360), hours=rng.randint(0, 23))
            status = rng.choice(["open", "pending", "solved", "solved", "closed"])
            tickets.append(
                {
                    "external_id": f"ZD-{n:04d}-{t}",
                    "account_external_id": external_id,
                    "contact_external_id": f"{external_id}-C0",
                    "subject": rng.choice(TICKET_SUBJECTS),
                    "status": status,
                    "priority": rng.choice(["low", "normal", "normal", "high", "urgent"]),
                    "opened_at": opened.isoformat(),
                    "closed_at": (opened + timedelta(days=rng.randint(0, 9))).isoformat()
                    if status in {"solved", "closed"}
                    else "",
                    "source": "zendesk",
                    "url": f"https://support.example/tickets/{n}{t}",
                }
            )
        base_users = max(2, int(arr / 4000))
        drift = rng.uniform(-0.4, 0.5)
        for week in range(52):
            day = today - timedelta(weeks=51 - week)
            if day < signed_up:
                continue
            trend = 1 + drift * week / 52
            usage.append(
                {
                    "account_external_id": external_id,
                    "date": day.isoformat(),
                    "active_users": max(0, int(base_users * trend * rng.uniform(0.85, 1.15))),
                    "metrics": {"reports_run": rng.randint(0, 40 * base_users)},
                }
            )
    _upsert_all(organization, "accounts", accounts)
    _upsert_all(organization, "contacts", contacts)
    _upsert_all(organization, "tickets", tickets)
    _upsert_all(organization, "usage", usage)
    stdout.write(
        f"  {len(accounts)} accounts, {len(contacts)} contacts, {len(tickets)} support tickets, "
        f"{len(usage)} weekly usage snapshots"
    )
