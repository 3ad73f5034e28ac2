"""Email verification by code and by link, with real mail: attempts, resending, continuing the
authorization, and the journey keeping unverified users away from applications."""

from __future__ import annotations

from datetime import timedelta

import pytest
from lifecycle_helpers import authorize_params, code_in, last_mail, link_in, local, page_fields, signup
from sqlalchemy import select, update
from starlette.testclient import TestClient
from support import ISSUER, PASSWORD, query_of

from idbroker.accounts.one_time import VERIFY_EMAIL
from idbroker.store.models import OneTimeToken, Throttle, User


@pytest.fixture
def settings_overrides(smtp):
    return {**smtp.settings(), "resend_interval": 60}


def _verified(provider, email="bob@example.com"):
    with provider.db.session(write=False) as s:
        return s.scalar(select(User.email_verified).where(User.email == email))


def _age_tokens(provider, seconds):
    """As if every one-time token had been issued, and every rate-limited event (the resend
    interval) had happened, `seconds` earlier."""
    with provider.db.session() as s:
        for row in s.scalars(select(OneTimeToken)):
            row.created_at = row.created_at - timedelta(seconds=seconds)
        for row in s.scalars(select(Throttle)):
            for name in ("first_failure_at", "last_failure_at", "locked_until"):
                if getattr(row, name) is not None:
                    setattr(row, name, getattr(row, name) - timedelta(seconds=seconds))


def _start(http, flow, register):
    client = register()
    params, verifier = authorize_params(client)
    login = flow.authorize(**params)
    interaction = page_fields(login)["interaction"]
    return client, interaction, verifier


def test_link_verifies_in_another_browser_and_the_flow_continues_here(http, flow, register, provider, smtp, app):
    client, interaction, _ = _start(http, flow, register)
    page = signup(http, interaction)
    url = link_in(last_mail(smtp, "bob@example.com"), "/verify-email/confirm")
    with TestClient(app, base_url=ISSUER, follow_redirects=False) as phone:   # no cookies at all
        r = phone.get(local(url))
        assert r.status_code == 200, r.text
        assert "Your email address is verified" in r.text and "You can now sign in" in r.text
    assert _verified(provider)
    # Back in the first browser the waiting request goes on.
    r = http.post("/verify-email", data={**page_fields(page), "action": "verify", "code": "000000"})
    assert r.status_code == 303 and r.headers["location"].endswith(f"resume?interaction={interaction}")
    page = flow.consent(flow.follow(r))
    assert page.headers["location"].startswith(client.redirect_uri) and "code" in query_of(page.headers["location"])


def test_link_in_the_same_browser_resumes_the_authorization(http, flow, register, provider, smtp):
    client, interaction, _ = _start(http, flow, register)
    signup(http, interaction)
    url = link_in(last_mail(smtp, "bob@example.com"), "/verify-email/confirm")
    r = http.get(local(url))
    assert r.status_code == 303
    assert r.headers["location"] == f"{ISSUER}/oauth2/authorize/resume?interaction={interaction}"
    page = flow.consent(flow.follow(r))
    assert page.headers["location"].startswith(client.redirect_uri)
    # Used once; clicking again just says the address is verified, an unknown token is refused.
    again = http.get(local(url))
    assert again.status_code == 200 and "Your email address is verified" in again.text
    assert http.get("/verify-email/confirm", params={"token": "nope"}).status_code == 400
    assert http.get("/verify-email/confirm").status_code == 400
    assert http.get("/verify-email/confirm", params={"token": "x" * 10000}).status_code == 400
    assert http.get("/verify-email/confirm", params={"token": "a\x00", "interaction": "b\x00"}).status_code == 400


def test_expired_link_is_refused(http, provider, smtp):
    signup(http)
    url = link_in(last_mail(smtp, "bob@example.com"), "/verify-email/confirm")
    with provider.db.session() as s:
        s.execute(update(OneTimeToken).values(expires_at=OneTimeToken.created_at))
    r = http.get(local(url))
    assert r.status_code == 400 and "expired" in r.text
    assert not _verified(provider)


def test_five_wrong_codes_void_the_code(http, provider, smtp):
    page = signup(http)
    code = code_in(last_mail(smtp, "bob@example.com"))
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    fields = page_fields(page)
    for attempt in range(1, 6):
        r = http.post("/verify-email", data={**fields, "action": "verify", "code": wrong})
        assert r.status_code == 400
        expected = "That code is not right" if attempt < 5 else "This code can no longer be used"
        assert expected in r.text, (attempt, r.text)
    r = http.post("/verify-email", data={**fields, "action": "verify", "code": code})
    assert r.status_code == 400 and "This code can no longer be used" in r.text
    assert not _verified(provider)
    # A new code (after the resend interval) works.
    _age_tokens(provider, 61)
    r = http.post("/verify-email", data={**fields, "action": "resend"})
    assert r.status_code == 200 and "We sent a new message" in r.text
    new_code = code_in(last_mail(smtp, "bob@example.com", 2))
    r = http.post("/verify-email", data={**fields, "action": "verify", "code": new_code})
    assert r.status_code == 200 and "Your email address is verified" in r.text
    assert _verified(provider)


