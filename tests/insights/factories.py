"""Rows for the metrics tests, written straight to the tables (the figures read tables)."""

import datetime

import factory
from django.utils import timezone

from followups.models import FollowUp
from responses.classification import classify
from responses.models import Response
from tests.factories import ScopeFreeFactory


def at(day: datetime.date, hour: int = 12) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time(hour)))


class ResponseFactory(ScopeFreeFactory):
    class Meta:
        model = Response

    organization = factory.LazyAttribute(
        lambda o: o.account.organization if o.account else o.contact.organization
    )
    account = None
    contact = None
    score = 8
    category = factory.LazyAttribute(lambda o: classify(o.score)[0])
    danger_zone = factory.LazyAttribute(lambda o: classify(o.score)[1])
    channel = "api"
    comment = ""
    has_comment = factory.LazyAttribute(lambda o: bool(o.comment.strip()))
    submitted_at = factory.LazyFunction(timezone.now)


class FollowUpFactory(ScopeFreeFactory):
    class Meta:
        model = FollowUp

    response = None
    organization = factory.LazyAttribute(lambda o: o.response.organization)
    account = factory.LazyAttribute(lambda o: o.response.account)
    playbook = "recover"
    due_at = factory.LazyAttribute(lambda o: o.response.submitted_at + datetime.timedelta(hours=24))
    created_at = factory.LazyAttribute(lambda o: o.response.submitted_at)
