"""Every way of signing in ends in the one door (flow/door.py): the same session cookie (name and
attributes; Max-Age only for "keep me signed in") and the same `login.succeeded` audit event,
whichever path it came by: the password form (with and without "keep me signed in"), a passkey,
the code that proves the address after sign-up, and the second step after a password. And the
parked request, validated once, is read again with its client's registration of the moment."""

from __future__ import annotations

from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any

import pytest
from lifecycle_helpers import authorize_params, code_in, page_fields, signup
from mfa_helpers import code_at, csrf, hidden, sign_in, submit_code
from sqlalchemy import select
from starlette.testclient import TestClient
from support import ISSUER, PASSWORD, make_settings
from test_passkeys import enrol_passkey, passkey_login
from webauthn_helpers import SoftAuthenticator

from idbroker import audit
from idbroker.app import create_app
from idbroker.provider import Provider
from idbroker.store.models import AuditEvent, BrowserSession, Interaction


@pytest.fixture
def settings_overrides(smtp):
    return smtp.settings()


def session_cookie(response: Any) -> dict[str, Any]:
    """The attributes of the session cookie the response sets (lower-case names)."""
    [header] = [h for h in response.headers.get_list("set-cookie") if h.startswith("idbroker_session=")]
    morsel = SimpleCookie(header)["idbroker_session"]
    flags = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    return {"httponly": "httponly" in flags, "secure": "secure" in flags, "samesite": morsel["samesite"].lower(),
            "path": morsel["path"], "max-age": morsel["max-age"] or None}


def last_login(provider: Any, user_id: int) -> AuditEvent:
    with provider.db.session(write=False) as s:
        return s.scalars(select(AuditEvent).where(AuditEvent.user_id == user_id,
                                                  AuditEvent.kind == audit.LOGIN_SUCCEEDED)
                         .order_by(AuditEvent.id.desc())).first()


# Each path signs Alice (or the new Bob) in and returns (the response that set the cookie, the user's
# email, the method the audit trail names, whether the cookie is persistent).
def by_password(http: Any, request: Any, remember: bool = False) -> tuple[Any, str, str, bool]:
    request.getfixturevalue("user")
    page = http.get("/login")
    data = {"csrf_token": csrf(page.text), "username": "alice@example.com", "password": PASSWORD}
    if remember:
        data["remember"] = "1"
    r = http.post("/login", data=data)
    assert r.status_code == 303, r.text
    return r, "alice@example.com", "pwd", remember


def by_passkey(http: Any, request: Any) -> tuple[Any, str, str, bool]:
    request.getfixturevalue("user")
    device = SoftAuthenticator(ISSUER)
    sign_in(http)
    assert enrol_passkey(http, device).status_code == 200
    http.cookies.clear()
    page = http.get("/login?next=/account")
    r = passkey_login(http, page.text, device, next_path="/account")
    assert r.status_code == 200 and r.json()["redirect"] == ISSUER + "/account", r.text
    return r, "alice@example.com", "passkey", False


def after_signup(http: Any, request: Any) -> tuple[Any, str, str, bool]:
    smtp = request.getfixturevalue("smtp")
    page = signup(http)
    assert page.status_code == 200, page.text
    code = code_in(smtp.text(smtp.wait_for("bob@example.com")[0]))
    r = http.post("/verify-email", data={**page_fields(page), "action": "verify", "code": code})
    assert r.status_code == 200 and "idbroker_session=" in r.headers.get("set-cookie", ""), r.text
    return r, "bob@example.com", "signup", False


