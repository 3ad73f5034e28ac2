"""The admin pages in Chromium against a running broker: an admin signs in, sets up an
authenticator app (the pages demand a second factor), steps up, finds a user and disables them;
and axe-core finds no WCAG 2.x A/AA violation on any admin page, in English (light and dark) and
French."""

from __future__ import annotations

import time
from typing import Any

import pyotp
import pytest
from browser_helpers import PASSWORD, WAIT_SECONDS, Broker, Client, add_user, stored_user, unique_email
from playwright.sync_api import expect
from test_browser_accessibility import AXE, LOCALES, Axe

pytestmark = pytest.mark.browser


def sign_in(page: Any, email: str) -> None:
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def admin_signed_in(page: Any, broker: Broker, admin_email: str) -> None:
    """An admin without a second factor signs in, is told to set one up, sets up an authenticator
    app, signs in again with the second step and lands on the users page (English pages)."""
    page.goto(broker.issuer + "/admin")
    sign_in(page, admin_email)
    expect(page.get_by_role("heading", name="Set up two-step verification first")).to_be_visible()
    page.get_by_role("link", name="Set up two-step verification").click()
    page.get_by_role("button", name="Use an authenticator app").click()
    secret = page.locator("#secret").inner_text().replace(" ", "")
    page.get_by_label("Verification code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_role("heading", name="Two-step verification is on")).to_be_visible()

    # A new sign-in towards /admin asks for the second step, then lands on the admin pages.
    page.context.clear_cookies()
    page.goto(broker.issuer + "/admin")
    sign_in(page, admin_email)
    code = page.get_by_label("Verification code")
    expect(code).to_be_visible()
    code.fill(pyotp.TOTP(secret).at(int(time.time()) + 30))  # newer than the set-up code
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name="Users")).to_be_visible()


def test_admin_signs_in_steps_up_finds_a_user_and_disables_them(page: Any, broker: Broker) -> None:
    admin_email, target = unique_email("admin"), unique_email("target")
    add_user(broker, admin_email, group="admin")
    add_user(broker, target, given_name="Target", family_name="Person")
    admin_signed_in(page, broker, admin_email)

    page.get_by_label("Email address").fill(target.split("@")[0])
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=target).click()
    expect(page.get_by_role("heading", name=target)).to_be_visible()
    expect(page.locator("#status")).to_have_text("Active")
    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("status")).to_have_text("The user was disabled and signed out everywhere.")
    expect(page.locator("#status")).to_have_text("Disabled")
    assert stored_user(broker, target)["disabled"] is True


AXE_CASES = [("en", "light"), ("en", "dark"), ("fr", "light")]


def test_admin_pages_have_no_wcag_aa_violations(browser: Any, page: Any, broker: Broker, client: Client) -> None:
    """Every admin page (users with a search, a user, clients, a client, keys, audit trail) through
    axe-core, with the signed-in, stepped-up admin's cookies in a fresh profile per language and
    colour scheme (bypass_csp: axe is injected as an inline script, which the pages forbid)."""
    if not AXE.is_file():
        pytest.skip(f"axe-core is not installed ({AXE}; run npm install in tests/peers/node)")
    admin_email, target = unique_email("admin"), unique_email("target")
    add_user(broker, admin_email, group="admin")
    add_user(broker, target, given_name="Target", family_name="Person")
    admin_signed_in(page, broker, admin_email)
    state = page.context.storage_state()
    sub = stored_user(broker, target)["sub"]

    axe = Axe()
    for lang, scheme in AXE_CASES:
        ctx = browser.new_context(locale=LOCALES[lang], color_scheme=scheme, bypass_csp=True, storage_state=state)
        ctx.set_default_timeout(WAIT_SECONDS * 1000)
        try:
            admin = ctx.new_page()
            for name, path in (("admin-users", "/admin/users?email=" + target.split("@")[0]),
                               ("admin-user", f"/admin/users/{sub}"),
                               ("admin-clients", "/admin/clients"),
                               ("admin-client", f"/admin/clients/{client.client_id}"),
                               ("admin-keys", "/admin/keys"),
                               ("admin-audit", "/admin/audit")):
                admin.goto(broker.issuer + path)
                expect(admin.locator("html")).to_have_attribute("lang", lang)
                expect(admin.locator("nav.nav a[aria-current=page]")).to_be_visible()
                axe(admin, f"{name} {lang}-{scheme}")
        finally:
            ctx.close()
    assert len(axe.seen) == 18, axe.seen
    assert "admin-users en-light" in axe.seen
    assert not axe.violations, "\n".join(f"{page}: {v}" for page, v in axe.violations.items())
