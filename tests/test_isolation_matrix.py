"""Tenant isolation, route by route.

Every URL pattern and API route has an entry in MATRIX. With org B's member (mallory) or
org B's API key, every route that names an org A object answers 404 and changes nothing,
and no page or list shows org A's data. A route added without an entry fails
`test_it_has_an_entry_for_every_route`.
"""

import base64
from dataclasses import dataclass, field

import pytest
from django.core.files.base import ContentFile
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils.timezone import now
from django_scopes import scopes_disabled

from accounts.models import (
    Account,
    Contact,
    ErasureRecord,
    ImportJob,
    Segment,
    SupportTicket,
    UsageSnapshot,
)
from followups.models import (
    Activity,
    AssignmentRule,
    FollowUp,
    FollowUpSettings,
    MemberPause,
    PlaybookTemplate,
)
from nps_platform import services
from nps_platform.models import ApiKey, Membership, TeammateInvitation
from responses.models import Response, SlackAlert, Theme, WebhookDelivery, WebhookEndpoint
from surveys.models import Invitation, Programme, Survey
from surveys.tokens import UNSUBSCRIBE_SALT, invitation_token
from tests.accounts.factories import (
    AccountFactory,
    ContactFactory,
    SegmentFactory,
    SupportTicketFactory,
    UsageSnapshotFactory,
)
from tests.factories import TeammateInvitationFactory
from tests.surveys.factories import InvitationFactory, ProgrammeFactory, SurveyFactory


@dataclass(frozen=True)
class Entry:
    """How to probe one route.

    kind:
      public       – no tenant data behind it (sign-in, health, API schema); anyone may open it.
      page         – a tenant page without an object in its URL; mallory sees only org B.
      object       – names an org A object; mallory gets 404, alice (control) does not.
      api_list     – an API list or singleton; org B's key sees only org B.
      api_object   – an API route naming an org A object; org B's key gets 404.
      compat_list, compat_object – the same for /delighted/v1/, with the key as HTTP Basic.
      superuser    – the Django admin; members who are not superusers are sent away.
    """

    kind: str
    method: str = "get"
    kwargs: dict = field(default_factory=dict)  # names of objects in the org A dataset
    data: dict = field(default_factory=dict)  # form data (POST) or query string (GET)
    expect: frozenset = frozenset({200, 302, 410})  # for public routes
    why: str = ""


