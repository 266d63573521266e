from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"

    def seed_demo(self, *, organization, stdout):
        from accounts.demo import seed_accounts

        seed_accounts(organization=organization, stdout=stdout)
