"""Forgotten password and reset, with real mail: the same answer for every address, single-use
expiring links, the policy, and everything the old password opened being closed."""

from __future__ import annotations

import pytest
from lifecycle_helpers import (
    NEW_PASSWORD,
    assert_labelled,
    authorize_params,
    last_mail,
    link_in,
    local,
    page_fields,
    visible_text,
)
from sqlalchemy import select, update
from starlette.testclient import TestClient
from support import ISSUER, PASSWORD, query_of

from idbroker.store.models import BrowserSession, Grant, OneTimeToken, User


@pytest.fixture
def settings_overrides(smtp):
    return {**smtp.settings(), "resend_interval": 60}


def _forgot(http, email, interaction=""):
    page = http.get("/forgot-password", params={"interaction": interaction} if interaction else None)
    assert page.status_code == 200
    return http.post("/forgot-password", data={**page_fields(page), "email": email})


def _reset_link(http, smtp, email="alice@example.com"):
    r = _forgot(http, email)
    assert r.status_code == 200
    return local(link_in(last_mail(smtp, email), "/reset-password"))


def _submit(http, url, password=NEW_PASSWORD, confirmation=None):
    page = http.get(url)
    assert page.status_code == 200, page.text
    token = query_of(url)["token"]
    return http.post("/reset-password", data={**page_fields(page), "token": token, "password": password,
                                              "password_confirmation": password if confirmation is None
                                              else confirmation})


