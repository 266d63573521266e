from django.core.management.base import BaseCommand, CommandError
from django_scopes import scope

from nps_platform import services
from nps_platform.models import Organization


class Command(BaseCommand):
    help = "Create an API key for an organization. The key is printed once, as the last line."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", default="Command line")

    def handle(self, *args, slug, name, **options):
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            raise CommandError(f"No organization has the slug {slug!r}.")
        with scope(organization=organization):
            new_key = services.api_key_create(organization=organization, name=name, created_by=None)
        self.stderr.write(f"Created key {new_key.api_key.prefix}… for {organization.name}:")
        self.stdout.write(new_key.raw_key)
