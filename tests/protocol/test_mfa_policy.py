"""When the second step is asked (global and per-client policy, acr_values step-up, max_age,
prompt=none, remembered devices) and the rule that keeps a factor or recovery path when MFA is
required - over HTTP, on both stores."""

from __future__ import annotations

import pytest
from mfa_helpers import (
    authorize,
    code_at,
    confirm_enrolment,
    consent_if_asked,
    enrol_totp,
    events,
    factors_of,
    follow,
    hidden,
    login_page,
    redeem,
    sign_in,
    start_enrolment,
    submit_code,
    totp_secret,
)
from sqlalchemy import delete
from support import ISSUER

from idbroker import audit
from idbroker.oauth2 import constants as c
from idbroker.store.models import RecoveryCode


@pytest.fixture
def policy():
    return "off"


@pytest.fixture
def settings_overrides(policy):
    return {"mfa_policy": policy}


@pytest.fixture
def enrolled(enrolled):
    """Here only the authenticator app's secret."""
    return enrolled[0]


def signed_out(http):
    http.cookies.delete("idbroker_session")


# -- step-up and freshness -----------------------------------------------------------------------
def test_step_up_with_acr_values_on_a_password_session(http, provider, client, user, enrolled, clock):
    # Policy off: a password is enough for a plain request...
    page, verifier = authorize(http, client)
    landing = consent_if_asked(http, login_page(http, page))
    claims = redeem(http, provider, client, landing, verifier)
    assert claims["acr"] == c.ACR_PASSWORD and claims["amr"] == ["pwd"]
    # ...and asking for MFA steps the same session up, without a new password.
    page, verifier = authorize(http, client, acr_values=c.ACR_MFA)
    assert page.status_code == 200 and 'action="/mfa"' in page.text
    assert 'autocomplete="current-password"' not in page.text
    clock.step()
    landing = consent_if_asked(http, follow(http, submit_code(http, page, code_at(enrolled, clock()))))
    claims = redeem(http, provider, client, landing, verifier)
    assert claims["acr"] == c.ACR_MFA
    assert claims["amr"] == ["pwd", "otp", "mfa"]


def test_max_age_zero_asks_for_the_password_and_the_second_factor_again(http, provider, client, user, enrolled,
                                                                       clock):
    page, _ = authorize(http, client, acr_values=c.ACR_MFA)
    page = login_page(http, page)
    clock.step()
    consent_if_asked(http, follow(http, submit_code(http, page, code_at(enrolled, clock()))))
    page, verifier = authorize(http, client, max_age="0", acr_values=c.ACR_MFA)
    assert 'autocomplete="current-password"' in page.text
    page = login_page(http, page)
    assert 'action="/mfa"' in page.text
    clock.step()
    landing = consent_if_asked(http, follow(http, submit_code(http, page, code_at(enrolled, clock()))))
    claims = redeem(http, provider, client, landing, verifier)
    assert claims["acr"] == c.ACR_MFA and claims["amr"] == ["pwd", "otp", "mfa"]


def test_step_up_for_a_user_without_factors_sets_one_up(http, provider, client, user, clock):
    page, verifier = authorize(http, client, acr_values=c.ACR_MFA)
    page = login_page(http, page)
    assert "Set up two-step verification" in page.text
    setup = start_enrolment(http, "totp", interaction=hidden(page.text, "interaction"), page=page)
    done = confirm_enrolment(http, setup, code_at(totp_secret(setup), clock()))
    assert done.status_code == 200
    landing = consent_if_asked(http, follow(http, http.get(hidden_link(done.text))))
    assert redeem(http, provider, client, landing, verifier)["acr"] == c.ACR_MFA


def hidden_link(page_html):
    import html
    import re

    return html.unescape(re.search(r'<a class="button" href="([^"]+)" id="continue">', page_html).group(1))


