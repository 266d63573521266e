from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from nps_platform import services
from nps_platform.models import Role, User


class Command(BaseCommand):
    help = "Create an organization and its first admin."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--admin-password", required=True)
        parser.add_argument("--timezone", default="UTC")
        parser.add_argument("--currency", default="USD")

    @transaction.atomic
    def handle(self, *args, slug, name, admin_email, admin_password, **options):
        try:
            organization = services.organization_create(
                name=name,
                slug=slug,
                timezone_name=options["timezone"],
                currency=options["currency"],
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        user = User.objects.filter(email__iexact=admin_email).first()
        if user is None:
            user = User.objects.create_user(email=admin_email, password=admin_password)
        services.membership_add(organization=organization, user=user, role=Role.ADMIN)
        self.stdout.write(
            self.style.SUCCESS(f"Created {organization.name} ({organization.slug}); admin {user}.")
        )
