"""What management commands that work organization by organization share."""

from django.core.management.base import CommandError
from django_scopes import scopes_disabled

from nps_platform.models import Organization


def organizations_named(slugs: list[str]) -> list[Organization]:
    """The organizations with these slugs (all of them when none are given), by id; a
    CommandError names the slugs no organization has."""
    with scopes_disabled():
        organizations = Organization.objects.order_by("pk")
        if slugs:
            organizations = organizations.filter(slug__in=slugs)
            missing = set(slugs) - set(organizations.values_list("slug", flat=True))
            if missing:
                raise CommandError(f"No organization {', '.join(sorted(missing))}.")
        return list(organizations)
