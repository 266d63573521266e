"""Helpers that make org data through the product's services."""

from django_scopes import scope

from accounts import services as account_services
from responses.services import response_record


def make_person(org, email, **fields):
    with scope(organization=org):
        report = account_services.records_upsert(
            organization=org, kind="contacts", items=[{"email": email, **fields}]
        )
    assert report.results[0].status in {"created", "updated"}, report.results[0].errors
    return report.results[0].id


def make_response(org, email, score, **fields):
    with scope(organization=org):
        response, _ = response_record(
            organization=org, channel="api", email=email, score=score, **fields
        )
    return response