MATRIX: dict[str, Entry] = {
    # --- the platform ---
    "home": Entry("page"),
    "login": Entry("public", why="sign-in form"),
    "logout": Entry("public", method="post", why="ends one's own session"),
    "password_change": Entry("page", why="one's own password"),
    "password_change_done": Entry("page"),
    "password_reset": Entry("public", why="asks for an email; reveals nothing"),
    "password_reset_done": Entry("public"),
    "password_reset_confirm": Entry(
        "public", kwargs={"uidb64": "literal:MQ", "token": "literal:set-password"}
    ),
    "password_reset_complete": Entry("public"),
    "no_organization": Entry("page"),
    "organization_switch": Entry(
        "object", method="post", data={"organization": "org_a_slug"}, why="switch to org A"
    ),
    "invitation_accept": Entry(
        "public",
        kwargs={"token": "forged_invitation_token"},
        why="the signed token is the credential (see test_invitations); a forged one shows nothing",
    ),
    "healthz": Entry("public"),
    "settings:organization": Entry("page"),
    "settings:team": Entry("page"),
    "settings:member_role": Entry(
        "object",
        method="post",
        kwargs={"membership_id": "bob_membership"},
        data={"role": "literal:exec"},
    ),
    "settings:member_remove": Entry(
        "object", method="post", kwargs={"membership_id": "bob_membership"}
    ),
    "settings:invitation_revoke": Entry(
        "object", method="post", kwargs={"invitation_id": "invitation"}
    ),
    "settings:api_keys": Entry("page"),
    "settings:api_key_revoke": Entry("object", method="post", kwargs={"api_key_id": "api_key"}),
    "api:me": Entry("api_list"),
    "api:schema": Entry("public", why="the OpenAPI schema holds no tenant data"),
    "api:docs": Entry("public", why="the API docs page holds no tenant data"),
    "admin:*": Entry("superuser"),
    "anymail:*": Entry(
        "public",
        method="post",
        expect=frozenset({400}),
        why="ESP webhooks: without ANYMAIL_WEBHOOK_SECRET's basic auth they refuse (400)",
    ),
    # --- accounts ---
    "accounts:list": Entry("page"),
    "accounts:detail": Entry("object", kwargs={"account_id": "account"}),
    "accounts:segments": Entry("page"),
    "accounts:segment_create": Entry("page"),
    "accounts:segment_preview": Entry("object", data={"segment": "segment"}),
    "accounts:segment_edit": Entry("object", kwargs={"segment_id": "segment"}),
    "accounts:segment_delete": Entry("object", method="post", kwargs={"segment_id": "segment"}),
    "api:account-list": Entry("api_list"),
    "api:account-detail": Entry("api_object", method="delete", kwargs={"pk": "account"}),
    "api:contact-list": Entry("api_list"),
    "api:contact-detail": Entry("api_object", method="delete", kwargs={"pk": "contact"}),
    "api:contact-export": Entry("api_object", kwargs={"pk": "contact"}),
    "api:ticket-list": Entry("api_list"),
    "api:ticket-detail": Entry("api_object", method="delete", kwargs={"pk": "ticket"}),
    "api:usage-list": Entry("api_list"),
    "api:usage-detail": Entry("api_object", method="delete", kwargs={"pk": "usage"}),
    "api:segment-list": Entry("api_list"),
    # --- responses ---
    "responses:explorer": Entry("page"),
    "responses:export": Entry("page", why="CSV of the member's own organization"),
    "responses:detail": Entry("object", kwargs={"response_id": "response"}),
    "response_settings:webhooks": Entry("page"),
    "response_settings:webhook_detail": Entry("object", kwargs={"endpoint_id": "endpoint"}),
    "response_settings:webhook_delete": Entry(
        "object", method="post", kwargs={"endpoint_id": "endpoint"}
    ),
    "response_settings:delivery_redeliver": Entry(
        "object", method="post", kwargs={"delivery_id": "delivery"}
    ),
    "response_settings:slack": Entry("page"),
    "response_settings:themes": Entry("page"),
    "response_settings:theme_delete": Entry("object", method="post", kwargs={"theme_id": "theme"}),
    # --- surveys ---
    "surveys:list": Entry("page"),
    "surveys:survey_create": Entry("page"),
    "surveys:survey_edit": Entry("object", kwargs={"survey_id": "survey"}),
    "surveys:survey_preview": Entry("object", method="post", kwargs={"survey_id": "survey"}),
    "surveys:programme_create": Entry("page"),
    "surveys:programme_edit": Entry("object", kwargs={"programme_id": "programme"}),
    "surveys:send_log": Entry("page"),
    "surveys:settings": Entry("page"),
    "surveys:in_app_install": Entry("page"),
    "public:respond": Entry(
        "public",
        method="post",
        kwargs={"token": "forged_survey_token"},
        data={"score": "literal:9"},
        expect=frozenset({400}),
        why="the signed token is the credential; a forged one records nothing",
    ),
    "public:unsubscribe": Entry(
        "public",
        method="post",
        kwargs={"token": "forged_unsubscribe_token"},
        expect=frozenset({400}),
    ),
    "public:share": Entry(
        "public",
        method="post",
        kwargs={"public_id": "literal:no-such-survey"},
        data={"score": "literal:9"},
        expect=frozenset({404}),
        why="a survey's share page is public by design; an unknown id answers 404",
    ),
    "accounts:imports": Entry("page"),
    "accounts:import_detail": Entry("object", kwargs={"import_id": "import_job"}),
    "accounts:import_progress": Entry("object", kwargs={"import_id": "import_job"}),
    "accounts:import_errors": Entry("object", kwargs={"import_id": "import_job"}),
    "api:response-list": Entry("api_list"),
    "api:response-bulk": Entry(
        "public", method="post", expect=frozenset({401}), why="API-key only; tested per tenant"
    ),
    "api:response-detail": Entry("api_object", kwargs={"pk": "response"}),
    "api:event-create": Entry(
        "public",
        method="post",
        expect=frozenset({401}),
        why="API-key only; org B's key naming org A's contact gets 400 (test_events_api)",
    ),
    "api:invitation-list": Entry("api_list"),
    "public:in_app_config": Entry(
        "public", expect=frozenset({400}), why="needs a publishable key and an HMAC signature"
    ),
    "public:in_app_answer": Entry(
        "public", method="post", expect=frozenset({400}), why="the signed token is the credential"
    ),
    "public:in_app_dismiss": Entry(
        "public", method="post", expect=frozenset({400}), why="the signed token is the credential"
    ),
    # --- follow-ups ---
    "followups:queue": Entry("page"),
    "followups:detail": Entry("object", kwargs={"followup_id": "followup"}),
    "followups:activity": Entry("object", kwargs={"followup_id": "followup"}),
    "followups:draft_save": Entry(
        "object",
        method="post",
        kwargs={"followup_id": "followup"},
        data={"subject": "literal:x", "body": "literal:y"},
    ),
    "followups:send": Entry(
        "object",
        method="post",
        kwargs={"followup_id": "followup"},
        data={"subject": "literal:x", "body": "literal:y"},
    ),
    "followups:log": Entry(
        "object",
        method="post",
        kwargs={"followup_id": "followup"},
        data={"kind": "literal:note", "message": "literal:x"},
    ),
    "followups:status": Entry(
        "object",
        method="post",
        kwargs={"followup_id": "followup"},
        data={"status": "literal:in_progress"},
    ),
    "followups:assign": Entry("object", method="post", kwargs={"followup_id": "followup"}),
    "followups:close": Entry(
        "object",
        method="post",
        kwargs={"followup_id": "followup"},
        data={"outcome": "literal:resolved"},
    ),
    "followups:bulk_assign": Entry(
        "page",
        method="post",
        data={"followup": "followup", "assignee": "bob_id"},
        why="org A's ids are ignored for org B",
    ),
    "followup_settings:playbooks": Entry("page"),
    "followup_settings:preview": Entry("page", method="post", data={"playbook": "literal:recover"}),
    "followup_settings:template_save": Entry(
        "page",
        method="post",
        data={
            "playbook": "literal:recover",
            "subject": "literal:S",
            "body": "literal:B",
            "sla_hours": "literal:5",
        },
    ),
    "followup_settings:rule_add": Entry(
        "page", method="post", data={"segment": "segment", "assignee": "bob_id"}
    ),
    "followup_settings:rule_delete": Entry("object", method="post", kwargs={"rule_id": "rule"}),
    "followup_settings:pause_add": Entry("page", method="post", data={"user": "bob_id"}),
    "followup_settings:pause_resume": Entry("object", method="post", kwargs={"pause_id": "pause"}),
    "followup_settings:options": Entry(
        "page",
        method="post",
        data={"auto_send_thanks": "literal:on", "escalate_after_hours": "literal:1"},
    ),
    "api:followup-list": Entry("api_list"),
    "api:followup-detail": Entry("api_object", kwargs={"pk": "followup"}),
    "api:metrics-nps": Entry("api_list"),
    "api:metrics-dashboard": Entry("api_list"),
    # --- compat: the Delighted-compatible API (HTTP Basic key) and its guide ---
    "compat_settings:guide": Entry("page"),
    "delighted:people": Entry("compat_list"),
    "delighted:person": Entry("compat_object", method="delete", kwargs={"person": "contact"}),
    "delighted:pending_survey_requests": Entry(
        "compat_object",
        method="delete",
        kwargs={"person": "literal:secret.contact@initech.example"},
    ),
    "delighted:survey_responses": Entry("compat_list"),
    "delighted:survey_response": Entry(
        "compat_object", method="put", kwargs={"response_id": "response"}
    ),
    "delighted:metrics": Entry("compat_list"),
    "delighted:unsubscribes": Entry("compat_list"),
    "delighted:bounces": Entry("compat_list"),
    "delighted:autopilot": Entry("compat_list"),
    "delighted:autopilot_memberships": Entry("compat_list"),
    "delighted:not_found": Entry(
        "public",
        kwargs={"rest": "literal:anything.json"},
        expect=frozenset({404}),
        why="any other path under /delighted/v1/ answers Delighted's 404",
    ),
    # --- the dashboard still to come ---
    "insights:dashboard": Entry("page"),
    "insights:export": Entry(
        "page",
        kwargs={"panel": "literal:revenue-at-risk"},
        why="a panel's CSV of one's own organization; org A's detractor account is a marker",
    ),
}


