"""Settings → Playbooks & assignment: templates with a live preview on a real answer, SLAs,
reset, assignment rules, pausing teammates, and the auto-send and escalation options."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled

from accounts import services as account_services
from followups import drafts, services
from followups.models import AssignmentRule, FollowUpSettings, MemberPause, PlaybookTemplate
from responses.services import response_record
from tests.accounts.factories import SegmentFactory
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

PAGE = "/settings/playbooks/"
PREVIEW = "/settings/playbooks/preview"
SAVE = "/settings/playbooks/template"
HTMX = {"HX-Request": "true"}
ESCAPE = "{{ ''.__class__.__mro__[1].__subclasses__() }}"  # the sandbox refuses it


def answer(org, email, score, comment=""):
    response, _ = response_record(
        organization=org, channel="api", email=email, score=score, comment=comment
    )
    return services.followup_open_for_response(organization=org, response_id=response.pk)


@pytest.fixture
def world(org_a, alice, bob, carol):
    with scope(organization=org_a):
        account_services.records_upsert(
            organization=org_a,
            kind="accounts",
            items=[
                {"external_id": "big", "name": "Megacorp", "plan": "enterprise", "arr": 500000},
                {"external_id": "mid", "name": "Midco", "plan": "growth", "arr": 40000},
            ],
        )
        account_services.records_upsert(
            organization=org_a,
            kind="contacts",
            items=[
                {"email": "ann@mega.example", "name": "Ann Lee", "account_external_id": "big"},
                {"email": "mo@mid.example", "name": "Mo Diaz", "account_external_id": "mid"},
            ],
        )
        detractor = answer(org_a, "ann@mega.example", 2, "Too expensive for what it does")
    return {"org": org_a, "detractor": detractor}


def test_it_is_for_admins_only(client, world, alice, bob, carol):
    response = client_for(client, alice).get(PAGE)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'aria-current="page">Playbooks &amp; assignment</a>' in body
    assert client_for(client, bob).get(PAGE).status_code == 403
    assert client_for(client, carol).get(PAGE).status_code == 403
    assert client_for(client, bob).post(SAVE, {"playbook": "recover"}).status_code == 403


def test_it_prefills_each_playbook_with_the_default_and_previews_a_real_answer(
    client, world, alice
):
    body = client_for(client, alice).get(PAGE).content.decode()
    for playbook in ("recover", "nudge", "thank", "ask_why"):
        assert f'id="playbook-{playbook}"' in body
        assert f'id="id_{playbook}_body"' in body
    assert "About your feedback, {{ contact.first_name or &#x27;there&#x27; }}" in body
    # Recover is previewed on Ann's real answer; the others on a sample customer.
    assert "Rendered on a real answer" in body
    assert "About your feedback, Ann" in body
    assert "Rendered on a sample customer" in body
    # The variables are listed with their value in the preview.
    assert "<code>contact.first_name</code>" in body
    assert "<code>tickets.open</code>" in body
    assert "<code>owner.signature</code>" in body


def test_it_previews_with_htmx_and_shows_unknown_variables(client, world, alice):
    response = client_for(client, alice).post(
        PREVIEW,
        {
            "playbook": "recover",
            "subject": "Hi {{ contact.first_name }}",
            "body": "Dear {{ contact.nickname }}, {{ mystery }}",
        },
        headers=HTMX,
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body
    assert "data-preview-subject>Hi Ann</p>" in body
    assert "Dear [[nickname?]], [[mystery?]]" in body
    assert "Unknown variable “nickname”." in body
    assert "Unknown variable “mystery”." in body


def test_it_shows_a_syntax_error_with_its_line_never_a_500(client, world, alice):
    response = client_for(client, alice).post(
        PREVIEW,
        {"playbook": "thank", "subject": "Hi", "body": "Line one\n{% if score %}\nno end"},
        headers=HTMX,
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "Line 3:" in body
    assert "endif" in body
    assert "data-preview-body" not in body


def test_it_reports_a_sandbox_refusal_rather_than_crashing(client, world, alice):
    response = client_for(client, alice).post(
        PREVIEW,
        {"playbook": "thank", "subject": "x", "body": ESCAPE},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert "The template cannot be rendered" in response.content.decode()


def test_it_previews_without_javascript_on_the_full_page(client, world, alice):
    response = client_for(client, alice).post(
        PREVIEW, {"playbook": "nudge", "subject": "S {{ score }}", "body": "Body {{ oops }}"}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" in body
    assert "Body [[oops?]]" in body
    assert "Body {{ oops }}</textarea>" in body


def test_it_saves_a_template_that_new_followups_use(client, world, alice):
    org = world["org"]
    response = client_for(client, alice).post(
        SAVE,
        {
            "playbook": "nudge",
            "subject": "Quick question, {{ contact.first_name }}",
            "body": "Hi {{ contact.first_name }}, what would it take?\r\n{{ owner.signature }}",
            "sla_hours": "12",
            "action": "save",
        },
        follow=True,
    )
    assert "“Nudge a passive toward promoter” saved." in response.content.decode()
    with scopes_disabled():
        template = PlaybookTemplate.objects.get(organization=org, playbook="nudge")
    assert template.sla_hours == 12
    assert "\r" not in template.body
    with scope(organization=org):
        followup = answer(org, "mo@mid.example", 7, "Fine but slow")
    assert followup.draft_subject == "Quick question, Mo"
    assert followup.draft_body.startswith("Hi Mo, what would it take?\nBob")
    assert abs((followup.due_at - now()) - timedelta(hours=12)) < timedelta(minutes=5)


def test_it_refuses_a_template_that_does_not_parse(client, world, alice):
    response = client_for(client, alice).post(
        SAVE,
        {"playbook": "recover", "subject": "Hi", "body": "{% for x in %}", "sla_hours": "24"},
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "was not saved" in body
    assert "Line 1:" in body
    assert "{% for x in %}</textarea>" in body
    with scopes_disabled():
        assert not PlaybookTemplate.objects.exists()


def test_it_saves_an_unknown_variable_with_a_warning(client, world, alice):
    response = client_for(client, alice).post(
        SAVE,
        {"playbook": "recover", "subject": "Hi", "body": "Hi {{ nickname }}", "sla_hours": "24"},
        follow=True,
    )
    body = response.content.decode()
    assert "saved, but drafts will show Unknown variable “nickname”." in body
    with scopes_disabled():
        assert PlaybookTemplate.objects.filter(playbook="recover").exists()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"subject": "", "body": "x", "sla_hours": "24"}, "Write a subject."),
        ({"subject": "x", "body": "", "sla_hours": "24"}, "Write the message."),
        ({"subject": "x", "body": "y", "sla_hours": "0"}, "greater than or equal to 1"),
    ],
)
def test_it_explains_what_is_missing(client, world, alice, data, error):
    response = client_for(client, alice).post(SAVE, {"playbook": "thank", **data})
    assert response.status_code == 200
    assert error in response.content.decode()


def test_it_resets_a_playbook_to_the_default(client, world, alice):
    org = world["org"]
    with scope(organization=org):
        services.playbook_template_save(
            organization=org, playbook="thank", subject="S", body="B", sla_hours=5
        )
    response = client_for(client, alice).post(
        SAVE, {"playbook": "thank", "action": "reset"}, follow=True
    )
    assert "is back to the default template and SLA" in response.content.decode()
    with scopes_disabled():
        assert not PlaybookTemplate.objects.exists()
    with scope(organization=org):
        assert services.sla_hours(org, "thank") == drafts.DEFAULTS["thank"]["sla_hours"]


def test_it_adds_and_deletes_assignment_rules(client, world, alice, bob, mallory):
    org = world["org"]
    segment = SegmentFactory(organization=org, name="Growth accounts")
    as_alice = client_for(client, alice)
    response = as_alice.post(
        "/settings/playbooks/rules",
        {"segment": str(segment.pk), "assignee": str(bob.pk)},
        follow=True,
    )
    assert "Added: accounts in “Growth accounts” go to Bob Manager." in response.content.decode()
    second = SegmentFactory(organization=org, name="Second")
    as_alice.post("/settings/playbooks/rules", {"segment": str(second.pk), "assignee": str(bob.pk)})
    with scopes_disabled():
        rules = list(AssignmentRule.objects.order_by("order"))
    assert [(r.segment_id, r.assignee_id, r.order) for r in rules] == [
        (segment.pk, bob.pk, 0),
        (second.pk, bob.pk, 1),
    ]
    body = as_alice.get(PAGE).content.decode()
    assert body.index("Growth accounts</strong>") < body.index("Second</strong>")

    # An outsider cannot be the assignee; the page says so.
    response = as_alice.post(
        "/settings/playbooks/rules", {"segment": str(segment.pk), "assignee": str(mallory.pk)}
    )
    assert "Choose a CS manager or an admin of this organization." in response.content.decode()

    response = as_alice.post(f"/settings/playbooks/rules/{rules[0].pk}/delete", follow=True)
    assert "Rule deleted." in response.content.decode()
    with scopes_disabled():
        assert list(AssignmentRule.objects.values_list("pk", flat=True)) == [rules[1].pk]


def test_it_refuses_another_organizations_segment_for_a_rule(client, world, alice, bob, org_b):
    foreign = SegmentFactory(organization=org_b, name="Foreign")
    response = client_for(client, alice).post(
        "/settings/playbooks/rules", {"segment": str(foreign.pk), "assignee": str(bob.pk)}
    )
    assert response.status_code == 200
    assert "The rule was not added." in response.content.decode()
    with scopes_disabled():
        assert not AssignmentRule.objects.exists()


def test_it_pauses_and_resumes_a_teammate(client, world, alice, bob):
    org = world["org"]
    as_alice = client_for(client, alice)
    until = (now().date() + timedelta(days=10)).isoformat()
    response = as_alice.post(
        "/settings/playbooks/pauses", {"user": str(bob.pk), "until": until}, follow=True
    )
    assert "Bob Manager is paused until" in response.content.decode()
    with scope(organization=org):
        assert services.paused_user_ids(org) == {bob.pk}
        followup = answer(org, "mo@mid.example", 3, "Nope")  # Midco has no owner
    assert followup.assignee != bob
    with scopes_disabled():
        pause = MemberPause.objects.get()
    response = as_alice.post(f"/settings/playbooks/pauses/{pause.pk}/resume", follow=True)
    assert "Bob Manager receives follow-ups again." in response.content.decode()
    with scopes_disabled():
        assert not MemberPause.objects.exists()


def test_it_refuses_a_pause_that_ended_in_the_past(client, world, alice, bob):
    response = client_for(client, alice).post(
        "/settings/playbooks/pauses",
        {"user": str(bob.pk), "until": (now().date() - timedelta(days=1)).isoformat()},
    )
    assert "Choose today or a later date." in response.content.decode()
    with scopes_disabled():
        assert not MemberPause.objects.exists()


def test_it_toggles_auto_send_for_thank_yous_but_never_for_detractors(client, world, alice):
    org = world["org"]
    as_alice = client_for(client, alice)
    body = as_alice.get(PAGE).content.decode()
    assert "Detractors always get a person" in body
    response = as_alice.post(
        "/settings/playbooks/options",
        {"auto_send_thanks": "on", "escalate_after_hours": "24"},
        follow=True,
    )
    assert "detractors still always get a person" in response.content.decode()
    with scopes_disabled():
        found = FollowUpSettings.objects.get(organization=org)
    assert (found.auto_send_thanks, found.escalate_after_hours) == (True, 24)
    with scope(organization=org):
        answer(org, "ann@mega.example", 1, "Awful")
        assert mail.outbox == []
        answer(org, "mo@mid.example", 10, "Love it")
    assert [m.to for m in mail.outbox] == [["mo@mid.example"]]

    as_alice.post("/settings/playbooks/options", {"escalate_after_hours": "48"})
    with scopes_disabled():
        found.refresh_from_db()
    assert (found.auto_send_thanks, found.escalate_after_hours) == (False, 48)


def test_it_refuses_an_escalation_limit_of_zero(client, world, alice):
    response = client_for(client, alice).post(
        "/settings/playbooks/options", {"escalate_after_hours": "0"}
    )
    assert response.status_code == 200
    assert "The options were not saved." in response.content.decode()


def test_it_keeps_another_organizations_rules_and_pauses_away(client, world, alice, bob, mallory):
    org = world["org"]
    segment = SegmentFactory(organization=org, name="Secret segment")
    with scope(organization=org):
        rule = services.assignment_rule_save(organization=org, segment=segment, assignee=bob)
        pause = services.member_pause_set(organization=org, user=bob)
    as_mallory = client_for(client, mallory)
    body = as_mallory.get(PAGE).content.decode()
    assert "Secret segment" not in body
    assert "Bob Manager" not in body
    assert "Ann Lee" not in body
    assert as_mallory.post(f"/settings/playbooks/rules/{rule.pk}/delete").status_code == 404
    assert as_mallory.post(f"/settings/playbooks/pauses/{pause.pk}/resume").status_code == 404
    as_mallory.post(SAVE, {"playbook": "recover", "subject": "B", "body": "B", "sla_hours": "1"})
    with scopes_disabled():
        assert AssignmentRule.objects.filter(pk=rule.pk).exists()
        assert MemberPause.objects.filter(pk=pause.pk).exists()
        assert not PlaybookTemplate.objects.filter(organization=org).exists()
