"""A walk through every hosted page a browser can reach on the e2e broker, in any language: the
steps find their way by ids, names and form actions (never by visible text), so the same walk runs
in English, French and Japanese. At each page it calls ``check(page, name)``; the accessibility
(axe-core) and layout (width) tests are checks.

Pages: sign-in (fresh, with an error), sign-up (fresh, with errors), email verification, forgotten
password (form, sent), reset password, error page, device page, consent, account, apps dashboard,
sign-in security, sign-in providers, delete account, sign-out, two-step set-up (choices,
authenticator app, passkey, recovery codes shown) and the second step at sign-in (authenticator
code, recovery code)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

import pyotp
from browser_helpers import (
    PASSWORD,
    Broker,
    Client,
    MailSink,
    add_user,
    authorization,
    link_in,
    mail_to,
)
from playwright.sync_api import expect

Check = Callable[[Any, str], None]


def _arrive(page: Any) -> None:
    expect(page.locator("h1").first).to_be_visible()


def _submit(page: Any, form: str) -> None:
    page.locator(f"{form} button[type=submit]").last.click()
    page.wait_for_load_state()


def _sign_in(page: Any, email: str, password: str = PASSWORD) -> None:
    page.locator("#username").fill(email)
    page.locator("#password").fill(password)
    _submit(page, "form:has(#password)")


def anonymous_pages(page: Any, broker: Broker, client: Client, mail: MailSink, check: Check) -> None:
    page.goto(authorization(broker, client).url)
    _arrive(page)
    check(page, "sign-in")
    _sign_in(page, "nobody@example.org", "wrong password")
    expect(page.locator("#login-error")).to_be_visible()
    check(page, "sign-in-error")

    page.goto(broker.issuer + "/signup")
    _arrive(page)
    check(page, "sign-up")
    _submit(page, "form[action='/signup']")
    expect(page.locator("#form-error")).to_be_visible()
    check(page, "sign-up-errors")
    email = f"tour-{secrets.token_hex(4)}@example.org"
    for field, value in (("#f-email", email), ("#f-password", PASSWORD), ("#f-given_name", "Ada"),
                         ("#f-family_name", "Lovelace")):
        if page.locator(field).count():
            page.locator(field).fill(value)
    _submit(page, "form[action='/signup']")
    expect(page.locator("form[action^='/verify-email']").first).to_be_visible()
    mail_to(mail, email, 1)  # the verification message
    _arrive(page)
    check(page, "verify-email")

    page.goto(broker.issuer + "/forgot-password")
    _arrive(page)
    check(page, "forgot-password")
    page.locator("input[type=email]").fill(email)
    _submit(page, "form[action='/forgot-password']")
    _arrive(page)
    check(page, "forgot-password-sent")
    _, text = mail_to(mail, email, 2)
    page.goto(link_in(text, broker.issuer, "/reset-password"))
    _arrive(page)
    check(page, "reset-password")

    page.goto(broker.issuer + "/oauth2/authorize?client_id=nobody&response_type=code")
    _arrive(page)
    check(page, "error")
    page.goto(broker.issuer + "/device")
    _arrive(page)
    check(page, "device")


def signed_in_pages(browser_context: Any, broker: Broker, client: Client, check: Check) -> None:
    """A new user: consent, account pages, setting up two-step verification, then signing in with it
    in a second page of the same browser (after signing out)."""
    page = browser_context.new_page()
    email = f"tour-{secrets.token_hex(4)}@example.org"
    add_user(broker, email)
    page.goto(authorization(broker, client).url)
    _sign_in(page, email)
    expect(page).to_have_url(re.compile(r"/consent\?"))
    check(page, "consent")
    page.locator("button[value=allow]").click()
    page.wait_for_url(re.compile(r"/cb\?"))

    for path in ("/account", "/apps", "/account/security", "/account/identities", "/account/delete"):
        page.goto(broker.issuer + path)
        _arrive(page)
        check(page, path.strip("/").replace("/", "-"))

    # Two-step verification: the choices, a passkey's page, the authenticator app, the codes.
    page.goto(broker.issuer + "/account/security")
    if page.locator("input[name=kind][value=webauthn]").count():
        _submit(page, "form:has(input[name=kind][value=webauthn])")
        _arrive(page)
        check(page, "mfa-passkey-enrol")
        page.goto(broker.issuer + "/account/security")
    _submit(page, "form:has(input[name=kind][value=totp])")
    _arrive(page)
    check(page, "mfa-totp-enrol")
    secret = page.locator("#secret").inner_text().replace(" ", "")
    page.locator("#code").fill(pyotp.TOTP(secret).now())
    _submit(page, "form[action='/mfa/enrol']")
    expect(page.locator("#recovery-codes")).to_be_visible()
    check(page, "mfa-recovery-codes")

    page.goto(broker.issuer + "/oauth2/logout")
    _arrive(page)
    check(page, "sign-out")
    _submit(page, "form[action='/oauth2/logout']")
    _arrive(page)
    check(page, "signed-out")

    page.goto(authorization(broker, client).url)
    _sign_in(page, email)
    expect(page.locator("#code")).to_be_visible()
    check(page, "mfa-verify")
    page.locator("#code").fill("000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    _submit(page, "form:has(#code)")
    expect(page.locator("#mfa-error")).to_be_visible()
    check(page, "mfa-verify-error")
    page.locator("a[href*='factor=recovery']").click()
    _arrive(page)
    check(page, "mfa-recovery")
    page.close()
