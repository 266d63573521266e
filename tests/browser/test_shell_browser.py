"""The page shell in a real browser: sign-in, the role's navigation, lockout, the
organization switcher and sign-out."""

import re
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.urls import reverse
from playwright.sync_api import expect

from nps_platform.models import Role
from nps_platform.roles import AREAS, NAVIGATION
from tests.factories import PASSWORD, MembershipFactory

pytestmark = pytest.mark.browser

NAV_LINKS = "nav.mainnav a[data-area]"

# Written out on purpose: if the matrix in nps_platform.roles changes, this test should be
# changed with it, not follow along silently.
EXPECTED_AREAS = {
    Role.ADMIN: ["queue", "dashboard", "responses", "accounts", "surveys", "settings"],
    Role.CS_MANAGER: ["queue", "dashboard", "responses", "accounts"],
    Role.EXEC: ["dashboard", "responses"],
}


def sign_in(page, email, password):
    page.goto("/login/")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")


def areas_in_nav(page):
    return page.locator(NAV_LINKS).evaluate_all("links => links.map(a => a.dataset.area)")


def areas_from_matrix(role):
    return [area for area, _, _ in NAVIGATION if role in AREAS[area]]


@pytest.mark.parametrize(
    ("who", "email", "role", "home_path"),
    [
        ("alice", "alice@a.example", Role.ADMIN, "/dashboard/"),
        ("bob", "bob@a.example", Role.CS_MANAGER, "/queue/"),
        ("carol", "carol@a.example", Role.EXEC, "/dashboard/"),
    ],
)
def test_it_shows_each_role_exactly_the_areas_it_may_use(
    page, request, who, email, role, home_path
):
    request.getfixturevalue(who)
    sign_in(page, email, PASSWORD)

    expect(page).to_have_url(re.compile(re.escape(home_path) + "$"))
    expect(page.locator(".role-badge")).to_have_text(Role(role).label)
    shown = areas_in_nav(page)
    assert shown == areas_from_matrix(role)
    assert set(shown) == set(EXPECTED_AREAS[role])
    assert len(shown) == len(set(shown))

    for area, _, url_name in NAVIGATION:
        if area in shown:
            continue
        path = reverse(url_name)
        response = page.goto(path)
        assert response.status == 403, path
        expect(page.get_by_role("heading", name="Your role cannot open this page")).to_be_visible()


def test_it_refuses_a_wrong_password_on_the_sign_in_page(page, bob):
    sign_in(page, "bob@a.example", "wrong-password")

    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_role("alert")).to_contain_text("That email and password do not match")
    expect(page.locator(NAV_LINKS)).to_have_count(0)

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.locator(NAV_LINKS)).to_have_count(0)


def test_it_locks_out_after_repeated_failures_then_cools_off(page, bob, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        sign_in(page, "bob@a.example", "wrong-password")
        expect(page.get_by_role("alert")).to_contain_text("That email and password do not match")
    # The failure that reaches the limit is already answered with the lockout page.
    sign_in(page, "bob@a.example", "wrong-password")
    expect(page.get_by_role("heading", name="Too many failed sign-ins")).to_be_visible()

    # Now even the right password is refused.
    sign_in(page, "bob@a.example", PASSWORD)
    expect(page.get_by_role("heading", name="Too many failed sign-ins")).to_be_visible()
    expect(page.locator(NAV_LINKS)).to_have_count(0)

    # The cool-off passes: the failures are older than AXES_COOLOFF_TIME.
    assert AccessAttempt.objects.exists()
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.first().attempt_time - timedelta(hours=1)
    )

    sign_in(page, "bob@a.example", PASSWORD)
    expect(page).to_have_url(re.compile(r"/queue/$"))
    expect(page.locator(NAV_LINKS).first).to_be_visible()
    assert areas_in_nav(page) == EXPECTED_AREAS[Role.CS_MANAGER]


def test_it_switches_organization_and_the_role_with_it(page, alice, org_a, org_b):
    MembershipFactory(organization=org_b, user=alice, role=Role.EXEC)
    sign_in(page, "alice@a.example", PASSWORD)

    switcher = page.locator("form.org-switcher select#org-switch")
    expect(switcher.locator("option")).to_have_text([org_a.name, org_b.name])
    expect(switcher).to_have_value(org_a.slug)
    assert areas_in_nav(page) == EXPECTED_AREAS[Role.ADMIN]

    with page.expect_navigation():
        switcher.select_option(org_b.slug)
    page.wait_for_load_state("load")

    expect(page.get_by_role("status")).to_contain_text(f"Switched to {org_b.name}.")
    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    expect(page.locator(".role-badge")).to_have_text(Role.EXEC.label)
    assert areas_in_nav(page) == EXPECTED_AREAS[Role.EXEC]
    expect(switcher).to_have_value(org_b.slug)
    expect(switcher.locator("option:checked")).to_have_text(org_b.name)

    response = page.goto("/settings/")
    assert response.status == 403


def test_it_signs_out_to_the_sign_in_page(page, alice):
    sign_in(page, "alice@a.example", PASSWORD)
    expect(page.locator(".who-name")).to_have_text("Alice Admin")

    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state("load")

    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator(NAV_LINKS)).to_have_count(0)

    page.goto("/settings/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/settings/$"))
