from django.apps import apps
from django.core.management.base import BaseCommand
from django_scopes import scope

from nps_platform.demo import demo_logins, seed_platform
from nps_platform.models import Organization


class Command(BaseCommand):
    help = "Create the demo organization, with one login per role, and print the logins."

    def add_arguments(self, parser):
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Only seed when the database has no organization yet; always print logins.",
        )

    def handle(self, *args, if_empty=False, **options):
        if if_empty and Organization.objects.exists():
            self.stdout.write("The database has data already; the demo was not re-seeded.")
        else:
            organization = seed_platform()
            # Each domain app contributes its demo rows, in INSTALLED_APPS order.
            for config in apps.get_app_configs():
                seed = getattr(config, "seed_demo", None)
                if seed is not None:
                    with scope(organization=organization):
                        seed(organization=organization, stdout=self.stdout)
            self.stdout.write(self.style.SUCCESS(f"Seeded the demo organization {organization}."))
        self.stdout.write("")
        self.stdout.write("Demo logins (http://127.0.0.1:8000/login/):")
        for email, password, role in demo_logins():
            self.stdout.write(f"  {role:<12} {email:<18} password: {password}")
