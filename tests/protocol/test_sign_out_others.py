"""What a change of credentials signs out: after a password change, the removal of a second
factor (an authenticator app, a passkey), a change of address, and "sign out all other sessions",
every other browser session ends and - unless the user ticks "keep connected applications" -
every grant made elsewhere is revoked, offline_access ones included: their refresh tokens stop
working and their access tokens stop reading userinfo, also on a worker that had cached the
token's state. The session that made the change keeps its own. On both stores, with real mail.

Two "workers" (two applications with their own Database objects, caches and change feeds on one
store): the laptop's tokens are checked on the first, the change is made from the desk on the
second."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from mfa_helpers import enrol_totp, factors_of
from starlette.testclient import TestClient
from support import CSRF_RE, ISSUER, PASSWORD, Flow, MailSink, make_settings, query_of
from test_passkeys import ORIGIN, enrol_passkey
from webauthn_helpers import SoftAuthenticator

from idbroker.app import create_app
from idbroker.provider import Provider
from idbroker.store.db import Database

ACTIONS = ["password", "sessions", "authenticator app", "passkey", "email"]
ALL_SIGNED_OUT = "Your other sessions were signed out, and applications you signed in to there lost their access."
APPS_KEPT = "Your other sessions were signed out. Connected applications keep their access."
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def settings_overrides(smtp):
    return smtp.settings()


@pytest.fixture
def client(register):
    return register(first_party=True)


@pytest.fixture
def desk(database, tmp_path, settings_overrides) -> Iterator[TestClient]:
    """A browser on a second worker: its own Database (pool, caches, change feed) on the same store."""
    db = Database(database.url)
    provider = Provider(make_settings(tmp_path, **settings_overrides), db=db)
    with TestClient(create_app(provider=provider), base_url=ISSUER, follow_redirects=False) as browser:
        yield browser
    db.dispose()


def csrf(html: str) -> str:
    return CSRF_RE.search(html).group(1)  # type: ignore[union-attr]


def sign_in(browser: TestClient) -> None:
    page = browser.get("/login")
    r = browser.post("/login", data={"csrf_token": csrf(page.text), "username": "alice@example.com",
                                     "password": PASSWORD})
    assert r.status_code == 303, r.text


def offline_tokens(browser: TestClient, client: Any) -> dict[str, Any]:
    q, verifier = Flow(browser).code_flow(client, scope="openid email offline_access")
    tokens = browser.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier}).json()
    assert tokens["refresh_token"], tokens
    return tokens


def refreshes(browser: TestClient, client: Any, tokens: dict[str, Any]) -> bool:
    r = browser.post("/oauth2/token", auth=client.basic, data={"grant_type": "refresh_token",
                                                               "refresh_token": tokens["refresh_token"]})
    assert r.status_code in (200, 400), r.text
    if r.status_code == 200:
        tokens.update(r.json())
    return r.status_code == 200


def reads_userinfo(browser: TestClient, tokens: dict[str, Any]) -> bool:
    r = browser.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert r.status_code in (200, 401), r.text
    return r.status_code == 200


def signed_out(browser: TestClient) -> bool:
    return browser.get("/account").status_code == 303


def form_with(html: str, action: str) -> str:
    found = re.search(rf'<form method="post" action="{re.escape(action)}".*?</form>', html, re.S)
    assert found, action
    return found.group(0)


def act(action: str, desk: TestClient, smtp: MailSink, clock: Any, keep_apps: bool) -> str:
    """Makes the change from the desk; returns the text of the page that tells what happened."""
    keep = {"keep_apps": "yes"} if keep_apps else {}
    if action in ("authenticator app", "passkey"):
        if action == "passkey":
            assert enrol_passkey(desk, SoftAuthenticator(ORIGIN), "Laptop").status_code == 200
        else:
            enrol_totp(desk, clock)
        page = desk.get("/account/security")
        [factor] = re.findall(r'<input type="hidden" name="factor" value="([^"]+)">', form_with(
            page.text, "/account/security/remove"))
        assert 'name="keep_apps"' in form_with(page.text, "/account/security/remove")
        r = desk.post("/account/security/remove", data={"csrf_token": csrf(page.text), "factor": factor, **keep})
        assert r.status_code == 303
        return desk.get(r.headers["location"]).text
    page = desk.get("/account")
    if action == "email":
        r = desk.post("/account/email", data={"csrf_token": csrf(page.text), "new_email": "alice@example.org",
                                              "current_password": PASSWORD})
        assert r.status_code == 303
        link = re.search(r"http://\S+/account/email/confirm\?token=[\w-]+", MailSink.text(
            smtp.wait_for("alice@example.org")[0])).group(0)
        confirm = desk.get(link.removeprefix(ISSUER))
        assert 'name="keep_apps"' in confirm.text
        done = desk.post("/account/email/confirm", data={"csrf_token": csrf(confirm.text),
                                                         "token": query_of(link)["token"], **keep})
        assert done.status_code == 200 and "You now sign in with alice@example.org." in done.text
        return done.text
    path = {"password": "/account/password", "sessions": "/account/sessions/end-others"}[action]
    assert 'name="keep_apps"' in form_with(page.text, path)
    data = {"current_password": PASSWORD, "new_password": NEW_PASSWORD} if action == "password" else {}
    r = desk.post(path, data={"csrf_token": csrf(page.text), **data, **keep})
    assert r.status_code == 303
    return desk.get(r.headers["location"]).text


def wait_for_news(provider: Provider, before: int | None) -> None:
    """SQLite: the shared counter has moved already. PostgreSQL: the notification arrives right
    after the commit, asynchronously."""
    deadline = time.monotonic() + 10
    while provider.db.changes.generation() == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert provider.db.changes.generation() != before


@pytest.mark.parametrize("keep_apps", [False, True], ids=["default", "keep apps"])
@pytest.mark.parametrize("action", ACTIONS)
def test_a_change_signs_out_everything_else(http, app, provider, user, client, desk, smtp, clock, action,
                                            keep_apps):
    # The laptop: signed in, and an application holding offline access from there.
    laptop = http
    laptop_tokens = offline_tokens(laptop, client)
    # The desk, on the other worker: signed in, with an application of its own.
    sign_in(desk)
    desk_tokens = offline_tokens(desk, client)
    deadline = time.monotonic() + 10
    while provider.db.changes.generation() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    for _ in range(2):  # the first worker now answers from its cache
        assert reads_userinfo(laptop, laptop_tokens)
    before = provider.db.changes.generation()

    page = act(action, desk, smtp, clock, keep_apps)

    assert signed_out(laptop) and not signed_out(desk)
    if keep_apps:
        assert APPS_KEPT in page and ALL_SIGNED_OUT not in page
        assert reads_userinfo(laptop, laptop_tokens) and refreshes(laptop, client, laptop_tokens)
    else:
        assert ALL_SIGNED_OUT in page and APPS_KEPT not in page
        wait_for_news(provider, before)
        assert not reads_userinfo(laptop, laptop_tokens)
        assert not refreshes(laptop, client, laptop_tokens)
    # What the desk's own session gave stays.
    assert reads_userinfo(desk, desk_tokens) and refreshes(desk, client, desk_tokens)
    if action in ("authenticator app", "passkey"):
        assert factors_of(provider, user.id) == []


def test_confirming_an_address_elsewhere_signs_out_every_session(http, provider, user, client, desk, smtp):
    """Opened in a browser that is not signed in, the link leaves no session of the user behind."""
    laptop_tokens = offline_tokens(http, client)
    page = http.get("/account")
    http.post("/account/email", data={"csrf_token": csrf(page.text), "new_email": "alice@example.org",
                                      "current_password": PASSWORD})
    link = re.search(r"http://\S+/account/email/confirm\?token=[\w-]+", MailSink.text(
        smtp.wait_for("alice@example.org")[0])).group(0)
    confirm = desk.get(link.removeprefix(ISSUER))
    done = desk.post("/account/email/confirm", data={"csrf_token": csrf(confirm.text),
                                                     "token": query_of(link)["token"]})
    assert done.status_code == 200 and ALL_SIGNED_OUT in done.text and 'href="/login"' in done.text
    assert signed_out(http)
    assert not refreshes(http, client, laptop_tokens)
