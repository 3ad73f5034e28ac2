"""Authenticator apps over HTTP, on both stores: setting one up from the security page, signing in
with its codes (inside an authorization request and without), the ±1 step window, each code
used once, wrong codes and their lock, and what the ID token then says (acr, amr)."""

from __future__ import annotations

from mfa_helpers import (
    CODES_RE,
    authorize,
    code_at,
    confirm_enrolment,
    consent_if_asked,
    events,
    factors_of,
    follow,
    login_page,
    redeem,
    sign_in,
    start_enrolment,
    submit_code,
    totp_secret,
)
from starlette.testclient import TestClient
from support import ISSUER

from idbroker import audit
from idbroker.oauth2 import constants as c


def other_browser(app):
    return TestClient(app, base_url=ISSUER, follow_redirects=False)


# -- setting it up -----------------------------------------------------------------------------------
def test_setting_up_an_authenticator_app(http, user, provider, clock):
    sign_in(http)
    page = http.get("/account/security")
    assert page.status_code == 200 and "Two-step verification is off" in page.text
    page = start_enrolment(http, "totp")
    assert page.status_code == 200
    secret = totp_secret(page)
    assert len(secret) == 32
    assert 'src="data:image/svg+xml' in page.text              # the QR code, allowed by img-src data:
    assert 'autocomplete="one-time-code"' in page.text and 'inputmode="numeric"' in page.text
    # Stored encrypted, unconfirmed until a first code.
    [pending] = factors_of(provider, user.id)
    assert pending.confirmed_at is None and pending.kind == "totp"
    assert secret not in (pending.secret or "") and pending.secret.count(".") == 4  # compact JWE
    assert provider.mfa.unseal(pending.secret) == secret
    assert not provider.mfa.enrolled(user.id)

    wrong = confirm_enrolment(http, page, "000000" if code_at(secret, clock()) != "000000" else "111111")
    assert wrong.status_code == 400 and "That code is not right" in wrong.text
    assert totp_secret(wrong) == secret  # the same set-up goes on

    done = confirm_enrolment(http, wrong, code_at(secret, clock()), name="My phone")
    assert done.status_code == 200
    codes = CODES_RE.findall(done.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    [factor] = factors_of(provider, user.id)
    assert factor.confirmed_at is not None and factor.name == "My phone"
    assert factor.last_counter == int(clock() // 30)
    assert audit.MFA_ENROLLED in events(provider, user.id)
    assert provider.mfa.recovery_codes_left(user.id) == 10
    # Setting it up proved possession: this session has passed a second factor.
    page = http.get("/account/security")
    assert page.status_code == 200 and "My phone" in page.text and "Authenticator app" in page.text


def test_the_security_page_needs_a_second_factor_once_one_is_set_up(http, app, user, enrolled, clock):
    secret, _ = enrolled
    sign_in(http)  # a direct sign-in goes through /mfa too
    r = http.get("/account/security")
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/mfa?next=%2Faccount%2Fsecurity"
    page = http.get(r.headers["location"])
    assert page.status_code == 200 and "Two-step verification" in page.text
    clock.step()
    r = submit_code(http, page, code_at(secret, clock()))
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/account/security"
    assert http.get("/account/security").status_code == 200


def test_direct_sign_in_goes_through_the_second_step(http, user, enrolled, clock):
    secret, _ = enrolled
    r = sign_in(http, next_path="/account")
    assert r.headers["location"] == ISSUER + "/mfa?next=%2Faccount"
    page = http.get(r.headers["location"])
    clock.step()
    r = submit_code(http, page, code_at(secret, clock()))
    assert r.headers["location"] == ISSUER + "/account"


# -- signing in inside an authorization request ---------------------------------------------------
def test_sign_in_with_a_code_then_the_id_token_says_mfa(http, provider, client, user, enrolled, clock):
    secret, _ = enrolled
    page, verifier = authorize(http, client)
    page = login_page(http, page)
    assert page.status_code == 200 and 'action="/mfa"' in page.text, page.text
    assert 'autocomplete="one-time-code"' in page.text and 'inputmode="numeric"' in page.text
    clock.step()
    landing = consent_if_asked(http, follow(http, submit_code(http, page, code_at(secret, clock()))))
    claims = redeem(http, provider, client, landing, verifier)
    assert claims["acr"] == c.ACR_MFA
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    [factor] = factors_of(provider, user.id)
    assert factor.last_used_at is not None and factor.last_counter == int(clock() // 30)


def test_a_code_works_once(http, app, client, user, enrolled, clock):
    secret, _ = enrolled
    clock.step()
    code = code_at(secret, clock())
    page, _ = authorize(http, client)
    page = login_page(http, page)
    assert submit_code(http, page, code).status_code == 303
    with other_browser(app) as second:
        page, _ = authorize(second, client)
        page = login_page(second, page)
        again = submit_code(second, page, code)
        assert again.status_code == 400 and "That code is not right" in again.text


def test_one_step_either_side_is_accepted_but_never_an_older_step(http, app, client, user, enrolled, clock):
    secret, _ = enrolled
    clock.step(10)
    page, _ = authorize(http, client)
    page = login_page(http, page)
    # Two steps away: refused, both sides.
    for far in (clock() - 60, clock() + 60):
        r = submit_code(http, page, code_at(secret, far))
        assert r.status_code == 400, far
        page = r
    # The previous step (a slow phone): accepted.
    assert submit_code(http, page, code_at(secret, clock() - 30)).status_code == 303
    with other_browser(app) as second:
        # The next step (a fast phone): accepted; after it, the current step is older: refused.
        page, _ = authorize(second, client)
        page = login_page(second, page)
        assert submit_code(second, page, code_at(secret, clock() + 30)).status_code == 303
    with other_browser(app) as third:
        page, _ = authorize(third, client)
        page = login_page(third, page)
        r = submit_code(third, page, code_at(secret, clock()))
        assert r.status_code == 400


def test_wrong_codes_lock_verification_for_a_while(http, provider, client, user, enrolled, clock):
    secret, _ = enrolled
    page, _ = authorize(http, client)
    page = login_page(http, page)
    good = code_at(secret, clock() + 30)
    wrong = "123456" if good != "123456" else "654321"
    for _ in range(5):
        page = submit_code(http, page, wrong)
        assert page.status_code == 400
    locked = submit_code(http, page, good)
    assert locked.status_code == 429 and "Too many wrong codes" in locked.text
    assert provider.mfa.locked_for(user.id) > 0


def test_malformed_answers_are_wrong_answers(http, client, user, enrolled, clock):
    page, _ = authorize(http, client)
    page = login_page(http, page)
    for bad in ("12345", "1234567", "abcdef", "١٢٣٤٥٦", "9" * 300):
        r = submit_code(http, page, bad)
        assert r.status_code == 400, bad


def test_the_mfa_page_needs_its_csrf_token_and_the_interaction_cookie(http, app, client, user, enrolled, clock):
    secret, _ = enrolled
    page, _ = authorize(http, client)
    page = login_page(http, page)
    from mfa_helpers import verify_form

    data = verify_form(page, code_at(secret, clock() + 30))
    assert http.post("/mfa", data={**data, "csrf_token": "forged"}).status_code == 400
    with other_browser(app) as stranger:
        r = stranger.post("/mfa", data=data)
        assert r.status_code == 400  # not this browser's interaction
        assert stranger.get("/mfa", params={"interaction": data["interaction"]}).status_code == 400


def test_without_a_session_the_mfa_page_sends_to_the_login(http):
    r = http.get("/mfa")
    assert r.status_code == 303 and r.headers["location"].startswith(ISSUER + "/login?next=")