def second_step(http: Any, request: Any) -> tuple[Any, str, str, bool]:
    """The password, then a code at /mfa: the code adds a factor to the session the door made
    (same cookie, no new one)."""
    secret, _ = request.getfixturevalue("enrolled")
    clock = request.getfixturevalue("clock")
    r = sign_in(http, next_path="/account")
    assert r.headers["location"] == ISSUER + "/mfa?next=%2Faccount"
    cookie = http.cookies.get("idbroker_session")
    page = http.get(r.headers["location"])
    assert hidden(page.text, "next") == "/account"
    clock.step()
    done = submit_code(http, page, code_at(secret, clock()))
    assert done.status_code == 303 and done.headers["location"] == ISSUER + "/account"
    assert "idbroker_session=" not in done.headers.get("set-cookie", "")
    assert http.cookies.get("idbroker_session") == cookie
    provider = request.getfixturevalue("provider")
    with provider.db.session(write=False) as s:
        row = s.scalars(select(BrowserSession).where(BrowserSession.ended_at.is_(None))
                        .order_by(BrowserSession.created_at.desc())).first()
    assert "mfa" in row.amr
    return r, "alice@example.com", "pwd", False


PATHS: dict[str, Callable[..., tuple[Any, str, str, bool]]] = {
    "password": by_password,
    "password, kept signed in": lambda http, request: by_password(http, request, remember=True),
    "passkey": by_passkey,
    "after sign-up": after_signup,
    "second step": second_step,
}


@pytest.mark.parametrize("path", list(PATHS))
def test_every_sign_in_sets_the_same_cookie_and_audit_event(http, provider, request, path):
    response, email, method, persistent = PATHS[path](http, request)
    assert session_cookie(response) == {
        "httponly": True, "secure": provider.settings.secure_cookies, "samesite": "lax", "path": "/",
        "max-age": str(provider.settings.session_ttl) if persistent else None}
    user = provider.users.by_email(email)
    event = last_login(provider, user.id)
    assert event is not None and event.detail["method"] == method
    assert set(event.detail) <= {"method", "factor"}
    assert event.ip == "testclient" and event.user_agent


def test_the_secure_rule_holds_on_https(tmp_path, database, smtp):
    """Secure follows secure_cookies (on for an https issuer), on every path alike: one place
    sets it."""
    provider = Provider(make_settings(tmp_path, issuer="https://id.example", **smtp.settings()), db=database)
    provider.keys.ensure()
    provider.users.create("alice@example.com", PASSWORD, email_verified=True)
    assert provider.settings.secure_cookies
    with TestClient(create_app(provider=provider), base_url="https://id.example", follow_redirects=False) as http:
        page = http.get("/login")
        r = http.post("/login", data={"csrf_token": csrf(page.text), "username": "alice@example.com",
                                      "password": PASSWORD})
    assert r.status_code == 303 and session_cookie(r)["secure"] is True


# -- the parked request: validated once, its client's registration read again ----------------------
@pytest.mark.parametrize("change", ["redirect URI removed", "client removed"])
def test_a_registration_changed_meanwhile_is_not_answered(http, flow, register, provider, user, change):
    client = register()
    params, _ = authorize_params(client)
    page = flow.authorize(**params)
    interaction = page_fields(page)["interaction"]
    if change == "client removed":
        provider.clients.remove(client.client_id)
    else:
        provider.clients.update(client.client_id, {"redirect_uris": ["https://elsewhere.example/cb"]})
    r = http.post("/login", data={**page_fields(page), "username": "alice@example.com", "password": PASSWORD})
    assert r.status_code == 400 and "location" not in r.headers
    r = http.get(f"/oauth2/authorize/resume?interaction={interaction}")
    assert r.status_code == 400 and "location" not in r.headers


def test_the_parked_request_is_kept_as_validated(flow, register, provider):
    client = register()
    params, _ = authorize_params(client)
    page = flow.authorize(**params)
    with provider.db.session(write=False) as s:
        row = s.get(Interaction, page_fields(page)["interaction"])
    kept = row.params
    assert kept["params"]["client_id"] == client.client_id and kept["redirect_uri"] == client.redirect_uri
    assert kept["response_type"] == "code" and "openid" in kept["scopes"]