def test_forgot_password_answers_the_same_for_unknown_addresses(http, provider, smtp, user):
    page = http.get("/forgot-password")
    assert 'autocomplete="username"' in page.text and 'type="email"' in page.text
    assert_labelled(page.text)
    known = _forgot(http, "Alice@Example.com")
    unknown = _forgot(http, "nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert visible_text(known.text).replace("alice@example.com", "X") == \
        visible_text(unknown.text).replace("nobody@example.com", "X")
    assert len(smtp.wait_for("alice@example.com")) == 1
    assert [m for m in smtp.messages if "nobody" in str(m["To"])] == []
    assert len(smtp.messages) == 1


def test_forgot_password_mails_at_most_once_per_interval_and_never_disabled_users(http, provider, smtp, user):
    _forgot(http, "alice@example.com")
    again = _forgot(http, "alice@example.com")
    assert again.status_code == 200
    assert len(smtp.wait_for("alice@example.com")) == 1
    provider.users.create("eve@example.com", PASSWORD)
    provider.users.set_disabled("eve@example.com")
    assert _forgot(http, "eve@example.com").status_code == 200
    assert len(smtp.messages) == 1


def test_forgot_password_form_errors(http, provider, smtp, user):
    page = http.get("/forgot-password")
    r = http.post("/forgot-password", data={**page_fields(page), "email": "not an address"})
    assert r.status_code == 400 and "Enter an email address" in r.text and 'aria-describedby="email-error"' in r.text
    r = http.post("/forgot-password", data={"email": "alice@example.com"})
    assert r.status_code == 400 and "Your form expired" in r.text
    r = http.post("/forgot-password", data={**page_fields(page), "email": "a" * 60_000 + "@example.com"})
    assert r.status_code == 400
    r = http.post("/forgot-password", data={**page_fields(page), "email": "alice\x00@example.com"})
    assert r.status_code == 400
    assert http.get("/forgot-password", params={"interaction": "gone"}).status_code == 400
    assert http.get("/forgot-password", params={"interaction": "a\x00"}).status_code == 400
    assert http.get("/reset-password", params={"token": "a\x00", "interaction": "b\x00"}).status_code == 400
    assert smtp.messages == []


def test_reset_sets_the_password_once_and_verifies_the_address(http, provider, smtp):
    provider.users.create("alice@example.com", PASSWORD, email_verified=False)
    url = _reset_link(http, smtp)
    page = http.get(url)
    assert 'autocomplete="new-password"' in page.text and 'autocomplete="username"' in page.text
    assert "alice@example.com" in page.text
    assert_labelled(page.text)
    r = _submit(http, url)
    assert r.status_code == 200 and "Your password has been changed" in r.text
    assert provider.users.authenticate("alice@example.com", NEW_PASSWORD) is not None
    assert provider.users.authenticate("alice@example.com", PASSWORD) is None
    assert provider.users.by_email("alice@example.com").email_verified is True
    assert "was just changed" in last_mail(smtp, "alice@example.com", 2)
    # Single use.
    assert http.get(url).status_code == 400
    token = query_of(url)["token"]
    r = http.post("/reset-password", data={**page_fields(page), "token": token, "password": "another long one",
                                           "password_confirmation": "another long one"})
    assert r.status_code == 400 and "already used" in r.text
    assert provider.users.authenticate("alice@example.com", NEW_PASSWORD) is not None


@pytest.mark.parametrize("password,confirmation,message", [
    ("short", None, "Use at least 8 characters."),
    ("alice@example.com", None, "Do not use your email address as your password."),
    ("", None, "Choose a new password."),
    ("x" * 200, None, "Use at most 128 characters."),
    (NEW_PASSWORD, NEW_PASSWORD + "!", "The two passwords are not the same."),
])
def test_reset_policy_errors_keep_the_link_and_the_password(http, provider, smtp, user, password, confirmation,
                                                           message):
    url = _reset_link(http, smtp)
    r = _submit(http, url, password, confirmation)
    assert r.status_code == 400 and message in r.text
    assert provider.users.authenticate("alice@example.com", PASSWORD) is not None
    assert http.get(url).status_code == 200          # the link still works
    assert _submit(http, url).status_code == 200


def test_reset_needs_csrf_and_a_live_token(http, provider, smtp, user):
    url = _reset_link(http, smtp)
    page = http.get(url)
    token = query_of(url)["token"]
    r = http.post("/reset-password", data={"token": token, "password": NEW_PASSWORD,
                                           "password_confirmation": NEW_PASSWORD})
    assert r.status_code == 400 and "Your form expired" in r.text
    for bad in ("", "unknown", "x" * 5000):
        assert http.get("/reset-password", params={"token": bad}).status_code == 400
        r = http.post("/reset-password", data={**page_fields(page), "token": bad, "password": NEW_PASSWORD,
                                               "password_confirmation": NEW_PASSWORD})
        assert r.status_code == 400
    assert http.post("/reset-password", data={f"k{i}": "v" for i in range(100)}).status_code == 400
    assert provider.users.authenticate("alice@example.com", PASSWORD) is not None
    # Expired: refused, and nothing changes.
    with provider.db.session() as s:
        s.execute(update(OneTimeToken).values(expires_at=OneTimeToken.created_at))
    assert http.get(url).status_code == 400
    r = http.post("/reset-password", data={**page_fields(page), "token": token, "password": NEW_PASSWORD,
                                           "password_confirmation": NEW_PASSWORD})
    assert r.status_code == 400
    assert provider.users.authenticate("alice@example.com", PASSWORD) is not None


def test_reset_ends_sessions_and_revokes_refresh_tokens(http, flow, register, provider, smtp, user, app):
    client = register(first_party=True)
    q, verifier = flow.code_flow(client, scope="openid offline_access")
    tokens = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier}).json()
    assert tokens["refresh_token"]
    with TestClient(app, base_url=ISSUER, follow_redirects=False) as other:   # a second signed-in browser
        signed_in = other.post("/login", data={**page_fields(other.get("/login")), "username": "alice@example.com",
                                               "password": PASSWORD})
        assert signed_in.status_code == 303 and "idbroker_session" in signed_in.headers["set-cookie"]
        with TestClient(app, base_url=ISSUER, follow_redirects=False) as mailbox:  # where the link is opened
            r = _submit(mailbox, _reset_link(mailbox, smtp))
            assert r.status_code == 200
        none_params, _ = authorize_params(client, prompt="none")
        assert query_of(other.get("/oauth2/authorize", params=none_params).headers["location"])["error"] == \
            "login_required"
    assert query_of(http.get("/oauth2/authorize", params=none_params).headers["location"])["error"] == \
        "login_required"
    r = http.post("/oauth2/token", auth=client.basic, data={"grant_type": "refresh_token",
                                                            "refresh_token": tokens["refresh_token"]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    with provider.db.session(write=False) as s:
        assert s.scalar(select(BrowserSession).where(BrowserSession.ended_at.is_(None))) is None
        assert s.scalar(select(Grant).where(Grant.revoked_at.is_(None))) is None
        assert s.scalar(select(User.email_verified)) is True


def test_reset_from_a_sign_in_continues_the_authorization(http, flow, register, provider, smtp, user):
    client = register(first_party=True)
    params, _ = authorize_params(client)
    login = flow.authorize(**params)
    interaction = page_fields(login)["interaction"]
    r = _forgot(http, "alice@example.com", interaction)
    assert f'href="/login?interaction={interaction}"' in r.text
    url = local(link_in(last_mail(smtp, "alice@example.com"), "/reset-password"))
    assert query_of(url)["interaction"] == interaction
    done = _submit(http, url)
    assert done.status_code == 200 and f'href="/login?interaction={interaction}"' in done.text
    page = flow.login(http.get(f"/login?interaction={interaction}"), password=NEW_PASSWORD)
    assert page.status_code == 303 and page.headers["location"].startswith(client.redirect_uri)
    assert "code" in query_of(page.headers["location"])
