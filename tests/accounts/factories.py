"""factory-boy factories for accounts/ models, created outside any scope like tests/factories.py.

Pass `organization=` to keep related rows in one tenant: a contact, ticket or snapshot
made with `account=` takes the account's organization.
"""

import datetime

import factory
from django.utils.timezone import now

from accounts.models import Account, Contact, Segment, SupportTicket, UsageSnapshot
from tests.factories import OrganizationFactory, ScopeFreeFactory


class AccountFactory(ScopeFreeFactory):
    class Meta:
        model = Account

    organization = factory.SubFactory(OrganizationFactory)
    external_id = factory.Sequence(lambda n: f"acc-{n}")
    name = factory.Sequence(lambda n: f"Customer {n:03d}")
    domain = factory.LazyAttribute(lambda o: f"{o.external_id}.example.com")
    plan = "growth"
    arr = None
    lifecycle_stage = "active"
    properties = factory.LazyFunction(dict)


class ContactFactory(ScopeFreeFactory):
    class Meta:
        model = Contact

    account = factory.SubFactory(AccountFactory)
    organization = factory.LazyAttribute(lambda o: o.account.organization)
    email = factory.Sequence(lambda n: f"contact{n}@customer.example")
    name = factory.Faker("name")
    properties = factory.LazyFunction(dict)


class SupportTicketFactory(ScopeFreeFactory):
    class Meta:
        model = SupportTicket

    account = factory.SubFactory(AccountFactory)
    organization = factory.LazyAttribute(lambda o: o.account.organization)
    external_id = factory.Sequence(lambda n: f"T-{n}")
    subject = factory.Sequence(lambda n: f"Problem number {n}")
    status = "open"
    priority = "normal"
    opened_at = factory.LazyFunction(now)


class UsageSnapshotFactory(ScopeFreeFactory):
    class Meta:
        model = UsageSnapshot

    account = factory.SubFactory(AccountFactory)
    organization = factory.LazyAttribute(lambda o: o.account.organization)
    date = factory.Sequence(lambda n: now().date() - datetime.timedelta(days=n))
    active_users = 10
    metrics = factory.LazyFunction(dict)


class SegmentFactory(ScopeFreeFactory):
    class Meta:
        model = Segment

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Segment {n}")
    description = ""
    rules = factory.LazyFunction(
        lambda: {"match": "all", "conditions": [{"field": "plan", "op": "eq", "value": "growth"}]}
    )