def iter_route_names(patterns=None, namespace=""):
    patterns = get_resolver().url_patterns if patterns is None else patterns
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            ns = pattern.namespace or ""
            if ns in {"admin", "anymail"}:
                yield f"{ns}:*"
                continue
            full_ns = ":".join(part for part in (namespace, ns) if part)
            yield from iter_route_names(pattern.url_patterns, full_ns)
        elif isinstance(pattern, URLPattern):
            assert pattern.name, f"Route {pattern.pattern} has no name; name it and add it here."
            yield f"{namespace}:{pattern.name}" if namespace else pattern.name


def test_it_has_an_entry_for_every_route():
    routes = set(iter_route_names())
    missing = sorted(routes - MATRIX.keys())
    stale = sorted(MATRIX.keys() - routes)
    assert not missing, f"Routes without an entry in the isolation MATRIX: {missing}"
    assert not stale, f"Entries for routes that no longer exist: {stale}"


@pytest.fixture
def org_a_world(org_a, alice, bob, carol, api_key_a):
    """Org A's objects, with markers that must never show up for org B."""
    invitation = TeammateInvitationFactory(
        organization=org_a, email="secret-invitee@a.example", role="exec"
    )
    with scopes_disabled():
        bob_membership = Membership.objects.get(organization=org_a, user=bob)
    account = AccountFactory(organization=org_a, name="Secret Initech", external_id="SECRET-ACC")
    contact = ContactFactory(account=account, email="secret.contact@initech.example")
    ticket = SupportTicketFactory(account=account, contact=contact, subject="Secret outage")
    usage = UsageSnapshotFactory(account=account)
    segment = SegmentFactory(organization=org_a, name="Secret segment")
    with scopes_disabled():
        response = Response.objects.create(
            organization=org_a,
            contact=contact,
            account=account,
            score=2,
            category="detractor",
            danger_zone=True,
            channel="api",
            comment="Secret complaint about the price",
            has_comment=True,
        )
        theme = Theme.objects.create(
            organization=org_a, slug="secret-theme", name="Secret theme", keywords=["secretword"]
        )
        endpoint = WebhookEndpoint.objects.create(
            organization=org_a, url="https://hooks.secret-a.example/nps"
        )
        delivery = WebhookDelivery.objects.create(
            organization=org_a,
            endpoint=endpoint,
            event_id="evt_secret",
            event_type="response.created",
            payload={"type": "response.created"},
            status="failed",
        )
        SlackAlert.objects.create(
            organization=org_a, webhook_url="https://hooks.slack.com/services/SECRET/A"
        )
    survey = SurveyFactory(organization=org_a, name="Secret survey")
    programme = ProgrammeFactory(organization=org_a, survey=survey, name="Secret programme")
    survey_invitation = InvitationFactory(
        organization=org_a, survey=survey, programme=programme, contact=contact
    )
    with scopes_disabled():
        import_job = ImportJob.objects.create(
            organization=org_a,
            kind="accounts",
            original_name="secret-import.csv",
            headers=["external_id"],
            mapping={"external_id": "external_id"},
            status="done",
            error_count=1,
            created_by=alice,
        )
        import_job.error_report.save(
            "secret-import-errors.csv", ContentFile(b"row,key,errors\n2,SECRET-ACC,x\n")
        )
        followup = FollowUp.objects.create(
            organization=org_a,
            response=response,
            account=account,
            contact=contact,
            playbook="recover",
            assignee=bob,
            due_at=now(),
            draft_subject="Secret draft",
        )
        rule = AssignmentRule.objects.create(organization=org_a, segment=segment, assignee=bob)
        pause = MemberPause.objects.create(organization=org_a, user=bob)
    return {
        "import_job": import_job.pk,
        "followup": followup.pk,
        "rule": rule.pk,
        "pause": pause.pk,
        "bob_id": bob.pk,
        "survey": survey.pk,
        "programme": programme.pk,
        "forged_survey_token": invitation_token(survey_invitation)[:-4] + "AAAA",
        "forged_unsubscribe_token": invitation_token(survey_invitation, salt=UNSUBSCRIBE_SALT)[:-4]
        + "AAAA",
        "response": response.pk,
        "theme": theme.pk,
        "endpoint": endpoint.pk,
        "delivery": delivery.pk,
        "account": account.pk,
        "contact": contact.pk,
        "ticket": ticket.pk,
        "usage": usage.pk,
        "segment": segment.pk,
        "org_a_slug": org_a.slug,
        "bob_membership": bob_membership.pk,
        "invitation": invitation.pk,
        # Org A's real token with its signature altered: all an outsider could make.
        "forged_invitation_token": services.invitation_token(invitation)[:-4] + "AAAA",
        "api_key": api_key_a[0].pk,
        "markers": [
            org_a.name,
            "alice@a.example",
            "bob@a.example",
            "carol@a.example",
            "secret-invitee@a.example",
            api_key_a[0].name,
            api_key_a[0].prefix,
            "Secret Initech",
            "SECRET-ACC",
            "secret.contact@initech.example",
            "Secret outage",
            "Secret segment",
            "Secret complaint about the price",
            "Secret theme",
            "hooks.secret-a.example",
            endpoint.secret,
            "services/SECRET/A",
            "Secret survey",
            "Secret programme",
            "secret-import.csv",
            "Secret draft",
        ],
    }


