"""An LDAP password typed on our own sign-in page (federation/realm.py), against a real, throwaway
OpenLDAP slapd (slapd.py), through HTTP against the app the way a browser and a client do: the
address's domain routes it to the directory; the code flow ends with an ID token carrying the
`idp` claim and amr pwd + fed; a wrong password is the same 401 as a local one; a directory that is
down is a 503 "try again later" and counts towards the lock; an account takeover is refused; a
login that is not an address is not routed to the directory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from slapd import PASSWORD, SERVICE_DN, SERVICE_PASSWORD, SLAPD, SUFFIX, Slapd
from sqlalchemy import select
from support import ISSUER, free_port, pkce_pair, query_of

from idbroker.store.models import AuditEvent, LinkedIdentity, User

pytestmark = [pytest.mark.peers,
              pytest.mark.skipif(not SLAPD.exists(), reason=f"{SLAPD} is missing (apt install slapd)")]

WRONG = "Incorrect email or password."
DOWN = "cannot be reached right now. Please try again later."


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    server.start()
    try:
        server.load()
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"lockout_threshold": 2}


def add_directory(provider: Any, url: str, provider_id: str = "corp", domain: str = "example.org",
                  **flags: Any) -> Any:
    return provider.upstreams.add(
        provider_id, "ldap", "Corp directory", domains=[domain], secrets={"bind_password": SERVICE_PASSWORD},
        options={"url": url, "bind_dn": SERVICE_DN, "base_dn": SUFFIX, "group_base_dn": f"ou=groups,{SUFFIX}",
                 "group_mode": "groupOfNames", "timeout": 2, "email_verified": "true"}, **flags)


@pytest.fixture
def corp(provider: Any, directory: Slapd) -> Any:
    return add_directory(provider, directory.url)


@pytest.fixture
def app_client(register: Any) -> Any:
    return register("rp", first_party=True, scopes=["openid", "email", "profile", "groups"])


def login_page(http: Any, client: Any) -> tuple[Any, str]:
    verifier, challenge = pkce_pair()
    r = http.get("/oauth2/authorize", params=dict(
        client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code",
        scope="openid email groups", state="rp-state", nonce="n-1", code_challenge=challenge,
        code_challenge_method="S256"))
    while r.status_code in (302, 303) and r.headers["location"].startswith(ISSUER):
        r = http.get(r.headers["location"])
    assert r.status_code == 200 and 'name="password"' in r.text, r.text
    return r, verifier


def submit(http: Any, page: Any, login: str, password: str) -> Any:
    import re

    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.text))
    return http.post("/login", data={**fields, "username": login, "password": password})


def events(provider: Any, kind: str) -> list[AuditEvent]:
    with provider.db.session(write=False) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.kind == kind)))


def id_token_claims(token: str) -> dict[str, Any]:
    import base64
    import json

    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def test_directory_password_signs_in_with_the_idp_claim_and_groups(http: Any, provider: Any, corp: Any,
                                                                     app_client: Any) -> None:
    page, verifier = login_page(http, app_client)
    r = submit(http, page, "Alice@Example.org", PASSWORD)
    assert r.status_code in (302, 303), r.text
    location = r.headers["location"]
    assert location.startswith(app_client.redirect_uri), location
    q = query_of(location)
    tokens = http.post("/oauth2/token", auth=app_client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": app_client.redirect_uri,
        "code_verifier": verifier}).json()
    claims = id_token_claims(tokens["id_token"])
    assert claims["idp"] == "corp"
    assert "pwd" in claims["amr"] and "fed" in claims["amr"]
    assert claims["groups"] == ["admins", "everyone", "staff"]  # from the directory, nested ones included
    info = http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert info["email"] == "alice@example.org" and info["idp"] == "corp" and info["sub"] == claims["sub"]
    assert info["groups"] == claims["groups"]
    with provider.db.session(write=False) as s:
        user = s.scalars(select(User).where(User.email == "alice@example.org")).one()
        assert user.password_hash is None  # the directory keeps the password, not us
        links = list(s.scalars(select(LinkedIdentity).where(LinkedIdentity.user_id == user.id)))
        assert [link.provider_id for link in links] == ["corp"]
    login = events(provider, "login.succeeded")[-1]
    assert login.detail["method"] == "ldap" and login.detail["idp"] == "corp"
    # The directory is the truth about groups: the next sign-in brings them up to date.
    with provider.db.session() as s:
        s.scalars(select(User).where(User.email == "alice@example.org")).one().groups = ["stale"]
    http.cookies.clear()
    page, _ = login_page(http, app_client)
    assert submit(http, page, "alice@example.org", PASSWORD).status_code in (302, 303)
    with provider.db.session(write=False) as s:
        again = s.scalars(select(User).where(User.email == "alice@example.org")).one()
        assert again.groups == ["admins", "everyone", "staff"] and again.id == user.id


def test_wrong_password_is_the_same_401_as_a_local_one(http: Any, provider: Any, corp: Any,
                                                      app_client: Any) -> None:
    page, _ = login_page(http, app_client)
    r = submit(http, page, "alice@example.org", "not the password")
    assert r.status_code == 401 and WRONG in r.text
    local = submit(http, page, "nobody@elsewhere.example", "not the password")
    assert local.status_code == 401 and WRONG in local.text
    with provider.db.session(write=False) as s:
        assert s.scalars(select(User).where(User.email == "alice@example.org")).first() is None


def test_directory_down_is_a_503_try_again_later_and_counts_towards_the_lock(
        http: Any, provider: Any, app_client: Any) -> None:
    add_directory(provider, f"ldap://127.0.0.1:{free_port()}", provider_id="down", domain="down.example")
    page, _ = login_page(http, app_client)
    for _ in range(2):
        r = submit(http, page, "alice@down.example", PASSWORD)
        assert r.status_code == 503 and DOWN in r.text, r.text
    failed = events(provider, "login.failed")
    assert len(failed) == 2 and all(e.detail.get("reason") == "unavailable" for e in failed)
    locked = submit(http, page, "alice@down.example", PASSWORD)
    assert locked.status_code == 429 and "Retry-After" in locked.headers


def test_an_existing_local_account_is_not_taken_over(http: Any, provider: Any, corp: Any,
                                                     app_client: Any) -> None:
    provider.users.create("alice@example.org", "a local password 123", email_verified=True)
    page, _ = login_page(http, app_client)
    r = submit(http, page, "alice@example.org", PASSWORD)
    assert r.status_code == 403 and "already exists" in r.text, r.text
    assert "session" not in "".join(r.cookies.keys())
    with provider.db.session(write=False) as s:
        assert s.scalars(select(LinkedIdentity)).first() is None
    # Nor does the local password open the directory's domain: the directory alone answers.
    r = submit(http, page, "alice@example.org", "a local password 123")
    assert r.status_code == 401 and WRONG in r.text


def test_a_directory_that_cannot_be_built_is_unavailable_not_the_local_pool(
        http: Any, provider: Any, corp: Any, app_client: Any, monkeypatch: Any) -> None:
    provider.users.create("alice@example.org", "a local password 123", email_verified=True)
    monkeypatch.setattr(provider.upstreams, "get", lambda provider_id: None)
    page, _ = login_page(http, app_client)
    r = submit(http, page, "alice@example.org", "a local password 123")
    assert r.status_code == 503 and DOWN in r.text


def test_a_login_that_is_not_an_address_is_not_routed_to_the_directory(http: Any, provider: Any, corp: Any,
                                                                       app_client: Any) -> None:
    page, _ = login_page(http, app_client)
    r = submit(http, page, "alice", PASSWORD)  # her uid: the directory would accept it, but no domain routes it
    assert r.status_code == 401 and WRONG in r.text
    with provider.db.session(write=False) as s:
        assert s.scalars(select(LinkedIdentity)).first() is None