def test_malformed_codes_do_not_use_attempts(http, provider, smtp):
    page = signup(http)
    code = code_in(last_mail(smtp, "bob@example.com"))
    fields = page_fields(page)
    for bad in ("", "12345", "abcdef", "1234567", "１２３４５６", "9" * 10_000):
        r = http.post("/verify-email", data={**fields, "action": "verify", "code": bad})
        assert r.status_code == 400 and "Enter the 6-digit code" in r.text
    too_big = http.post("/verify-email", data={**fields, "action": "verify", "code": "9" * 100_000})
    assert too_big.status_code == 400
    with provider.db.session(write=False) as s:
        assert s.scalar(select(OneTimeToken.attempts)) == 0
    r = http.post("/verify-email", data={**fields, "action": "verify", "code": code[:3] + " " + code[3:]})
    assert r.status_code == 200 and _verified(provider)


def test_resend_is_rate_limited(http, provider, smtp):
    page = signup(http)
    first = code_in(last_mail(smtp, "bob@example.com"))
    fields = page_fields(page)
    r = http.post("/verify-email", data={**fields, "action": "resend"})
    assert r.status_code == 429
    assert "Please wait" in r.text and 55 <= int(r.headers["retry-after"]) <= 60
    assert len(smtp.wait_for("bob@example.com")) == 1
    _age_tokens(provider, 61)
    r = http.post("/verify-email", data={**fields, "action": "resend"})
    assert r.status_code == 200
    second = code_in(last_mail(smtp, "bob@example.com", 2))
    if second != first:   # the old code died with the new one (1 in a million they are equal)
        r = http.post("/verify-email", data={**fields, "action": "verify", "code": first})
        assert r.status_code == 400
    r = http.post("/verify-email", data={**fields, "action": "verify", "code": second})
    assert r.status_code == 200 and _verified(provider)


def test_unverified_user_is_sent_to_verification_not_to_the_client(http, flow, register, provider, smtp):
    provider.users.create("carol@example.com", PASSWORD, email_verified=False)
    client = register()
    params, _ = authorize_params(client)
    page = flow.login(flow.authorize(**params), "carol@example.com")
    assert page.status_code == 200 and 'autocomplete="one-time-code"' in page.text, page.text
    assert "carol@example.com" in page.text
    interaction = page_fields(page)["interaction"]
    # prompt=none never shows the page: the client learns that interaction is needed.
    none_params, _ = authorize_params(client, prompt="none")
    r = http.get("/oauth2/authorize", params=none_params)
    assert r.status_code == 303 and query_of(r.headers["location"])["error"] == "interaction_required"
    # The page mailed a fresh code for this returning user; with it the flow completes.
    code = code_in(last_mail(smtp, "carol@example.com"))
    r = http.post("/verify-email", data={**page_fields(page), "action": "verify", "code": code})
    assert r.headers["location"].endswith(f"resume?interaction={interaction}")
    done = flow.consent(flow.follow(r))
    assert done.status_code == 303 and "code" in query_of(done.headers["location"])
    # Reloading the page does not mail again within the resend interval.
    assert len(smtp.wait_for("carol@example.com")) == 1


def test_verification_page_needs_a_session_and_a_valid_form(http, provider, smtp):
    r = http.get("/verify-email")
    assert r.status_code == 303 and r.headers["location"] == f"{ISSUER}/login"
    assert http.get("/verify-email", params={"interaction": "gone"}).status_code == 400
    page = signup(http)
    code = code_in(last_mail(smtp, "bob@example.com"))
    fields = page_fields(page)
    r = http.post("/verify-email", data={**fields, "csrf_token": "", "action": "verify", "code": code})
    assert r.status_code == 400 and "Your form expired" in r.text
    r = http.post("/verify-email", data={"action": "verify", "code": code})
    assert r.status_code == 400
    assert not _verified(provider)
    assert http.post("/verify-email", data={f"k{i}": "v" for i in range(100)}).status_code == 400
    # A verified user visiting the page is simply told so.
    http.post("/verify-email", data={**fields, "action": "verify", "code": code})
    r = http.get("/verify-email")
    assert r.status_code == 200 and "Your email address is verified" in r.text


