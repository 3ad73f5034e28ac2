"""Which ways of signing in a client offers (`clients add|update --idp ID... --all-idps
--local-accounts/--no-local-accounts`) and home-realm discovery for redirecting providers, through
HTTP the way a browser does, with a test-only upstream kind filed in UPSTREAMS for the test."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import pytest
from mfa_helpers import csrf
from support import ISSUER, PASSWORD, pkce_pair, query_of

from idbroker.cli import context as cli_ctx
from idbroker.federation import kinds
from idbroker.federation.base import ExternalIdentity, StartContext, UpstreamConfig

UPSTREAM = "https://upstream.example/authorize"
NOT_AVAILABLE = "This sign-in option is not available."
NO_LOCAL = "This application does not accept a password for this address."


class FakeUpstream:
    kind = "fake"

    def __init__(self, config: UpstreamConfig):
        self.config = config

    async def start(self, ctx: StartContext) -> str:
        ctx.state["state"] = "s"
        return UPSTREAM + "?" + urlencode({"state": "s", "login_hint": ctx.login_hint or ""})

    async def finish(self, ctx: StartContext, params: Mapping[str, str]) -> ExternalIdentity:
        return ExternalIdentity(provider_id="x", subject=params["sub"])


@pytest.fixture(autouse=True)
def fake_kind(monkeypatch: Any) -> None:
    monkeypatch.setitem(kinds.UPSTREAMS, "fake", FakeUpstream)


@pytest.fixture
def passkeys_on(provider: Any) -> None:
    """The passkey button as on a real host name (the tests' issuer is an address, no RP id)."""
    provider.passkeys.available = True


@pytest.fixture
def upstreams(provider: Any) -> None:
    provider.upstreams.add("up1", "fake", "First Upstream", domains=["corp.example"])
    provider.upstreams.add("up2", "fake", "Second Upstream", domains=["other.example"])


def login_page(http: Any, client_id: str, **extra: str) -> Any:
    _, challenge = pkce_pair()
    r = http.get("/oauth2/authorize", params=dict(
        client_id=client_id, redirect_uri="https://app.example/cb", response_type="code", scope="openid",
        state="st", nonce="n", code_challenge=challenge, code_challenge_method="S256", **extra))
    while r.status_code in (302, 303) and r.headers["location"].startswith(ISSUER) \
            and "/idp/" not in r.headers["location"]:
        r = http.get(r.headers["location"])
    return r


def interaction_of(page: Any) -> str:
    found = re.search(r'name="interaction" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def post_login(http: Any, page: Any, username: str, password: str = "") -> Any:
    return http.post("/login", data={"csrf_token": csrf(page.text), "interaction": interaction_of(page),
                                     "username": username, "password": password})


def test_the_page_offers_only_the_clients_providers(passkeys_on: None, http: Any, upstreams: None,
                                                    register: Any) -> None:
    register("some", first_party=True, idps=["up1"])
    register("every", first_party=True)
    page = login_page(http, "some")
    assert page.status_code == 200
    assert 'id="idp-up1"' in page.text and 'id="idp-up2"' not in page.text
    assert 'name="password"' in page.text and "/forgot-password" in page.text and "/login/passkey" in page.text
    every = login_page(http, "every")
    assert 'id="idp-up1"' in every.text and 'id="idp-up2"' in every.text


def test_a_provider_the_client_does_not_allow_is_refused(http: Any, upstreams: None, register: Any) -> None:
    register("some", first_party=True, idps=["up1"])
    r = login_page(http, "some", idp_hint="up2")
    assert r.status_code == 403 and NOT_AVAILABLE in r.text
    r = login_page(http, "some", idp_hint="up1")
    assert r.status_code == 303 and r.headers["location"].startswith(f"{ISSUER}/idp/up1/start?")
    page = login_page(http, "some")
    refused = http.get("/idp/up2/start", params={"interaction": interaction_of(page)})
    assert refused.status_code == 403 and NOT_AVAILABLE in refused.text
    allowed = http.get("/idp/up1/start", params={"interaction": interaction_of(page)})
    assert allowed.status_code == 303 and allowed.headers["location"].startswith(UPSTREAM)
    # Home-realm discovery routes only to an allowed provider: the other's domain is refused.
    r = post_login(http, page, "bob@other.example")
    assert r.status_code == 403 and NOT_AVAILABLE in r.text
    assert "set-cookie" not in r.headers or "idbroker_upstream" not in r.headers["set-cookie"]


def test_home_realm_sends_the_address_to_its_provider_without_a_password(http: Any, upstreams: None,
                                                                         register: Any, user: Any) -> None:
    register("every", first_party=True)
    page = login_page(http, "every")
    field = re.search(r'<input id="password"[^>]*>', page.text)
    assert field and "required" not in field.group(0)  # the address alone may be enough
    assert 'id="realm-hint"' in page.text
    r = post_login(http, page, "Bob@Corp.example")
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith(f"{ISSUER}/idp/up1/start?")
    q = query_of(r.headers["location"])
    assert q["login_hint"] == "Bob@Corp.example" and q["interaction"] == interaction_of(page)
    sent = http.get(r.headers["location"])
    assert sent.status_code == 303 and query_of(sent.headers["location"])["login_hint"] == "Bob@Corp.example"
    # Any other address still signs in with its password here.
    page = login_page(http, "every")
    ok = post_login(http, page, "alice@example.com", PASSWORD)
    assert ok.status_code == 303 and ok.headers["location"].startswith("https://app.example/cb")


def test_without_local_accounts_no_password_is_taken(passkeys_on: None, http: Any, upstreams: None,
                                                     register: Any, user: Any) -> None:
    register("fed-only", first_party=True, idps=["up1"], local_accounts=False)
    page = login_page(http, "fed-only")
    assert page.status_code == 200
    assert 'name="password"' not in page.text
    assert "/forgot-password" not in page.text and "/signup" not in page.text
    assert "/login/passkey" not in page.text  # a passkey is a local account's too
    assert 'id="idp-up1"' in page.text
    r = post_login(http, page, "alice@example.com", PASSWORD)  # a local account's right password
    assert r.status_code == 403 and NO_LOCAL in r.text
    assert "idbroker_session" not in r.headers.get("set-cookie", "")
    # Its users' organisation address still goes to the allowed provider.
    r = post_login(http, page, "bob@corp.example")
    assert r.status_code == 303 and "/idp/up1/start?" in r.headers["location"]


def test_without_local_accounts_the_local_endpoints_refuse_too(http: Any, upstreams: None, register: Any,
                                                               user: Any, provider: Any) -> None:
    """Hidden links are not enough: sign-up, forgot-password and a passkey sign-in reached directly
    for that client's parked request are refused, and nothing is created or mailed."""
    register("fed-only", first_party=True, idps=["up1"], local_accounts=False)
    page = login_page(http, "fed-only")
    interaction = interaction_of(page)
    r = http.get("/signup", params={"interaction": interaction})
    assert r.status_code == 403
    r = http.post("/signup", data={"csrf_token": csrf(page.text), "interaction": interaction,
                                   "email": "new@example.com", "password": PASSWORD})
    assert r.status_code == 403 and provider.users.by_email("new@example.com") is None
    r = http.get("/forgot-password", params={"interaction": interaction})
    assert r.status_code == 403 and NOT_AVAILABLE in r.text
    r = http.post("/forgot-password", data={"csrf_token": csrf(page.text), "interaction": interaction,
                                            "email": "alice@example.com"})
    assert r.status_code == 403 and NOT_AVAILABLE in r.text
    r = http.post("/login/passkey", json={"interaction": interaction, "credential": {}},
                  headers={"x-csrf-token": csrf(page.text)})
    assert r.status_code == 403 and "idbroker_session" not in r.headers.get("set-cookie", "")



def test_clients_cli_sets_shows_and_clears_the_choice(cli: Any) -> None:
    cli_ctx.provider().upstreams.add("up1", "fake", "First Upstream")
    r = cli("clients", "add", "--client-id", "c1", "--redirect-uri", "https://app.example/cb", "--idp", "up1",
            "--no-local-accounts", "--json")
    assert r.exit_code == 0, r.output
    shown = json.loads(cli("clients", "show", "c1", "--json").output)
    assert shown["idps"] == ["up1"] and shown["local_accounts"] is False
    table = cli("clients", "show", "c1").output
    assert "idps" in table and "up1" in table and "local_accounts" in table
    r = cli("clients", "update", "c1", "--all-idps", "--local-accounts", "--json")
    assert r.exit_code == 0, r.output
    shown = json.loads(cli("clients", "show", "c1", "--json").output)
    assert shown["idps"] is None and shown["local_accounts"] is True
    assert json.loads(cli("clients", "update", "c1", "--idp", "up1", "--json").output)["idps"] == ["up1"]
    assert json.loads(cli("clients", "update", "c1", "--idp", "", "--json").output)["idps"] is None
    bad = cli("clients", "update", "c1", "--idp", "nope", ok=False)
    assert bad.exit_code == 1 and "no upstream provider 'nope'" in bad.output and "Traceback" not in bad.output