@pytest.mark.parametrize("policy", ["optional"])
def test_prompt_none_cannot_ask_for_a_second_factor(http, client, user, enrolled, clock):
    page, _ = authorize(http, client)
    page = login_page(http, page)
    assert 'action="/mfa"' in page.text
    # Signed in with the password only; the second step is still to do.
    r = http.get("/oauth2/authorize", params={
        "client_id": client.client_id, "redirect_uri": client.redirect_uri, "response_type": "code",
        "scope": "openid", "state": "s", "prompt": "none",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"})
    assert r.status_code == 303
    assert "error=interaction_required" in r.headers["location"]


# -- required: set up during sign-in -------------------------------------------------------------
@pytest.mark.parametrize("policy", ["required"])
def test_required_policy_sets_a_factor_up_inside_the_authorization(http, provider, client, user, clock):
    page, verifier = authorize(http, client)
    page = login_page(http, page)
    assert page.status_code == 200 and "Set up two-step verification" in page.text
    interaction = hidden(page.text, "interaction")
    assert interaction
    # An invalid phone number is refused before anything is sent or stored.
    bad = start_enrolment(http, "sms", interaction=interaction, page=page, phone="12345")
    assert bad.status_code == 400 and "international format" in bad.text
    assert factors_of(provider, user.id) == []
    setup = start_enrolment(http, "totp", interaction=interaction, page=page)
    assert hidden(setup.text, "interaction") == interaction
    done = confirm_enrolment(http, setup, code_at(totp_secret(setup), clock()))
    assert "Save your recovery codes" in done.text
    landing = consent_if_asked(http, follow(http, http.get(hidden_link(done.text))))
    claims = redeem(http, provider, client, landing, verifier)
    assert claims["acr"] == c.ACR_MFA and claims["amr"] == ["pwd", "otp", "mfa"]
    assert audit.MFA_ENROLLED in events(provider, user.id)


@pytest.mark.parametrize("policy", ["required"])
def test_required_policy_on_a_direct_sign_in(http, user, clock):
    r = sign_in(http, next_path="/account")
    assert r.headers["location"] == ISSUER + "/mfa?next=%2Faccount"
    page = http.get(r.headers["location"])
    assert "Set up two-step verification" in page.text
    setup = start_enrolment(http, "totp", page=page, next_path="/account")
    done = confirm_enrolment(http, setup, code_at(totp_secret(setup), clock()))
    assert hidden_link(done.text) == ISSUER + "/account"


@pytest.mark.parametrize("policy", ["off"])
def test_per_client_policy(http, provider, register, user, clock):
    strict = register("strict", mfa_policy="required")
    relaxed = register("relaxed")
    page, _ = authorize(http, relaxed)
    landing = consent_if_asked(http, login_page(http, page))
    assert landing.headers["location"].startswith(relaxed.redirect_uri)
    page, verifier = authorize(http, strict)
    assert "Set up two-step verification" in page.text  # the same session, asked by this client only
    setup = start_enrolment(http, "totp", interaction=hidden(page.text, "interaction"), page=page)
    done = confirm_enrolment(http, setup, code_at(totp_secret(setup), clock()))
    landing = consent_if_asked(http, follow(http, http.get(hidden_link(done.text))))
    assert redeem(http, provider, strict, landing, verifier)["acr"] == c.ACR_MFA


# -- remembered devices ---------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["optional"])
def test_a_remembered_device_skips_the_second_step_but_not_a_step_up(http, provider, client, user, enrolled, clock):
    page, _ = authorize(http, client)
    page = login_page(http, page)
    assert "Don&#39;t ask again on this device for 30 days" in page.text
    clock.step()
    r = submit_code(http, page, code_at(enrolled, clock()), remember=True)
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("idbroker_device="))
    attrs = [a.strip().lower() for a in cookie.split(";")]
    assert "httponly" in attrs and "samesite=lax" in attrs and "path=/" in attrs
    assert f"max-age={30 * 86400}" in attrs and "secure" not in attrs  # http issuer; https sets Secure
    consent_if_asked(http, follow(http, r))
    assert len(provider.mfa.devices(user.id)) == 1

    signed_out(http)
    page, verifier = authorize(http, client)
    landing = login_page(http, page)  # straight back: the device is remembered
    claims = redeem(http, provider, client, landing, verifier)
    assert claims["amr"] == ["pwd"] and claims["acr"] == c.ACR_PASSWORD

    page, _ = authorize(http, client, max_age="0")
    page = login_page(http, page)  # max_age asks for a fresh authentication: both steps again
    assert 'action="/mfa"' in page.text

    page, _ = authorize(http, client, acr_values=c.ACR_MFA)
    assert 'action="/mfa"' in page.text  # an explicit step-up is never skipped
    clock.step()
    consent_if_asked(http, follow(http, submit_code(http, page, code_at(enrolled, clock()))))

    # Forgetting the device on the security page brings the second step back.
    security = http.get("/account/security")
    assert security.status_code == 200 and "Remembered devices" in security.text
    from mfa_helpers import csrf

    device = hidden(security.text, "device")
    r = http.post("/account/security/devices/forget", data={"csrf_token": csrf(security.text), "device": device})
    assert r.status_code == 303 and provider.mfa.devices(user.id) == []
    signed_out(http)
    page, _ = authorize(http, client)
    assert 'action="/mfa"' in login_page(http, page).text


# -- removing factors ------------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["required"])
def test_the_last_factor_stays_under_a_required_policy_without_recovery_codes(http, provider, user, clock):
    from mfa_helpers import csrf

    r = sign_in(http)
    page = http.get(r.headers["location"])
    setup = start_enrolment(http, "totp", page=page)
    confirm_enrolment(http, setup, code_at(totp_secret(setup), clock()))
    [factor] = factors_of(provider, user.id)
    with provider.db.session() as s:
        s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    page = http.get("/account/security")
    r = http.post("/account/security/remove", data={"csrf_token": csrf(page.text), "factor": factor.id})
    assert r.status_code == 409 and "This is your last sign-in method" in r.text
    assert len(factors_of(provider, user.id)) == 1
    # With recovery codes there is a way back in: removing it is allowed.
    r = http.post("/account/security/recovery-codes", data={"csrf_token": csrf(page.text)})
    assert r.status_code == 200 and provider.mfa.recovery_codes_left(user.id) == 10
    r = http.post("/account/security/remove", data={"csrf_token": csrf(page.text), "factor": factor.id})
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/account/security?done=removed"
    assert factors_of(provider, user.id) == []
    assert audit.MFA_REMOVED in events(provider, user.id)


@pytest.mark.parametrize("policy", ["optional"])
def test_factors_are_renamed_and_removed_by_their_owner_only(http, app, provider, user, clock):
    from mfa_helpers import csrf
    from starlette.testclient import TestClient

    sign_in(http)
    enrol_totp(http, clock)
    [factor] = factors_of(provider, user.id)
    page = http.get("/account/security")
    r = http.post("/account/security/rename", data={"csrf_token": csrf(page.text), "factor": factor.id,
                                                    "name": "Pixel"})
    assert r.status_code == 303
    assert "Pixel" in http.get("/account/security").text
    r = http.post("/account/security/rename", data={"csrf_token": csrf(page.text), "factor": factor.id,
                                                    "name": "x" * 65})
    assert r.status_code == 400
    # Someone else, signed in with their own account, cannot touch it.
    provider.users.create("mallory@example.com", "mallory's long password", email_verified=True)
    with TestClient(app, base_url=ISSUER, follow_redirects=False) as other:
        sign_in(other, "mallory@example.com", "mallory's long password")
        theirs = other.get("/account/security")
        r = other.post("/account/security/remove", data={"csrf_token": csrf(theirs.text), "factor": factor.id})
        assert r.status_code == 303
        other.post("/account/security/rename", data={"csrf_token": csrf(theirs.text), "factor": factor.id,
                                                     "name": "owned"})
    [still] = factors_of(provider, user.id)
    assert still.name == "Pixel"
    # Forged forms do nothing.
    assert http.post("/account/security/remove", data={"csrf_token": "x", "factor": factor.id}).status_code == 400
    r = http.post("/account/security/remove", data={"csrf_token": csrf(page.text), "factor": factor.id})
    assert r.status_code == 303 and factors_of(provider, user.id) == []
