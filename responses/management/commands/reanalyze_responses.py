from django.core.management.base import BaseCommand, CommandError
from django_scopes import scope, scopes_disabled

from nps_platform.models import Organization
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
                queued = services.responses_reanalyze(organization=organization)
            self.stdout.write(f"{organization.slug}: {queued} commented responses queued")
