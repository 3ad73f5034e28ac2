"""Recovery codes over HTTP, on both stores: shown once when the first factor is set up, each
signs in once, a new set voids the old one, and every use and renewal is in the audit trail."""

from __future__ import annotations

import pytest
from mfa_helpers import (
    CODES_RE,
    authorize,
    consent_if_asked,
    csrf,
    events,
    follow,
    login_page,
    redeem,
    sign_in,
    submit_code,
)
from sqlalchemy import select

from idbroker import audit
from idbroker.oauth2 import constants as c
from idbroker.store.models import RecoveryCode


@pytest.fixture
def codes(enrolled):
    return enrolled[1]


def recovery_page(http, client):
    page, verifier = authorize(http, client)
    page = login_page(http, page)
    assert "Use a recovery code" in page.text
    interaction = page.text.split('name="interaction" value="', 1)[1].split('"', 1)[0]
    page = http.get("/mfa", params={"interaction": interaction, "factor": "recovery"})
    assert page.status_code == 200 and 'for="code">Recovery code' in page.text
    return page, verifier


def test_stored_hashed_never_in_clear(provider, user, codes):
    assert len(codes) == 10
    with provider.db.session(write=False) as s:
        hashes = list(s.scalars(select(RecoveryCode.code_hash).where(RecoveryCode.user_id == user.id)))
    assert len(hashes) == 10
    assert not any(code.replace("-", "") in h or code in h for code in codes for h in hashes)


def test_sign_in_with_a_recovery_code_once(http, app, provider, client, user, codes):
    page, verifier = recovery_page(http, client)
    code = codes[3]
    landing = consent_if_asked(http, follow(http, submit_code(http, page, code.upper().replace("-", " "))))
    claims = redeem(http, provider, client, landing, verifier)
    assert claims["acr"] == c.ACR_MFA and claims["amr"] == ["pwd", "otp", "mfa"]
    assert provider.mfa.recovery_codes_left(user.id) == 9
    assert audit.RECOVERY_CODE_USED in events(provider, user.id)

    http.cookies.clear()
    page, _ = recovery_page(http, client)
    again = submit_code(http, page, code)
    assert again.status_code == 400 and "already used" in again.text
    assert submit_code(http, again, codes[4]).status_code == 303


def test_new_codes_void_the_old_ones(http, provider, client, user, codes, clock):
    page, _ = recovery_page(http, client)
    consent_if_asked(http, follow(http, submit_code(http, page, codes[0])))
    security = http.get("/account/security")
    assert security.status_code == 200 and "Unused recovery codes: 9" in security.text
    fresh = http.post("/account/security/recovery-codes", data={"csrf_token": csrf(security.text)})
    assert fresh.status_code == 200 and fresh.headers["cache-control"] == "no-store"
    new_codes = CODES_RE.findall(fresh.text)
    assert len(new_codes) == 10 and not set(new_codes) & set(codes)
    assert audit.RECOVERY_CODES_REGENERATED in events(provider, user.id)
    assert "Unused recovery codes: 10" in http.get("/account/security").text

    http.cookies.clear()
    page, _ = recovery_page(http, client)
    old = submit_code(http, page, codes[1])
    assert old.status_code == 400
    assert submit_code(http, old, new_codes[1]).status_code == 303


def test_regenerating_needs_the_csrf_token_and_a_second_factor(http, provider, user, codes):
    before = provider.mfa.recovery_codes_left(user.id)
    r = http.post("/account/security/recovery-codes", data={"csrf_token": "x"})
    assert r.status_code == 303 and "/login" in r.headers["location"]
    sign_in(http)  # password only: the security page wants the second step first
    r = http.post("/account/security/recovery-codes", data={"csrf_token": "x"})
    assert r.status_code == 303 and "/mfa?next=" in r.headers["location"]
    assert provider.mfa.recovery_codes_left(user.id) == before
