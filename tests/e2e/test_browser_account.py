"""The account page in Chromium: saving the profile, signing out the other sessions (a second
browser profile is the other device), changing the password, and signing out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser_helpers import PASSWORD, Broker, add_user, unique_email
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

NEW_PASSWORD = "another rather long passphrase"


@pytest.fixture
def other(browser: Any) -> Iterator[Any]:
    """A second browser profile: the user's other device."""
    ctx = browser.new_context(locale="en-US")
    try:
        yield ctx
    finally:
        ctx.close()


def sign_in(page: Any, broker: Broker, email: str, password: str = PASSWORD) -> None:
    page.goto(broker.issuer + "/login")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Your apps")).to_be_visible()


def open_account(page: Any) -> None:
    nav = page.get_by_role("navigation", name="Your account")
    nav.get_by_role("link", name="Account", exact=True).click()
    expect(page.get_by_role("heading", name="Your account", exact=True)).to_be_visible()


def sessions(page: Any) -> Any:
    return page.locator("#sessions > li")


def assert_signed_out(page: Any, broker: Broker) -> None:
    page.goto(broker.issuer + "/account")
    expect(page).to_have_url(re.compile(re.escape(broker.issuer) + r"/login"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_profile_sessions_and_password(page: Any, other: Any, broker: Broker) -> None:
    email = unique_email("kay")
    add_user(broker, email, given_name="Kay", family_name="Smith")
    sign_in(page, broker, email)
    open_account(page)

    # Profile.
    expect(page.get_by_label("Given name")).to_have_value("Kay")
    page.get_by_label("Given name").fill("Katherine")
    page.get_by_label("Family name").fill("Johnson")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_role("status")).to_have_text("Your profile was saved.")
    page.reload()
    expect(page.get_by_label("Given name")).to_have_value("Katherine")
    expect(page.get_by_label("Family name")).to_have_value("Johnson")
    assert broker.cli("users", "show", email)["given_name"] == "Katherine"

    # A second device signs in; this one sees both and signs the other out.
    phone = other.new_page()
    sign_in(phone, broker, email)
    page.reload()
    expect(sessions(page)).to_have_count(2)
    expect(sessions(page).filter(has_text="This device")).to_have_count(1)
    page.get_by_role("button", name="Sign out all other sessions").click()
    expect(page.get_by_role("status")).to_have_text(
        "Your other sessions were signed out, and applications you signed in to there lost their access.")
    expect(sessions(page)).to_have_count(1)
    expect(page.get_by_role("button", name="Sign out all other sessions")).to_have_count(0)
    assert_signed_out(phone, broker)

    # The other device comes back; changing the password signs it out again.
    sign_in(phone, broker, email)
    page.reload()
    expect(sessions(page)).to_have_count(2)
    section = page.get_by_role("region", name="Password")
    section.get_by_label("Current password").fill("not my password")
    section.get_by_label("New password").fill(NEW_PASSWORD)
    section.get_by_role("button", name="Change password").click()
    expect(section.get_by_role("alert")).to_have_text("Your current password is not correct.")
    expect(section.get_by_label("Current password")).to_have_attribute("aria-invalid", "true")
    section.get_by_label("Current password").fill(PASSWORD)
    section.get_by_label("New password").fill(NEW_PASSWORD)
    section.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_have_text(
        "Your password was changed. Your other sessions were signed out, and applications you signed in to there "
        "lost their access.")
    expect(sessions(page)).to_have_count(1)
    assert_signed_out(phone, broker)

    # Signing out here, through the confirmation page.
    page.get_by_role("navigation", name="Your account").get_by_role("link", name="Sign out", exact=True).click()
    expect(page.get_by_role("heading", name="Sign out?")).to_be_visible()
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    assert_signed_out(page, broker)

    # Only the new password opens the account now.
    phone.get_by_label("Email", exact=True).fill(email)
    phone.get_by_label("Password", exact=True).fill(PASSWORD)
    phone.get_by_role("button", name="Sign in", exact=True).click()
    expect(phone.get_by_role("alert")).to_have_text("Incorrect email or password.")
    sign_in(phone, broker, email, NEW_PASSWORD)
