from django.core.management.base import BaseCommand, CommandError
from django_scopes import scope, scopes_disabled

from insights import services
from nps_platform.models import Organization


class Command(BaseCommand):
    help = "Rebuilds the dashboard's daily rollups exactly from the responses."

    def add_arguments(self, parser):
        parser.add_argument("slugs", nargs="*", help="Organizations (all when none given).")

    def handle(self, *args, slugs, **options):
        with scopes_disabled():
            organizations = Organization.objects.order_by("pk")
            if slugs:
                organizations = organizations.filter(slug__in=slugs)
                missing = set(slugs) - set(organizations.values_list("slug", flat=True))
                if missing:
                    raise CommandError(f"No organization {', '.join(sorted(missing))}.")
            organizations = list(organizations)
        for organization in organizations:
            with scope(organization=organization.pk):
                rows = services.rollup_rebuild(organization.pk)
            self.stdout.write(f"{organization.slug}: {rows} rollup rows")
