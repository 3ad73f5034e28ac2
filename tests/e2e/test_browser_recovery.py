"""A forgotten password, in Chromium, from an application's login page: ask for the link, open it
from the real mail, choose a new password, and sign in with it to finish the authorization."""

from __future__ import annotations

import re
from typing import Any

import pytest
from browser_helpers import (
    PASSWORD,
    Broker,
    Client,
    MailSink,
    RelyingParty,
    add_user,
    authorization,
    link_in,
    mail_to,
    redeem,
    unique_email,
)
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

NEW_PASSWORD = "my memorable new passphrase"


def sign_in(page: Any, email: str, password: str) -> None:
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def test_forgot_password_then_sign_in_with_the_new_one(page: Any, broker: Broker, client: Client,
                                                       rp: RelyingParty, mail: MailSink) -> None:
    email = unique_email("ada")
    user = add_user(broker, email, given_name="Ada", family_name="Lovelace")
    auth = authorization(broker, client)
    page.goto(auth.url)
    page.get_by_role("link", name="Forgot your password?").click()

    expect(page.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/forgot-password\?interaction="))
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    expect(page.get_by_text(f"If {email} belongs to an account")).to_be_visible()

    subject, text = mail_to(mail, email)
    assert subject == "Reset your password"
    page.goto(link_in(text, broker.issuer, "/reset-password"))

    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    expect(page.get_by_label("Email", exact=True)).to_have_value(email)
    # Two different entries are refused before anything changes.
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD + "!")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("The two passwords are not the same.")).to_be_visible()
    expect(page.get_by_label("New password again")).to_have_attribute("aria-invalid", "true")

    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("heading", name="Your password has been changed")).to_be_visible()
    subject, _ = mail_to(mail, email, 2)
    assert subject == "Your password was changed"

    # Back to the application's sign-in: the old password no longer works, the new one does.
    page.get_by_role("link", name="Sign in with your new password").click()
    expect(page).to_have_url(re.compile(r"/login\?interaction="))
    sign_in(page, email, PASSWORD)
    expect(page.get_by_role("alert")).to_have_text("Incorrect email or password.")
    sign_in(page, email, NEW_PASSWORD)
    expect(page.get_by_role("heading", name="Travel Planner wants to access your account")).to_be_visible()
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(rp.redirect_uri + "?**")

    result = redeem(broker, client, auth, rp.received(auth.state))
    assert result["userinfo"]["sub"] == user["sub"] and result["userinfo"]["email"] == email

    # The link was good once.
    page.goto(link_in(text, broker.issuer, "/reset-password"))
    expect(page.get_by_role("heading", name="This link cannot be used")).to_be_visible()
