"""Two-step verification in Chromium against a running broker: an authenticator app set up from
the security page and then used to sign in to an application; a recovery code instead of the app;
a client that requires a second factor setting one up inside its authorization; and an
application stepping a password-only session up with acr_values. Codes come from pyotp and the
key shown on the page, as an authenticator app would compute them."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyotp
import pytest
from browser_helpers import (
    PASSWORD,
    Broker,
    Client,
    RelyingParty,
    add_client,
    add_user,
    authorization,
    redeem,
    unique_email,
)
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

ACR_MFA = "urn:idbroker:acr:mfa"


def sign_in(page: Any, email: str) -> None:
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()


@contextmanager
def another_browser(browser: Any, broker: Broker, client: Client, email: str) -> Iterator[tuple[Any, Any]]:
    """A second browser that starts an authorization for `client` and signs in with a password:
    (its page, the authorization)."""
    other = browser.new_context(locale="en-US")
    try:
        page = other.new_page()
        auth = authorization(broker, client)
        page.goto(auth.url)
        sign_in(page, email)
        yield page, auth
    finally:
        other.close()


def next_code(secret: str) -> str:
    """The code of the next 30-second step: inside the ±1 window and newer than any code used
    before it in the test, so it is never refused as a replay."""
    return pyotp.TOTP(secret).at(int(time.time()) + 30)


def set_up_app(page: Any) -> tuple[str, list[str]]:
    """From the set-up choices (sign-in or security page): the authenticator app, confirmed with
    a code from the key shown. Returns the key and the recovery codes shown once."""
    page.get_by_role("button", name="Use an authenticator app").click()
    expect(page.get_by_role("heading", name="Authenticator app")).to_be_visible()
    expect(page.get_by_role("img", name=re.compile("QR code to add"))).to_be_visible()
    secret = page.locator("#secret").inner_text().replace(" ", "")
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    code = page.get_by_label("Verification code")
    expect(code).to_have_attribute("autocomplete", "one-time-code")
    expect(code).to_have_attribute("inputmode", "numeric")
    code.fill(pyotp.TOTP(secret).now())
    page.get_by_label("Name").fill("Test phone")
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_role("heading", name="Two-step verification is on")).to_be_visible()
    codes = [c.strip() for c in page.locator("#recovery-codes li").all_inner_texts()]
    assert len(codes) == 10 and all(re.fullmatch(r"[a-z0-9]{5}-[a-z0-9]{5}", c) for c in codes), codes
    return secret, codes


def enrol_from_security_page(page: Any, broker: Broker, email: str) -> tuple[str, list[str]]:
    page.goto(broker.issuer + "/account/security")
    sign_in(page, email)
    expect(page.get_by_role("heading", name="Sign-in security")).to_be_visible()
    expect(page.get_by_text("Two-step verification is off")).to_be_visible()
    secret, codes = set_up_app(page)
    page.get_by_role("link", name="Continue").click()
    expect(page.get_by_role("status")).to_have_text("The sign-in method was added.")
    expect(page.locator("#factors")).to_contain_text("Test phone")
    return secret, codes


def finish(page: Any, broker: Broker, client: Client, rp: RelyingParty, auth: Any) -> dict[str, Any]:
    """Consent when asked, then the tokens the application gets."""
    page.wait_for_url(re.compile(r"/consent\?|/cb\?"))
    if "/consent" in page.url:
        page.get_by_role("button", name="Allow").click()
    page.wait_for_url(rp.redirect_uri + "?**")
    return redeem(broker, client, auth, rp.received(auth.state))["id_token"]


def test_authenticator_app_set_up_then_used_to_sign_in(browser: Any, page: Any, broker: Broker, client: Client,
                                                       rp: RelyingParty) -> None:
    email = unique_email("totp")
    add_user(broker, email)
    secret, _ = enrol_from_security_page(page, broker, email)

    with another_browser(browser, broker, client, email) as (page2, auth):
        expect(page2.get_by_role("heading", name="Two-step verification")).to_be_visible()
        code = page2.get_by_label("Verification code")
        expect(code).to_be_focused()
        code.fill("000000" if next_code(secret) != "000000" else "111111")
        page2.get_by_role("button", name="Verify").click()
        expect(page2.get_by_role("alert")).to_have_text("That code is not right. Try again.")
        page2.get_by_label("Verification code").fill(next_code(secret))
        page2.get_by_role("button", name="Verify").click()
        claims = finish(page2, broker, client, rp, auth)
    assert claims["acr"] == ACR_MFA and claims["amr"] == ["pwd", "otp", "mfa"]


def test_recovery_code_instead_of_the_app(browser: Any, page: Any, broker: Broker, client: Client,
                                          rp: RelyingParty) -> None:
    email = unique_email("recovery")
    add_user(broker, email)
    _, codes = enrol_from_security_page(page, broker, email)

    with another_browser(browser, broker, client, email) as (page2, auth):
        page2.get_by_role("link", name="Use a recovery code").click()
        page2.get_by_label("Recovery code").fill(codes[0].upper())
        page2.get_by_role("button", name="Verify").click()
        claims = finish(page2, broker, client, rp, auth)
    assert claims["acr"] == ACR_MFA and "otp" in claims["amr"]

    # The same code does not work twice.
    third = browser.new_context(locale="en-US")
    try:
        page3 = third.new_page()
        page3.goto(authorization(broker, client).url)
        sign_in(page3, email)
        page3.get_by_role("link", name="Use a recovery code").click()
        page3.get_by_label("Recovery code").fill(codes[0])
        page3.get_by_role("button", name="Verify").click()
        expect(page3.get_by_role("alert")).to_have_text("That recovery code is not right or was already used.")
    finally:
        third.close()


def test_a_client_that_requires_mfa_sets_it_up_inside_its_authorization(page: Any, broker: Broker,
                                                                       rp: RelyingParty) -> None:
    strict = add_client(broker, rp, "strict-mfa", "--name", "Bank", "--mfa", "required")
    email = unique_email("required")
    add_user(broker, email)
    auth = authorization(broker, strict)
    page.goto(auth.url)
    sign_in(page, email)
    expect(page.get_by_role("heading", name="Set up two-step verification")).to_be_visible()
    expect(page.get_by_text("Bank")).to_be_visible()
    set_up_app(page)
    page.get_by_role("link", name="Continue").click()
    claims = finish(page, broker, strict, rp, auth)
    assert claims["acr"] == ACR_MFA and claims["amr"] == ["pwd", "otp", "mfa"]


def test_step_up_with_acr_values(browser: Any, page: Any, broker: Broker, rp: RelyingParty) -> None:
    relaxed = add_client(broker, rp, "relaxed-mfa", "--name", "Notes", "--mfa", "off")
    email = unique_email("stepup")
    add_user(broker, email)
    secret, _ = enrol_from_security_page(page, broker, email)

    # This client does not ask for a second step.
    with another_browser(browser, broker, relaxed, email) as (page2, auth):
        claims = finish(page2, broker, relaxed, rp, auth)
        assert claims["amr"] == ["pwd"]

        auth = authorization(broker, relaxed, acr_values=ACR_MFA)
        page2.goto(auth.url)  # the same session: no password, only the second step
        expect(page2.get_by_role("heading", name="Two-step verification")).to_be_visible()
        page2.get_by_label("Verification code").fill(next_code(secret))
        page2.get_by_role("button", name="Verify").click()
        claims = finish(page2, broker, relaxed, rp, auth)
    assert claims["acr"] == ACR_MFA and claims["amr"] == ["pwd", "otp", "mfa"]
