"""The whole loop in a real browser: a detractor's answer arrives over the API, its follow-up
is at the top of the CS manager's queue, and he works it to a close on its page — edits the
draft, sends it (the email carries his words), logs a note and closes it with an outcome,
each step in the activity log. Also the queue's keyboard and its filters swapped in place."""

import re

import pytest
import requests
from django.core import mail
from django.utils.timezone import now
from django_scopes import scope, scopes_disabled
from playwright.sync_api import expect

from accounts import services as account_services
from followups import services
from followups.models import FollowUp
from responses.services import response_record
from tests.factories import PASSWORD, make_api_key

pytestmark = pytest.mark.browser

ROWS = "#queue-list [data-followup-id]"
COMMENT = "Exports fail every week and nobody answers our tickets. We are looking at alternatives."
EDITED = "Hi Ann,\n\nI'm sorry about the exports. I've put our best engineer on it today.\n\nBob"


def sign_in(page, email, password):
    page.goto("/login/")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")


@pytest.fixture
def org(org_a, alice, bob):
    """Megacorp (big ARR, owned by bob) with Ann; Tiny Shop and Midco, whose people already
    answered, so bob's queue has work in it before the detractor arrives."""
    with scope(organization=org_a):
        account_services.records_upsert(
            organization=org_a,
            kind="accounts",
            items=[
                {
                    "external_id": "big",
                    "name": "Megacorp",
                    "arr": 900000,
                    "plan": "enterprise",
                    "signed_up_on": "2023-03-14",
                    "owner_email": "bob@a.example",
                },
                {"external_id": "small", "name": "Tiny Shop", "arr": 1200, "plan": "starter"},
                {"external_id": "mid", "name": "Midco", "arr": 40000, "plan": "growth"},
            ],
        )
        account_services.records_upsert(
            organization=org_a,
            kind="contacts",
            items=[
                {"email": "ann@mega.example", "name": "Ann Lee", "account_external_id": "big"},
                {"email": "tom@tiny.example", "name": "Tom Fox", "account_external_id": "small"},
                {"email": "mo@mid.example", "name": "Mo Diaz", "account_external_id": "mid"},
            ],
        )
        for email, score, comment in [
            ("tom@tiny.example", 6, "Could be better"),
            ("mo@mid.example", 8, "Fine, a bit slow"),
        ]:
            response, _ = response_record(
                organization=org_a, channel="api", email=email, score=score, comment=comment
            )
            services.followup_open_for_response(organization=org_a, response_id=response.pk)
    return org_a


def _kinds(page) -> list[str]:
    return page.locator("#activity-log [data-kind]").evaluate_all(
        "items => items.map(i => i.dataset.kind)"
    )


def test_it_closes_the_loop_from_an_api_answer_to_an_outcome(page, live_server, org, bob):
    mail.outbox.clear()
    _, raw_key = make_api_key(org, name="CRM sync")
    answered = requests.post(
        f"{live_server.url}/api/v1/responses/",
        json={"email": "ann@mega.example", "score": 2, "comment": COMMENT},
        headers={"Authorization": f"Bearer {raw_key}"},
        timeout=30,
    )
    assert answered.status_code == 201, answered.text
    with scopes_disabled():
        followup = FollowUp.objects.get(response_id=answered.json()["id"])
    assert followup.assignee == bob
    assert followup.playbook == "recover"

    # Top of bob's queue, with the reason it ranks there.
    sign_in(page, "bob@a.example", PASSWORD)
    page.goto("/queue/")
    expect(page.locator(ROWS)).to_have_count(3)
    top = page.locator(ROWS).first
    expect(top).to_have_attribute("data-followup-id", str(followup.pk))
    expect(top).to_contain_text("Ann Lee")
    expect(top).to_contain_text("Megacorp")
    expect(top).to_contain_text("$900,000")
    expect(top.locator(".fu-reason")).to_have_text("Danger zone (0–3)")
    expect(top.locator(".fu-sla")).to_have_text("due in 24 h")

    # j then o opens it.
    page.keyboard.press("j")
    expect(top).to_have_class(re.compile(r"\bis-current\b"))
    with page.expect_navigation():
        page.keyboard.press("o")
    expect(page).to_have_url(re.compile(rf"/queue/{followup.pk}/$"))

    # The context panel.
    account = page.locator("section[aria-labelledby='account-title']")
    expect(account).to_contain_text("Megacorp")
    expect(account).to_contain_text("$900,000")
    expect(account).to_contain_text("enterprise")
    expect(account).to_contain_text("since 14 Mar 2023")
    expect(page.locator("section[aria-labelledby='history-title']")).to_contain_text(COMMENT)
    expect(page.locator(".rx-full-comment")).to_have_text(COMMENT)

    # Edit the draft and send it.
    message = page.get_by_label("Message", exact=True)
    expect(message).to_have_value(re.compile(r"^Hi Ann,"))
    page.get_by_label("Subject", exact=True).fill("About the exports, Ann")
    message.fill(EDITED)
    with page.expect_navigation():
        page.get_by_role("button", name="Send email").click()
    expect(page.locator(".messages")).to_contain_text("Email sent to ann@mega.example.")
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["ann@mega.example"]
    assert sent.subject == "About the exports, Ann"
    assert sent.body == EDITED.strip()
    assert sent.reply_to == ["bob@a.example"]

    # A note, logged in place (htmx).
    page.evaluate("() => { window.__samePage = true; }")
    page.get_by_label("What happened").fill("Ann replied: call booked for Thursday.")
    page.get_by_role("button", name="Log it").click()
    expect(page.locator("#activity-log")).to_contain_text("Ann replied: call booked for Thursday.")
    assert page.evaluate("() => window.__samePage") is True
    expect(page.get_by_label("What happened")).to_have_value("")

    # Closing needs an outcome: the form says so, and it stays open.
    with page.expect_navigation():
        page.get_by_role("button", name="Close follow-up").click()
    expect(page.locator("#outcome-error")).to_have_text("Choose an outcome to close the follow-up.")
    with scopes_disabled():
        followup.refresh_from_db()
    assert followup.is_open

    page.get_by_label("Outcome").select_option("resolved")
    page.get_by_label("Closing notes").fill("Export fixed; Ann is staying.")
    with page.expect_navigation():
        page.get_by_role("button", name="Close follow-up").click()
    expect(page.locator(".messages")).to_contain_text("Closed: Resolved.")
    expect(page.locator("[data-status]")).to_have_text("Closed: Resolved")

    # Every step, in order, with who did it.
    assert _kinds(page) == ["created", "email", "note", "closed"]
    log = page.locator("#activity-log")
    expect(log.locator("[data-kind='email']")).to_contain_text("Bob Manager")
    expect(log.locator("[data-kind='email']")).to_contain_text("About the exports, Ann")
    expect(log.locator("[data-kind='note']")).to_contain_text("Bob Manager")
    expect(log.locator("[data-kind='closed']")).to_contain_text("Closed: Resolved")
    with scopes_disabled():
        followup.refresh_from_db()
    assert (followup.status, followup.outcome) == ("closed", "resolved")
    assert followup.closed_at <= now()

    # It has left bob's open queue.
    page.goto("/queue/")
    expect(page.locator(ROWS)).to_have_count(2)
    expect(page.locator(f'[data-followup-id="{followup.pk}"]')).to_have_count(0)


