"""Passkeys in Chromium with its virtual authenticator (DevTools WebAuthn domain: a CTAP2
platform authenticator with resident keys and user verification): setting one up from the
security page, passwordless sign-in from the login page - by the browser's autofill of the
email field (conditional mediation) and by the button - landing on the client's redirect URI
with a code, and the passkey as the second step after a password.

WebAuthn needs a secure context and a domain as RP id (an IP address is refused), so this
broker's issuer is http://localhost:<port>: Chromium treats localhost as secure and resolves it
to loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from browser_helpers import (
    Broker,
    Client,
    MailSink,
    RelyingParty,
    add_client,
    add_user,
    authorization,
    make_broker,
    redeem,
    running,
    unique_email,
)
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def passkey_broker(browser: Any, mail: MailSink, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = make_broker(tmp_path_factory.mktemp("passkey-broker"), mail)
    b.issuer = f"http://localhost:{b.port}"
    b.env["IDBROKER_ISSUER"] = b.issuer
    with running(b):
        yield b


@pytest.fixture(scope="module")
def app_client(passkey_broker: Broker, rp: RelyingParty) -> Client:
    return add_client(passkey_broker, rp, "keys", "--name", "Key Ring", "--first-party")


class Authenticator:
    """Chromium's virtual authenticator in one page (its credentials live as long as the page)."""

    def __init__(self, context: Any, page: Any):
        self.cdp = context.new_cdp_session(page)
        self.cdp.send("WebAuthn.enable", {"enableUI": False})
        self.id = self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2", "transport": "internal", "hasResidentKey": True, "hasUserVerification": True,
            "isUserVerified": True, "automaticPresenceSimulation": True}})["authenticatorId"]

    def credentials(self) -> list[dict[str, Any]]:
        return self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.id})["credentials"]


def sign_in_with_password(page: Any, email: str) -> None:
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill("correct horse battery staple")
    page.get_by_role("button", name="Sign in", exact=True).click()


def add_passkey(page: Any, broker: Broker, authenticator: Authenticator, email: str, name: str) -> None:
    """Signs in with the password and sets a passkey up from the security page."""
    page.goto(broker.issuer + "/login")
    sign_in_with_password(page, email)
    expect(page.get_by_role("heading", name="Your apps")).to_be_visible()
    page.goto(broker.issuer + "/account/security")
    expect(page.get_by_role("heading", name="Sign-in security")).to_be_visible()
    page.get_by_role("button", name="Use a passkey or security key").click()
    expect(page.get_by_role("heading", name="Passkey or security key")).to_be_visible()
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create a passkey").click()
    expect(page.get_by_role("heading", name="Two-step verification is on")).to_be_visible()
    [credential] = authenticator.credentials()
    assert credential["isResidentCredential"] is True
    page.get_by_role("link", name="Continue").click()
    expect(page.locator("#factors > li[data-kind=webauthn]").filter(has_text=name)).to_be_visible()


def signed_out(context: Any) -> None:
    context.clear_cookies()


def without_autofill(context: Any) -> None:
    """A browser that has no passkey autofill (conditional mediation): Chromium's virtual
    authenticator would otherwise answer the login page's autofill request at once."""
    context.add_init_script("if (window.PublicKeyCredential) {"
                            " PublicKeyCredential.isConditionalMediationAvailable ="
                            " () => Promise.resolve(false); }")


def test_passkey_from_the_security_page_then_passwordless_and_second_step(
        context: Any, page: Any, passkey_broker: Broker, app_client: Client, rp: RelyingParty) -> None:
    broker = passkey_broker
    email = unique_email("ada")
    add_user(broker, email, given_name="Ada", family_name="Lovelace")
    without_autofill(context)
    authenticator = Authenticator(context, page)
    add_passkey(page, broker, authenticator, email, "This laptop")

    # Passwordless, with the button.
    signed_out(context)
    auth = authorization(broker, app_client)
    page.goto(auth.url)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_label("Email", exact=True)).to_have_attribute("autocomplete", "username webauthn")
    page.get_by_role("button", name="Sign in with a passkey").click()
    page.wait_for_url(rp.redirect_uri + "?**")
    tokens = redeem(broker, app_client, auth, rp.received(auth.state))
    assert tokens["id_token"]["amr"] == ["hwk", "mfa"]
    assert tokens["id_token"]["acr"] == "urn:idbroker:acr:mfa"
    assert tokens["userinfo"]["email"] == email

    # The password and then the passkey as the second step.
    signed_out(context)
    auth = authorization(broker, app_client)
    page.goto(auth.url)
    sign_in_with_password(page, email)
    expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    page.get_by_role("button", name="Use a passkey").click()
    page.wait_for_url(rp.redirect_uri + "?**")
    tokens = redeem(broker, app_client, auth, rp.received(auth.state))
    assert set(tokens["id_token"]["amr"]) == {"pwd", "hwk", "mfa"}
    [credential] = authenticator.credentials()
    assert credential["signCount"] >= 2


def test_passwordless_by_autofill(context: Any, page: Any, passkey_broker: Broker, app_client: Client,
                                  rp: RelyingParty) -> None:
    broker = passkey_broker
    email = unique_email("grace")
    add_user(broker, email)
    authenticator = Authenticator(context, page)
    add_passkey(page, broker, authenticator, email, "Pixel")

    signed_out(context)
    auth = authorization(broker, app_client)
    page.goto(auth.url)
    # The page asks for passkeys with conditional mediation as soon as it loads: the browser
    # offers them in the email field's autofill, and Chromium's virtual authenticator (automatic
    # presence) picks this one, without any button.
    page.wait_for_url(rp.redirect_uri + "?**")
    tokens = redeem(broker, app_client, auth, rp.received(auth.state))
    assert tokens["id_token"]["amr"] == ["hwk", "mfa"]
    assert tokens["userinfo"]["email"] == email


def test_no_passkey_here(context: Any, page: Any, passkey_broker: Broker) -> None:
    """A passkey the broker does not know: the error is shown and the password form still works."""
    broker = passkey_broker
    without_autofill(context)
    Authenticator(context, page)
    page.goto(broker.issuer + "/login")
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.get_by_role("alert")).to_have_text(re.compile("cancelled or timed out|not registered"))
    expect(page).to_have_url(re.compile(re.escape(broker.issuer) + "/login"))
