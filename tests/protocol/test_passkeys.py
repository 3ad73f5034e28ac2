"""Passkeys and security keys (WebAuthn) over HTTP, on both stores, with a software authenticator
that makes real attestations and signatures: setting several up from the security page and
during a sign-in that requires a second factor, using one as the second factor after a password,
passwordless sign-in from the login page (inside an authorization request, ending in a code, and
without one), what the ID token then says, renaming and removing, and every refusal: wrong
origin, wrong RP id, a reused or foreign challenge, a signature counter going back, no user
verification for passwordless, a credential of someone else, a missing CSRF token."""

from __future__ import annotations

import re
from typing import Any

import pytest
from mfa_helpers import (
    CODES_RE,
    authorize,
    consent_if_asked,
    csrf,
    events,
    factors_of,
    follow,
    hidden,
    login_page,
    redeem,
    sign_in,
    start_enrolment,
)
from sqlalchemy import select
from starlette.testclient import TestClient
from support import ISSUER, PASSWORD, form_fields, make_settings
from webauthn_helpers import SoftAuthenticator, page_options, unb64url

from idbroker import audit
from idbroker.app import create_app
from idbroker.mfa import webauthn
from idbroker.oauth2 import constants as c
from idbroker.provider import Provider
from idbroker.settings import SettingsError
from idbroker.store.models import BrowserSession, MfaFactor

ORIGIN = ISSUER  # http://127.0.0.1:8000: the RP id is its host


@pytest.fixture
def device() -> SoftAuthenticator:
    return SoftAuthenticator(ORIGIN)


def enrol_passkey(http: Any, device: SoftAuthenticator, name: str = "", *, page: Any = None,
                  interaction: str = "", **bend: Any) -> Any:
    """Sets up a passkey through /mfa/enrol (from `page`, or the security page); returns the answer."""
    started = start_enrolment(http, "webauthn", interaction=interaction, page=page)
    assert started.status_code == 200 and 'data-webauthn="register"' in started.text, started.text
    answer = device.create(page_options(started.text), **bend)
    return http.post("/mfa/enrol", data={
        "csrf_token": csrf(started.text), "action": "confirm", "factor": hidden(started.text, "factor"),
        "interaction": hidden(started.text, "interaction"), "next": hidden(started.text, "next"),
        "webauthn_token": hidden(started.text, "webauthn_token"), "credential": _json(answer), "name": name})


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


@pytest.fixture
def enrolled(http, user, provider, device):
    """Alice with one passkey; the test's browser is signed out again."""
    sign_in(http)
    done = enrol_passkey(http, device, "Laptop")
    assert done.status_code == 200 and "Two-step verification is on" in done.text, done.text
    http.cookies.clear()
    provider.sessions.end_all_for_user(user.id)
    return device


def passkey_options(http: Any, page_html: str) -> Any:
    return http.post("/login/passkey/options", json={}, headers={"X-CSRF-Token": csrf(page_html)})


def passkey_login(http: Any, page_html: str, device: SoftAuthenticator, *, interaction: str = "",
                  next_path: str = "", **bend: Any) -> Any:
    """The login page's passkey button: options, the authenticator, verification."""
    options = passkey_options(http, page_html)
    assert options.status_code == 200, options.text
    answer = device.get(options.json()["publicKey"], **bend)
    return http.post("/login/passkey", json={"credential": answer, "interaction": interaction, "next": next_path},
                     headers={"X-CSRF-Token": csrf(page_html)})


def sessions_of(provider: Any, user_id: int) -> list[BrowserSession]:
    with provider.db.session(write=False) as s:
        return list(s.scalars(select(BrowserSession).where(BrowserSession.user_id == user_id,
                                                           BrowserSession.ended_at.is_(None))))


