"""Sign-up inside an authorization request, in Chromium: the form, the verification mail from the
real SMTP server (its code typed in, or its link opened), the consent page, and the browser
landing on the client's redirect URI with a code that the token endpoint accepts."""

from __future__ import annotations

import re
from typing import Any

import pytest
from browser_helpers import (
    Broker,
    Client,
    MailSink,
    RelyingParty,
    authorization,
    code_in,
    link_in,
    mail_to,
    redeem,
    stored_user,
    unique_email,
)
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a long and private passphrase"


def sign_up(page: Any, broker: Broker, client: Client, email: str) -> Any:
    """From the application to the "check your email" page; returns the authorization."""
    auth = authorization(broker, client)
    page.goto(auth.url)
    expect(page).to_have_url(re.compile(re.escape(broker.issuer) + r"/login\?interaction="))
    expect(page.get_by_text("Travel Planner")).to_be_visible()
    page.get_by_role("link", name="Create an account").click()

    expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/signup\?interaction="))
    page.get_by_label("Email", exact=True).fill(email)
    password = page.get_by_label("Password", exact=True)
    expect(password).to_have_attribute("autocomplete", "new-password")
    password.fill(NEW_PASSWORD)
    page.get_by_label("Given name").fill("Grace")
    page.get_by_label("Family name").fill("Hopper")
    expect(page.get_by_label("Phone number (optional)")).to_be_empty()
    page.get_by_label("Newsletter").check()
    page.get_by_role("button", name="Create account").click()

    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    expect(page.get_by_text(f"We sent a message to {email}")).to_be_visible()
    return auth


def allow(page: Any, rp: RelyingParty) -> None:
    expect(page.get_by_role("heading", name="Travel Planner wants to access your account")).to_be_visible()
    expect(page.get_by_role("listitem").filter(has_text="Your email address")).to_be_visible()
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(rp.redirect_uri + "?**")
    expect(page.get_by_role("heading", name="Back at the application")).to_be_visible()


def assert_new_user(result: dict[str, Any], email: str) -> None:
    info = result["userinfo"]
    assert info["email"] == email and info["email_verified"] is True, info
    assert (info["given_name"], info["family_name"]) == ("Grace", "Hopper"), info
    assert result["id_token"]["sub"] == info["sub"]


def test_sign_up_and_enter_the_code(page: Any, broker: Broker, client: Client, rp: RelyingParty,
                                    mail: MailSink) -> None:
    email = unique_email("grace")
    auth = sign_up(page, broker, client, email)

    subject, text = mail_to(mail, email)
    assert subject == "Confirm your email address"
    code_field = page.get_by_label("6-digit code")
    expect(code_field).to_have_attribute("autocomplete", "one-time-code")
    expect(code_field).to_be_focused()

    # A wrong code first: the page says so next to the field and keeps the request.
    wrong = "000000" if code_in(text) != "000000" else "111111"
    code_field.fill(wrong)
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("alert")).to_have_text("That code is not right. Check the latest message and try again.")
    expect(page.get_by_label("6-digit code")).to_have_attribute("aria-invalid", "true")

    page.get_by_label("6-digit code").fill(code_in(text))
    page.get_by_role("button", name="Confirm").click()
    allow(page, rp)

    callback = rp.received(auth.state)
    assert page.url.startswith(rp.redirect_uri) and f"code={callback['code']}" in page.url
    assert_new_user(redeem(broker, client, auth, callback), email)
    stored = stored_user(broker, email)
    assert stored["email_verified"] is True and stored["custom_attributes"] == {"newsletter": True}, stored


def test_sign_up_and_open_the_link(page: Any, broker: Broker, client: Client, rp: RelyingParty,
                                   mail: MailSink) -> None:
    email = unique_email("hopper")
    auth = sign_up(page, broker, client, email)

    _, text = mail_to(mail, email)
    link = link_in(text, broker.issuer, "/verify-email/confirm")
    assert "token=" in link
    # The link opened in the browser that is signed in and holds the request: it continues there.
    page.goto(link)
    allow(page, rp)

    assert_new_user(redeem(broker, client, auth, rp.received(auth.state)), email)
