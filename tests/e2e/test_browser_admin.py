"""The admin pages in Chromium against a running broker: an admin signs in, sets up an
authenticator app (the pages demand a second factor), steps up, finds a user and disables them."""

from __future__ import annotations

import time
from typing import Any

import pyotp
import pytest
from browser_helpers import PASSWORD, Broker, add_user, stored_user, unique_email
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def sign_in(page: Any, email: str) -> None:
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


def test_admin_signs_in_steps_up_finds_a_user_and_disables_them(page: Any, broker: Broker) -> None:
    admin_email, target = unique_email("admin"), unique_email("target")
    add_user(broker, admin_email, group="admin")
    add_user(broker, target, given_name="Target", family_name="Person")

    # Signed in, but no second factor yet: told to set one up.
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

    page.get_by_label("Email address").fill(target.split("@")[0])
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=target).click()
    expect(page.get_by_role("heading", name=target)).to_be_visible()
    expect(page.locator("#status")).to_have_text("Active")
    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("status")).to_have_text("The user was disabled and signed out everywhere.")
    expect(page.locator("#status")).to_have_text("Disabled")
    assert stored_user(broker, target)["disabled"] is True