# -- setting them up ---------------------------------------------------------------------------------
def test_setting_up_passkeys_from_the_security_page(http, user, provider, device):
    sign_in(http)
    done = enrol_passkey(http, device, "Work laptop")
    assert done.status_code == 200 and "Two-step verification is on" in done.text, done.text
    assert "Passkey or security key was added" in done.text
    assert CODES_RE.findall(done.text)  # the first factor comes with recovery codes
    [row] = factors_of(provider, user.id)
    assert row.kind == "webauthn" and row.name == "Work laptop" and row.confirmed_at is not None
    cred = device.credentials[0]
    assert unb64url(row.credential_id) == cred.credential_id
    assert row.data["transports"] == ["internal", "hybrid"] and row.data["discoverable"] is True
    assert row.data["aaguid"] == "00000000-0000-0000-0000-000000000000"
    assert row.data["backup_eligible"] is False and row.data["user_verified"] is True
    assert row.last_counter == 0 and row.secret is None
    assert audit.MFA_ENROLLED in events(provider, user.id)
    # Setting it up counts as passing it in this session.
    [session] = sessions_of(provider, user.id)
    assert set(session.amr) == {"pwd", "hwk", "mfa"} and session.acr == c.ACR_MFA

    # A second one: the options exclude the first, both are listed with their names.
    security = http.get("/account/security")
    assert security.status_code == 200
    started = start_enrolment(http, "webauthn", page=security)
    options = page_options(started.text)
    assert options["rp"] == {"name": "idbroker", "id": "127.0.0.1"}
    assert unb64url(options["user"]["id"]) == user.sub.encode()  # the random subject, not the address
    assert options["user"]["name"] == "alice@example.com"
    assert [d["id"] for d in options["excludeCredentials"]] == [row.credential_id]
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["attestation"] == "none" and options["extensions"] == {"credProps": True}
    key = SoftAuthenticator(ORIGIN)
    second = enrol_passkey(http, key, "YubiKey")
    assert second.status_code == 200, second.text
    page = http.get("/account/security")
    assert "Work laptop" in page.text and "YubiKey" in page.text
    assert len([f for f in factors_of(provider, user.id) if f.confirmed_at]) == 2


def test_the_same_credential_cannot_be_registered_twice(http, user, provider, device):
    sign_in(http)
    assert enrol_passkey(http, device).status_code == 200
    again = SoftAuthenticator(ORIGIN)  # an authenticator that ignores the exclusion list
    r = enrol_passkey(http, again, credential_id=device.credentials[0].credential_id)
    assert r.status_code == 400 and "already registered" in r.text
    assert len([f for f in factors_of(provider, user.id) if f.confirmed_at]) == 1


@pytest.mark.parametrize("bend, reason", [
    ({"origin": "https://evil.example"}, "origin"),
    ({"rp_id": "evil.example"}, "rp id"),
    ({"challenge": "AAAA"}, "challenge"),
])
def test_a_bent_registration_is_refused(http, user, provider, device, bend, reason):
    sign_in(http)
    r = enrol_passkey(http, device, **bend)
    assert r.status_code == 400, reason
    assert "could not be verified" in r.text
    assert 'data-webauthn="register"' in r.text  # the same set-up goes on with a fresh challenge
    assert not [f for f in factors_of(provider, user.id) if f.confirmed_at]


def test_a_registration_challenge_works_once(http, user, provider, device):
    sign_in(http)
    started = start_enrolment(http, "webauthn")
    answer = device.create(page_options(started.text))
    data = {"csrf_token": csrf(started.text), "action": "confirm", "factor": hidden(started.text, "factor"),
            "interaction": "", "next": hidden(started.text, "next"),
            "webauthn_token": hidden(started.text, "webauthn_token"), "credential": _json(answer)}
    assert http.post("/mfa/enrol", data=data).status_code == 200
    again = http.post("/mfa/enrol", data=data)
    assert again.status_code == 400  # the pending factor is confirmed: nothing to confirm
    assert len(factors_of(provider, user.id)) == 1


def test_a_challenge_token_is_signed_and_bound(provider, user, tmp_path):
    passkeys = webauthn.Passkeys(provider.db, provider.settings)
    factor = provider.mfa.add_pending(user.id, "webauthn")
    _, token = passkeys.registration_options(user, factor.id)
    ceremony = passkeys.ceremony(token, webauthn.REGISTER)
    assert ceremony.user_id == user.id and ceremony.factor_id == factor.id
    for bad, purpose in [(token, webauthn.LOGIN), (token[:-2] + "AA", webauthn.REGISTER), ("", webauthn.REGISTER),
                         ("x" * 5000, webauthn.REGISTER)]:
        with pytest.raises(webauthn.PasskeyError):
            passkeys.ceremony(bad, purpose)
    # Another broker secret: not ours.
    other = webauthn.Passkeys(provider.db, make_settings(tmp_path, secret_key="a" * 43))
    with pytest.raises(webauthn.PasskeyError):
        other.ceremony(token, webauthn.REGISTER)
    passkeys.consume(ceremony)
    with pytest.raises(webauthn.PasskeyError):
        passkeys.consume(ceremony)


