from django.core.management.base import BaseCommand
from django_scopes import scope

from nps_platform.commands import organizations_named
from responses import services


class Command(BaseCommand):
    help = (
        "Queues the comment analysis (sentiment, themes) of every commented response again. "
        "Comments analysed by the current version are skipped; run it after an upgrade that "
        "changes the analysis."
    )

    def add_arguments(self, parser):
        parser.add_argument("slugs", nargs="*", help="Organizations (all when none given).")

    def handle(self, *args, slugs, **options):
        for organization in organizations_named(slugs):
            with scope(organization=organization.pk):
                queued = services.responses_reanalyze(organization=organization)
            self.stdout.write(f"{organization.slug}: {queued} commented responses queued")