KEY_KINDS = {"api_list", "api_object", "compat_list", "compat_object"}


def _key_headers(entry, raw_key):
    """Bearer for /api/v1/; HTTP Basic with the key as user name for /delighted/v1/."""
    if entry.kind.startswith("compat_"):
        return {"Authorization": "Basic " + base64.b64encode(f"{raw_key}:".encode()).decode()}
    return {"Authorization": f"Bearer {raw_key}"}


def _resolve(value, world):
    if isinstance(value, str) and value.startswith("literal:"):
        return value.removeprefix("literal:")
    return world[value]


def _url(name, entry, world):
    if name == "admin:*":
        return reverse("admin:index")
    if name == "anymail:*":
        return reverse("anymail:postmark_tracking_webhook")
    return reverse(name, kwargs={k: _resolve(v, world) for k, v in entry.kwargs.items()})


def _assert_no_markers(response, world, name):
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    body = raw.decode(errors="replace")
    leaked = [marker for marker in world["markers"] if marker in body]
    assert not leaked, f"{name} shows org A data to org B: {leaked}"


def _snapshot(org_a):
    with scopes_disabled():
        return (
            sorted(Membership.objects.filter(organization=org_a).values_list("pk", "role")),
            sorted(
                TeammateInvitation.objects.filter(organization=org_a).values_list(
                    "pk", "revoked_at"
                )
            ),
            sorted(ApiKey.objects.filter(organization=org_a).values_list("pk", "revoked_at")),
            [
                model.objects.filter(organization=org_a).count()
                for model in (
                    Account,
                    Contact,
                    SupportTicket,
                    UsageSnapshot,
                    Segment,
                    ErasureRecord,
                    Response,
                    Theme,
                )
            ],
            sorted(
                WebhookEndpoint.objects.filter(organization=org_a).values_list("pk", "is_active")
            ),
            sorted(
                WebhookDelivery.objects.filter(organization=org_a).values_list(
                    "pk", "status", "attempts"
                )
            ),
            sorted(Invitation.objects.filter(organization=org_a).values_list("pk", "state")),
            sorted(
                Contact.objects.filter(organization=org_a).values_list("pk", "suppressed_reason")
            ),
            [Survey.objects.filter(organization=org_a).count()],
            [Programme.objects.filter(organization=org_a).count()],
            sorted(
                FollowUp.objects.filter(organization=org_a).values_list(
                    "pk", "status", "assignee_id", "draft_subject", "draft_body", "outcome"
                )
            ),
            [
                model.objects.filter(organization=org_a).count()
                for model in (Activity, AssignmentRule, MemberPause, PlaybookTemplate, ImportJob)
            ],
            list(
                FollowUpSettings.objects.filter(organization=org_a).values_list(
                    "auto_send_thanks", "escalate_after_hours"
                )
            ),
        )


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_it_keeps_org_a_away_from_org_b(name, client, org_a, org_a_world, mallory, api_key_b):
    entry = MATRIX[name]
    world = org_a_world
    url = _url(name, entry, world)
    data = {k: _resolve(v, world) for k, v in entry.data.items()}
    before = _snapshot(org_a)

    if entry.kind in KEY_KINDS:
        headers = _key_headers(entry, api_key_b[1])
        response = getattr(client, entry.method)(url, headers=headers)
        if entry.kind in {"api_object", "compat_object"}:
            assert response.status_code == 404, f"{name}: {response.status_code}"
        else:
            assert response.status_code == 200, f"{name}: {response.status_code}"
        _assert_no_markers(response, world, name)
    else:
        client.force_login(mallory)
        response = getattr(client, entry.method)(url, data)
        if entry.kind == "object":
            assert response.status_code == 404, f"{name} answered {response.status_code} to org B"
        elif entry.kind == "superuser":
            assert response.status_code == 302
            assert "/admin/login/" in response.url
        else:
            assert response.status_code in entry.expect, f"{name}: {response.status_code}"
        _assert_no_markers(response, world, name)

    assert _snapshot(org_a) == before, f"{name} changed org A's data for org B"


@pytest.mark.parametrize("name", sorted(n for n, e in MATRIX.items() if e.kind == "object"))
def test_it_lets_the_owner_use_each_object_route(name, client, org_a_world, alice):
    """The control for the 404s above: the same URL works for org A's admin."""
    entry = MATRIX[name]
    client.force_login(alice)
    data = {k: _resolve(v, org_a_world) for k, v in entry.data.items()}
    response = getattr(client, entry.method)(_url(name, entry, org_a_world), data)
    assert response.status_code in {200, 302}, f"{name}: {response.status_code}"


@pytest.mark.parametrize("name", sorted(n for n, e in MATRIX.items() if e.kind in KEY_KINDS))
def test_it_lets_the_owners_key_use_each_api_route(name, client, org_a_world, api_key_a):
    entry = MATRIX[name]
    headers = _key_headers(entry, api_key_a[1])
    response = getattr(client, entry.method)(_url(name, entry, org_a_world), headers=headers)
    assert response.status_code in {200, 201, 202, 204}, f"{name}: {response.status_code}"