@pytest.mark.parametrize("settings_overrides", [{"require_email_verification": False}])
def test_verification_can_be_optional(http, flow, register, provider):
    provider.users.create("carol@example.com", PASSWORD, email_verified=False)
    client = register(first_party=True)
    params, _ = authorize_params(client)
    r = flow.login(flow.authorize(**params), "carol@example.com")
    assert r.status_code == 303 and "code" in query_of(r.headers["location"])


def test_code_tokens_are_per_user(http, provider, smtp):
    """Bob's code does nothing for another signed-in user."""
    signup(http)
    bob_code = code_in(last_mail(smtp, "bob@example.com"))
    page = signup(http, email="dan@example.com")
    r = http.post("/verify-email", data={**page_fields(page), "action": "verify", "code": bob_code})
    assert r.status_code == 400
    assert not _verified(provider, "dan@example.com") and not _verified(provider, "bob@example.com")
    with provider.db.session(write=False) as s:
        assert s.scalar(select(OneTimeToken.purpose).limit(1)) == VERIFY_EMAIL


def test_link_opened_where_someone_else_is_signed_in_does_not_resume(http, flow, register, provider, smtp):
    _, interaction, _ = _start(http, flow, register)
    signup(http, interaction)
    url = link_in(last_mail(smtp, "bob@example.com"), "/verify-email/confirm")
    signup(http, email="dan@example.com")           # this browser now belongs to Dan
    r = http.get(local(url))
    assert r.status_code == 200 and "You can now sign in" in r.text
    assert f'href="/login?interaction={interaction}"' in r.text
    assert _verified(provider, "bob@example.com") and not _verified(provider, "dan@example.com")


# -- the pending sign-up signs in only the browser that created the account ----------------------------
def _signed_in(browser):
    return browser.get("/account").status_code == 200


def test_signing_up_with_someone_elses_address_opens_nothing(http, app, provider, smtp):
    """Eve signs up with Alice's address before Alice does (the account is new, so Eve's browser is
    bound to it). Alice takes her address back with a password reset: Eve's browser then gets
    nothing from the address being verified - not by a code, not by the link."""
    eve = signup(http, email="alice@example.com", password="eve's own long password")
    code = code_in(last_mail(smtp, "alice@example.com"))
    with TestClient(app, base_url=ISSUER, follow_redirects=False) as alice:
        page = alice.get("/forgot-password")
        alice.post("/forgot-password", data={**page_fields(page), "email": "alice@example.com"})
        reset = local(link_in(last_mail(smtp, "alice@example.com", 2), "/reset-password"))
        form = alice.get(reset)
        done = alice.post("/reset-password", data={**page_fields(form), "token": query_of(reset)["token"],
                                                   "password": PASSWORD, "password_confirmation": PASSWORD})
        assert done.status_code == 200
    assert _verified(provider, "alice@example.com")
    for attempt in (code, "000000"):
        r = http.post("/verify-email", data={**page_fields(eve), "action": "verify", "code": attempt})
        assert r.status_code == 400 and not _signed_in(http)
    assert provider.users.authenticate("alice@example.com", "eve's own long password") is None


def test_a_registered_address_never_signs_the_pending_browser_in(http, provider, smtp, user):
    """Signing up with an address that has an account (verified, so a bound browser would be let
    in without a code) binds the browser to nothing: whatever it sends, it is not signed in."""
    page = signup(http, email="alice@example.com", password="not alice's password")
    for code in ("000000", "123456"):
        r = http.post("/verify-email", data={**page_fields(page), "action": "verify", "code": code})
        assert r.status_code == 400 and not _signed_in(http)
    assert http.get("/verify-email").status_code == 200 and not _signed_in(http)


def test_a_tampered_or_foreign_pending_cookie_is_ignored(http, app, provider, smtp):
    signup(http)
    sealed = http.cookies.get("idbroker_signup")
    assert sealed
    with TestClient(app, base_url=ISSUER, follow_redirects=False) as other:
        for value in (sealed[:-2] + ("AA" if not sealed.endswith("AA") else "BB"), "garbage", "x" * 5000):
            other.cookies.set("idbroker_signup", value, path="/verify-email")
            r = other.get("/verify-email")
            assert r.status_code == 303 and r.headers["location"] == f"{ISSUER}/login"
    # The cookie is not a session: copied elsewhere it shows the page, and signs in only with the code.
    code = code_in(last_mail(smtp, "bob@example.com"))
    with TestClient(app, base_url=ISSUER, follow_redirects=False) as copy:
        copy.cookies.set("idbroker_signup", sealed, path="/verify-email")
        page = copy.get("/verify-email")
        assert page.status_code == 200 and not _signed_in(copy)
        r = copy.post("/verify-email", data={**page_fields(page), "action": "verify", "code": code})
        assert r.status_code == 200 and _signed_in(copy)
