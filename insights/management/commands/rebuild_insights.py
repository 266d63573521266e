from django.core.management.base import BaseCommand
from django_scopes import scope

from insights import services
from nps_platform.commands import organizations_named


class Command(BaseCommand):
    help = "Rebuilds the dashboard's daily rollups exactly from the responses."

    def add_arguments(self, parser):
        parser.add_argument("slugs", nargs="*", help="Organizations (all when none given).")

    def handle(self, *args, slugs, **options):
        for organization in organizations_named(slugs):
            with scope(organization=organization.pk):
                rows = services.rollup_rebuild(organization.pk)
            self.stdout.write(f"{organization.slug}: {rows} rollup rows")
