import pytest
from django.apps import apps
from django.urls import reverse
from django_scopes import ScopeError, scope

from nps_platform.models import ApiKey, Organization, Role, User
from tests.factories import MembershipFactory, make_api_key

pytestmark = pytest.mark.django_db

TENANCY_ROOTS = {User, Organization}
PRODUCT_APPS = {"nps_platform", "accounts", "surveys", "responses", "followups", "insights"}


def tenant_models():
    for model in apps.get_models():
        if model._meta.app_label in PRODUCT_APPS and model not in TENANCY_ROOTS:
            yield model


def test_it_scopes_every_tenant_model_by_organization():
    for model in tenant_models():
        field = model._meta.get_field("organization")
        assert field.related_model is Organization, model
        queryset = model._default_manager.get_queryset()
        assert getattr(queryset, "missing_scopes", None) == {"organization"}, (
            f"{model.__name__} needs objects = ScopedManager(organization='organization')"
        )


def test_it_refuses_to_query_a_tenant_model_outside_a_scope(api_key_a):
    with pytest.raises(ScopeError):
        list(ApiKey.objects.all())


def test_it_shows_only_the_scoped_tenants_rows(org_a, org_b, api_key_a, api_key_b):
    with scope(organization=org_b):
        assert list(ApiKey.objects.values_list("name", flat=True)) == ["CRM sync B"]


def test_it_switches_between_the_users_organizations(client, org_a, org_b, alice):
    MembershipFactory(organization=org_b, user=alice, role=Role.EXEC)
    client.force_login(alice)
    assert client.get(reverse("settings:organization")).status_code == 200

    response = client.post(reverse("organization_switch"), {"organization": "borealis-b"})
    assert response.status_code == 302
    # In org B alice is an executive: the settings are closed, the dashboard open.
    assert client.get(reverse("settings:organization")).status_code == 403
    page = client.get(reverse("insights:dashboard")).content.decode()
    assert "Borealis B" in page
    assert 'data-area="settings"' not in page


def test_it_answers_404_when_switching_to_an_organization_one_is_not_in(client, org_b, alice):
    client.force_login(alice)
    response = client.post(reverse("organization_switch"), {"organization": "borealis-b"})
    assert response.status_code == 404


def test_it_falls_back_to_a_remaining_seat_when_removed_from_the_current_one(
    client, org_a, org_b, alice, mallory, unscoped
):
    membership_b = MembershipFactory(organization=org_b, user=alice, role=Role.EXEC)
    client.force_login(alice)
    client.post(reverse("organization_switch"), {"organization": "borealis-b"})
    membership_b.delete()
    page = client.get(reverse("insights:dashboard")).content.decode()
    assert "Acme A" in page


def test_it_enters_the_keys_tenant_for_api_calls(client, org_a, org_b, api_key_a):
    make_api_key(org_b, name="Only in B")
    response = client.get(reverse("api:me"), headers={"Authorization": f"Bearer {api_key_a[1]}"})
    assert response.json()["organization"]["slug"] == "acme-a"


def test_it_refuses_a_tenant_task_without_an_organization():
    from nps_platform.celery import tenant_task

    @tenant_task(name="tests.tenant_probe")
    def probe(organization_id):
        return list(ApiKey.objects.all())

    with pytest.raises(ValueError, match="needs an organization_id"):
        probe(None)
