"""factory-boy factories. Tenant rows are created outside any scope, as tests need."""

import factory
from django_scopes import scopes_disabled

from nps_platform import services
from nps_platform.models import ApiKey, Membership, Organization, Role, TeammateInvitation, User

PASSWORD = "correct-horse-battery"


class ScopeFreeFactory(factory.django.DjangoModelFactory):
    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with scopes_disabled():
            return super()._create(model_class, *args, **kwargs)


class UserFactory(ScopeFreeFactory):
    class Meta:
        model = User
        django_get_or_create = ["email"]

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @classmethod
    def _after_postgeneration(cls, instance, create, results=None):
        if create and results:
            instance.save()


class OrganizationFactory(ScopeFreeFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Company {n}")
    slug = factory.Sequence(lambda n: f"company-{n}")


class MembershipFactory(ScopeFreeFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.CS_MANAGER


class TeammateInvitationFactory(ScopeFreeFactory):
    class Meta:
        model = TeammateInvitation

    organization = factory.SubFactory(OrganizationFactory)
    email = factory.Sequence(lambda n: f"invitee{n}@example.com")
    role = Role.CS_MANAGER


def make_api_key(organization, name="Integration") -> tuple[ApiKey, str]:
    """An API key and its raw value, made by the real service."""
    with scopes_disabled():
        new_key = services.api_key_create(organization=organization, name=name, created_by=None)
    return new_key.api_key, new_key.raw_key