def test_an_expired_challenge_is_refused(provider, user, monkeypatch):
    passkeys = webauthn.Passkeys(provider.db, provider.settings)
    _, token = passkeys.authentication_options(webauthn.LOGIN)
    import time

    later = time.time() + webauthn.CHALLENGE_TTL + 1
    monkeypatch.setattr(webauthn.time, "time", lambda: later)
    with pytest.raises(webauthn.PasskeyError) as refused:
        passkeys.ceremony(token, webauthn.LOGIN)
    assert refused.value.message == webauthn.EXPIRED


# -- the second factor ----------------------------------------------------------------------------
def test_a_passkey_as_the_second_factor_inside_an_authorization(http, user, provider, client, enrolled):
    page, verifier = authorize(http, client)
    page = login_page(http, page)
    assert page.status_code == 200 and 'data-webauthn="authenticate"' in page.text, page.text
    assert '<script src="/static/webauthn.js" defer></script>' in page.text
    options = page_options(page.text)
    [row] = [f for f in factors_of(provider, user.id) if f.confirmed_at]
    assert [d["id"] for d in options["allowCredentials"]] == [row.credential_id]
    assert options["rpId"] == "127.0.0.1" and options["userVerification"] == "preferred"
    answer = enrolled.get(options, uv=False)  # a security key without PIN is fine after a password
    r = http.post("/mfa", data={
        "csrf_token": csrf(page.text), "action": "verify", "factor": hidden(page.text, "factor"),
        "interaction": hidden(page.text, "interaction"), "next": hidden(page.text, "next"),
        "webauthn_token": hidden(page.text, "webauthn_token"), "credential": _json(answer)})
    landing = consent_if_asked(http, follow(http, r))
    claims = redeem(http, provider, client, landing, verifier)
    assert set(claims["amr"]) == {"pwd", "hwk", "mfa"} and claims["acr"] == c.ACR_MFA
    [row] = [f for f in factors_of(provider, user.id) if f.confirmed_at]
    assert row.last_counter == 1 and row.last_used_at is not None


def verify_post(http: Any, page: Any, answer: dict[str, Any], **fields: str) -> Any:
    return http.post("/mfa", data={
        "csrf_token": csrf(page.text), "action": "verify", "factor": hidden(page.text, "factor"),
        "interaction": hidden(page.text, "interaction"), "next": hidden(page.text, "next"),
        "webauthn_token": hidden(page.text, "webauthn_token"), "credential": _json(answer), **fields})


def second_step(http: Any) -> Any:
    sign_in(http, next_path="/account")
    page = http.get("/mfa?next=/account")
    assert page.status_code == 200 and 'data-webauthn="authenticate"' in page.text, page.text
    return page


@pytest.mark.parametrize("bend", [{"origin": "http://127.0.0.1:8001"}, {"rp_id": "localhost"},
                                  {"challenge": "AAAA"}])
def test_a_bent_second_factor_is_refused(http, user, provider, enrolled, bend):
    page = second_step(http)
    r = verify_post(http, page, enrolled.get(page_options(page.text), **bend))
    assert r.status_code == 400 and "That passkey could not be verified" in r.text
    [session] = sessions_of(provider, user.id)
    assert session.amr == ["pwd"]


def test_a_second_factor_challenge_works_once(http, user, provider, enrolled):
    page = second_step(http)
    answer = enrolled.get(page_options(page.text))
    assert verify_post(http, page, answer).status_code == 303
    # The same answer again, in a session that has not passed yet: the challenge is spent.
    http.cookies.clear()
    page2 = second_step(http)
    r = verify_post(http, page2, answer, webauthn_token=hidden(page.text, "webauthn_token"))
    assert r.status_code == 400


def test_a_passkey_of_someone_else_is_no_second_factor(http, app, user, provider, enrolled):
    provider.users.create("bob@example.com", PASSWORD, email_verified=True)
    bob_device = SoftAuthenticator(ORIGIN)
    with TestClient(app, base_url=ISSUER, follow_redirects=False) as bob:
        sign_in(bob, "bob@example.com")
        assert enrol_passkey(bob, bob_device).status_code == 200
    page = second_step(http)
    options = page_options(page.text)
    answer = bob_device.get(options, credential=bob_device.credentials[0])
    assert verify_post(http, page, answer).status_code == 400