def test_it_moves_through_the_queue_with_the_keyboard_and_filters_in_place(page, org, bob):
    sign_in(page, "bob@a.example", PASSWORD)
    page.goto("/queue/?tab=all")
    rows = page.locator(ROWS)
    expect(rows).to_have_count(2)
    expect(page.locator("#queue-keys")).to_be_visible()
    page.evaluate("() => { window.__samePage = true; }")

    page.keyboard.press("j")
    page.keyboard.press("j")
    expect(rows.nth(1)).to_have_class(re.compile(r"\bis-current\b"))
    page.keyboard.press("k")
    expect(rows.nth(0)).to_have_class(re.compile(r"\bis-current\b"))
    expect(rows.nth(1)).not_to_have_class(re.compile(r"\bis-current\b"))
    page.keyboard.press("x")
    expect(rows.nth(0).locator("input[type=checkbox]")).to_be_checked()
    page.keyboard.press("x")
    expect(rows.nth(0).locator("input[type=checkbox]")).not_to_be_checked()

    # A filter swaps the list in place and keeps the tab.
    page.get_by_label("Category").select_option("passive")
    expect(page).to_have_url(re.compile(r"tab=all.*category=passive"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Mo Diaz")
    assert page.evaluate("() => window.__samePage") is True

    # A tab swaps in place too, and the filter form follows it.
    page.locator("[data-tab='unassigned']").click()
    expect(page).to_have_url(re.compile(r"tab=unassigned"))
    expect(page.locator("#queue-tab")).to_have_value("unassigned")
    page.get_by_label("Category").select_option("")
    expect(page).to_have_url(re.compile(r"tab=unassigned"))
    assert page.evaluate("() => window.__samePage") is True

    # Typing in a field never triggers a shortcut.
    page.goto("/queue/?tab=all")
    page.get_by_label("Category").focus()
    page.keyboard.press("j")
    expect(page.locator(f"{ROWS}.is-current")).to_have_count(0)


def test_it_previews_a_template_live_as_the_admin_types(page, org, alice):
    sign_in(page, "alice@a.example", PASSWORD)
    page.goto("/settings/playbooks/")
    page.evaluate("() => { window.__samePage = true; }")
    preview = page.locator("#preview-nudge")
    # Mo's real 8 is the newest passive answer.
    expect(preview).to_contain_text("Rendered on a real answer")
    expect(preview).to_contain_text("Mo Diaz")

    body = page.locator("#id_nudge_body")
    body.fill("Hi {{ contact.first_name }}, {{ nickname }}\n{% if score %}")
    expect(preview).to_contain_text("Line 2:")
    body.fill("Hi {{ contact.first_name }}, {{ nickname }}")
    expect(preview.locator("[data-preview-body]")).to_have_text("Hi Mo, [[nickname?]]\n")
    expect(preview.locator("[data-problems]")).to_contain_text("Unknown variable “nickname”.")
    assert page.evaluate("() => window.__samePage") is True
