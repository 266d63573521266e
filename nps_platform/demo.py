"""The demo organization behind `make run`: one login per role, printed at start.

Each domain app adds its own demo data from its AppConfig's `seed_demo(organization=…)`,
so the demo grows with the product while this module knows none of those apps.
"""

from django.db import transaction

from nps_platform import services
from nps_platform.models import Organization, Role, User

DEMO_PASSWORD = "demo-loop-2026"  # noqa: S105 - a published demo login, not a secret
DEMO_ORG_SLUG = "acme"
DEMO_USERS = [
    ("admin@acme.test", "Alex Admin", Role.ADMIN),
    ("cs@acme.test", "Casey Success", Role.CS_MANAGER),
    ("exec@acme.test", "Erin Exec", Role.EXEC),
]
# A second organization shows the switcher: the admin is also an executive there.
SECOND_ORG = ("globex", "Globex Retail", "Europe/Berlin", "EUR")


def demo_logins() -> list[tuple[str, str, str]]:
    return [(email, DEMO_PASSWORD, role.label) for email, _, role in DEMO_USERS]


@transaction.atomic
def seed_platform() -> Organization:
    organization = Organization.objects.filter(slug=DEMO_ORG_SLUG).first()
    if organization is None:
        organization = services.organization_create(
            name="Acme Analytics", slug=DEMO_ORG_SLUG, timezone_name="America/New_York"
        )
    for email, name, role in DEMO_USERS:
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(email=email, password=DEMO_PASSWORD, name=name)
        services.membership_add(organization=organization, user=user, role=role)

    slug, name, tz, currency = SECOND_ORG
    second = Organization.objects.filter(slug=slug).first()
    if second is None:
        second = services.organization_create(
            name=name, slug=slug, timezone_name=tz, currency=currency
        )
    admin = User.objects.get(email=DEMO_USERS[0][0])
    services.membership_add(organization=second, user=admin, role=Role.EXEC)
    return organization