def test_a_signature_counter_going_back_is_refused(http, user, provider, enrolled):
    page = second_step(http)
    assert verify_post(http, page, enrolled.get(page_options(page.text), counter=5)).status_code == 303
    http.cookies.clear()
    page = second_step(http)
    r = verify_post(http, page, enrolled.get(page_options(page.text), counter=3))  # a clone's counter
    assert r.status_code == 400
    http.cookies.clear()
    page = second_step(http)
    assert verify_post(http, page, enrolled.get(page_options(page.text), counter=5)).status_code == 400  # not up
    assert verify_post(http, page, enrolled.get(page_options(page.text), counter=6)).status_code == 400  # spent
    page = http.get("/mfa?next=/account")
    assert verify_post(http, page, enrolled.get(page_options(page.text), counter=6)).status_code == 303


def test_counters_that_stay_at_zero_are_fine(http, user, provider):
    synced = SoftAuthenticator(ORIGIN, counts=False, backup_eligible=True)
    sign_in(http)
    assert enrol_passkey(http, synced).status_code == 200
    [row] = factors_of(provider, user.id)
    assert row.data["backup_eligible"] is True and row.data["backed_up"] is True
    for _ in range(2):
        http.cookies.clear()
        page = second_step(http)
        assert verify_post(http, page, synced.get(page_options(page.text))).status_code == 303
    [row] = factors_of(provider, user.id)
    assert row.last_counter == 0


# -- passwordless -------------------------------------------------------------------------------------
def test_passwordless_sign_in_ends_in_a_code(http, user, provider, client, enrolled):
    page, verifier = authorize(http, client)
    assert 'autocomplete="username webauthn"' in page.text
    interaction = form_fields(page.text)["interaction"]
    options = passkey_options(http, page.text)
    assert options.status_code == 200 and options.headers["cache-control"] == "no-store"
    public_key = options.json()["publicKey"]
    assert public_key["allowCredentials"] == [] and public_key["userVerification"] == "required"
    assert public_key["rpId"] == "127.0.0.1"
    assert "idbroker_webauthn" in options.headers["set-cookie"] and "HttpOnly" in options.headers["set-cookie"]
    r = http.post("/login/passkey", json={"credential": enrolled.get(public_key), "interaction": interaction},
                  headers={"X-CSRF-Token": csrf(page.text)})
    assert r.status_code == 200, r.text
    target = r.json()["redirect"]
    assert target == f"{ISSUER}/oauth2/authorize/resume?interaction={interaction}"
    landing = consent_if_asked(http, follow(http, http.get(target)))
    claims = redeem(http, provider, client, landing, verifier)
    assert claims["amr"] == ["hwk", "mfa"] and claims["acr"] == c.ACR_MFA
    assert claims["sub"] == user.sub
    assert audit.LOGIN_SUCCEEDED in events(provider, user.id)


def test_passwordless_sign_in_without_an_application(http, user, provider, enrolled):
    page = http.get("/login?next=/account")
    assert 'data-next="/account"' not in page.text  # 127.0.0.1 is no RP id: no passkey button here
    r = passkey_login(http, page.text, enrolled, next_path="/account")
    assert r.status_code == 200, r.text
    assert r.json() == {"redirect": ISSUER + "/account"}
    account = http.get("/account")
    assert account.status_code == 200 and "Your account" in account.text
    # Already past a second factor: the security page opens without /mfa.
    assert http.get("/account/security").status_code == 200
    # An off-site next goes home.
    http.cookies.clear()
    page = http.get("/login")
    assert passkey_login(http, page.text, enrolled, next_path="//evil.example/").json() == {"redirect": ISSUER + "/"}


def test_passwordless_replaces_the_previous_session(http, user, provider, enrolled):
    sign_in(http)
    [before] = sessions_of(provider, user.id)
    page = http.get("/login")
    assert passkey_login(http, page.text, enrolled).status_code == 200
    [after] = sessions_of(provider, user.id)
    assert after.sid != before.sid and after.amr == ["hwk", "mfa"]


def test_passwordless_needs_user_verification(http, user, provider, enrolled):
    page = http.get("/login")
    r = passkey_login(http, page.text, enrolled, uv=False)
    assert r.status_code == 400 and r.json()["error"] == "That passkey could not be verified. Please try again."
    assert not sessions_of(provider, user.id)


