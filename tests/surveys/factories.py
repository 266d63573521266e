"""factory-boy factories for surveys/ models, created outside any scope like tests/factories.py.

Pass `organization=` (or a survey/programme/contact of that organization) to keep related rows
in one tenant: a programme takes its survey's organization, an invitation its programme's.
"""

import factory
from django.utils.timezone import now

from surveys.models import Invitation, InvitationState, Programme, Survey, TouchpointEvent
from tests.accounts.factories import ContactFactory
from tests.factories import OrganizationFactory, ScopeFreeFactory


class SurveyFactory(ScopeFreeFactory):
    class Meta:
        model = Survey

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Survey {n}")


class ProgrammeFactory(ScopeFreeFactory):
    class Meta:
        model = Programme

    survey = factory.SubFactory(SurveyFactory)
    organization = factory.LazyAttribute(lambda o: o.survey.organization)
    name = factory.Sequence(lambda n: f"Programme {n}")
    segment = None
    every_days = 90
    daily_cap = None
    window_start_hour = 9
    window_end_hour = 17
    business_days_only = False
    triggers = factory.LazyFunction(list)


class InvitationFactory(ScopeFreeFactory):
    """A planned invitation of a programme's survey to a contact of the same organization."""

    class Meta:
        model = Invitation

    programme = factory.SubFactory(ProgrammeFactory)
    organization = factory.LazyAttribute(lambda o: o.programme.organization)
    survey = factory.LazyAttribute(lambda o: o.programme.survey)
    contact = factory.SubFactory(
        ContactFactory,
        account__organization=factory.SelfAttribute("...organization"),
    )
    account = factory.LazyAttribute(lambda o: o.contact.account if o.contact else None)
    state = InvitationState.PLANNED
    planned_for = factory.LazyFunction(now)


class TouchpointEventFactory(ScopeFreeFactory):
    class Meta:
        model = TouchpointEvent

    contact = factory.SubFactory(ContactFactory)
    organization = factory.LazyAttribute(lambda o: o.contact.organization)
    name = "onboarding_completed"
    occurred_at = factory.LazyFunction(now)