@pytest.mark.parametrize("bend", [{"origin": "https://evil.example"}, {"rp_id": "evil.example"},
                                  {"challenge": "AAAA"}, {"user_handle": b"someone-else"}])
def test_a_bent_passwordless_answer_is_refused(http, user, provider, enrolled, bend):
    page = http.get("/login")
    r = passkey_login(http, page.text, enrolled, **bend)
    assert r.status_code == 400, r.text
    assert not sessions_of(provider, user.id)
    assert "idbroker_session" not in r.headers.get("set-cookie", "")


def test_a_passwordless_challenge_works_once(http, user, provider, enrolled):
    page = http.get("/login")
    options = passkey_options(http, page.text)
    challenge_cookie = http.cookies.get("idbroker_webauthn")
    answer = enrolled.get(options.json()["publicKey"])
    first = http.post("/login/passkey", json={"credential": answer}, headers={"X-CSRF-Token": csrf(page.text)})
    assert first.status_code == 200
    http.cookies.clear()
    page = http.get("/login")
    http.cookies.set("idbroker_webauthn", challenge_cookie, domain="127.0.0.1", path="/login/passkey")
    replay = http.post("/login/passkey", json={"credential": answer}, headers={"X-CSRF-Token": csrf(page.text)})
    assert replay.status_code == 400
    assert replay.json()["error"] == "The passkey request expired. Please try again."
    assert len(sessions_of(provider, user.id)) == 1


def test_a_second_factor_challenge_is_no_sign_in(http, user, provider, enrolled):
    page = second_step(http)
    answer = enrolled.get(page_options(page.text))
    http.cookies.clear()
    login = http.get("/login")
    http.cookies.set("idbroker_webauthn", hidden(page.text, "webauthn_token"), domain="127.0.0.1",
                     path="/login/passkey")
    r = http.post("/login/passkey", json={"credential": answer}, headers={"X-CSRF-Token": csrf(login.text)})
    assert r.status_code == 400
    assert len(sessions_of(provider, user.id)) == 1  # only the password session of second_step


def test_passwordless_requests_need_the_csrf_token_and_json(http, user, provider, enrolled):
    page = http.get("/login")
    assert http.post("/login/passkey/options", json={}).status_code == 403
    assert http.post("/login/passkey/options", json={}, headers={"X-CSRF-Token": "nope"}).status_code == 403
    assert http.post("/login/passkey/options", json={}, headers={
        "X-CSRF-Token": csrf(page.text), "Origin": "https://evil.example"}).status_code == 403
    options = passkey_options(http, page.text).json()["publicKey"]
    answer = enrolled.get(options)
    assert http.post("/login/passkey", json={"credential": answer}).status_code == 403
    assert http.post("/login/passkey", data={"credential": _json(answer)},
                     headers={"X-CSRF-Token": csrf(page.text)}).status_code == 400
    assert http.post("/login/passkey", content=b"[1]", headers={
        "X-CSRF-Token": csrf(page.text), "Content-Type": "application/json"}).status_code == 400
    assert http.post("/login/passkey", content=b"x" * 70_000, headers={
        "X-CSRF-Token": csrf(page.text), "Content-Type": "application/json"}).status_code == 400
    assert not sessions_of(provider, user.id)


def test_passwordless_with_an_expired_interaction(http, user, provider, enrolled):
    page = http.get("/login")
    r = passkey_login(http, page.text, enrolled, interaction="no-such-interaction")
    assert r.status_code == 400
    assert not sessions_of(provider, user.id)


def test_a_disabled_user_cannot_use_a_passkey(http, user, provider, enrolled):
    with provider.db.session() as s:
        s.get(type(user), user.id).disabled = True
    page = http.get("/login")
    r = passkey_login(http, page.text, enrolled)
    assert r.status_code == 400 and r.json()["error"] == "This passkey is not registered here."


def test_errors_come_in_the_page_language(http, user, provider, enrolled):
    page = http.get("/login", headers={"Accept-Language": "fr"})
    options = passkey_options(http, page.text).json()["publicKey"]
    r = http.post("/login/passkey", json={"credential": enrolled.get(options, uv=False)},
                  headers={"X-CSRF-Token": csrf(page.text), "Accept-Language": "fr"})
    assert r.status_code == 400
    assert r.json()["error"] != "That passkey could not be verified. Please try again."


# -- renaming and removing ------------------------------------------------------------------------------
def test_renaming_and_removing_a_passkey(http, user, provider, device):
    sign_in(http)
    assert enrol_passkey(http, device, "Old name").status_code == 200
    [row] = factors_of(provider, user.id)
    page = http.get("/account/security")
    r = http.post("/account/security/rename", data={"csrf_token": csrf(page.text), "factor": row.id,
                                                    "name": "Phone"})
    assert r.status_code == 303
    assert "Phone" in http.get("/account/security").text
    page = http.get("/account/security")
    r = http.post("/account/security/remove", data={"csrf_token": csrf(page.text), "factor": row.id})
    assert r.status_code == 303
    assert factors_of(provider, user.id) == []
    assert audit.MFA_REMOVED in events(provider, user.id)
    # The removed passkey no longer signs in.
    http.cookies.clear()
    page = http.get("/login")
    r = passkey_login(http, page.text, device)
    assert r.status_code == 400 and r.json()["error"] == "This passkey is not registered here."


# -- during a sign-in that requires a second factor ---------------------------------------------------
def test_enrolment_during_a_sign_in_that_requires_it(http, user, provider, client, device):
    provider.settings.mfa_policy = "required"
    page, verifier = authorize(http, client)
    page = login_page(http, page)
    assert page.status_code == 200 and "Set up two-step verification" in page.text, page.text
    interaction = hidden(page.text, "interaction")
    done = enrol_passkey(http, device, "Laptop", page=page, interaction=interaction)
    assert done.status_code == 200 and "Two-step verification is on" in done.text, done.text
    cont = re.search(r'href="([^"]+)" id="continue"', done.text).group(1).replace("&amp;", "&")
    landing = consent_if_asked(http, follow(http, http.get(cont)))
    claims = redeem(http, provider, client, landing, verifier)
    assert set(claims["amr"]) == {"pwd", "hwk", "mfa"} and claims["acr"] == c.ACR_MFA


# -- the login page ---------------------------------------------------------------------------------
def test_the_login_page_offers_passkeys_where_browsers_allow_them(tmp_path, database):
    """With a domain issuer the page has the button, the script and the autofill hint; with an IP
    address (no valid RP id) it has only the autofill hint."""
    settings = make_settings(tmp_path, issuer="http://localhost:8000")
    provider = Provider(settings, db=database)
    provider.keys.ensure()
    with TestClient(create_app(provider=provider), base_url="http://localhost:8000", follow_redirects=False) as h:
        page = h.get("/login?next=/account")
        assert 'autocomplete="username webauthn"' in page.text
        assert 'data-webauthn="login"' in page.text and 'data-next="/account"' in page.text
        assert '<script src="/static/webauthn.js" defer></script>' in page.text
        assert "Sign in with a passkey" in page.text
        script = h.get("/static/webauthn.js")
        assert script.status_code == 200 and 'mediation = "conditional"' in script.text
        options = h.post("/login/passkey/options", json={}, headers={"X-CSRF-Token": csrf(page.text)})
        assert options.json()["publicKey"]["rpId"] == "localhost"


def test_the_rp_id_setting(tmp_path):
    assert webauthn.rp_id_for(make_settings(tmp_path, issuer="https://id.example.com/broker")) == "id.example.com"
    assert webauthn.rp_id_for(make_settings(tmp_path, issuer="https://id.example.com",
                                            webauthn_rp_id="example.com")) == "example.com"
    assert webauthn.origin_of("https://id.example.com:8443/broker") == "https://id.example.com:8443"
    assert webauthn.usable_rp_id("example.com") and webauthn.usable_rp_id("localhost")
    assert not webauthn.usable_rp_id("127.0.0.1") and not webauthn.usable_rp_id("[::1]")
    assert not webauthn.usable_rp_id("")
    with pytest.raises(SettingsError):  # browsers would refuse it: not the issuer's domain
        make_settings(tmp_path, issuer="https://id.example.com", webauthn_rp_id="example.org")
    with pytest.raises(SettingsError):
        make_settings(tmp_path, issuer="https://id.example.com", webauthn_rp_id="ample.com")


def test_factor_rows_keep_no_secret(http, user, provider, device):
    sign_in(http)
    enrol_passkey(http, device)
    with provider.db.session(write=False) as s:
        row = s.scalar(select(MfaFactor).where(MfaFactor.user_id == user.id))
    assert row.secret is None and "public_key" in row.data
