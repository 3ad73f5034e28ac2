"""Signing in through an upstream provider, the way a browser does, with a test-only kind filed in
UPSTREAMS for the test (the real kinds have their own suites against real peers): the button on
the sign-in page, /idp/{id}/start, the callback, the one door, the code and an ID token with the
`idp` claim and amr `fed`; idp_hint; the account-takeover case refused; linking after signing in,
unlinking, never the last way in; an upstream's refusal as a page and an audit event."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from mfa_helpers import csrf, sign_in
from sqlalchemy import select
from support import ISSUER, pkce_pair, query_of

from idbroker.federation import kinds
from idbroker.federation.base import ExternalIdentity, StartContext, UpstreamConfig, UpstreamError
from idbroker.federation.linking import IDENTITY_LINKED, UPSTREAM_FAILED
from idbroker.store.db import aware
from idbroker.store.models import AuditEvent, LinkedIdentity, User

UPSTREAM = "https://upstream.example/authorize"
DENIED = "The provider refused: %(provider)s"


class FakeUpstream:
    """Sends the browser to UPSTREAM with a state; on return checks it and believes what the
    callback's query says (sub, email, verified, amr, mfa) - the test plays the upstream."""

    kind = "fake"

    def __init__(self, config: UpstreamConfig):
        self.config = config

    async def start(self, ctx: StartContext) -> str:
        ctx.state["state"] = "s-" + str(len(ctx.callback_url))
        return UPSTREAM + "?" + urlencode({"state": ctx.state["state"], "redirect_uri": ctx.callback_url})

    async def finish(self, ctx: StartContext, params: Mapping[str, str]) -> ExternalIdentity:
        if "error" in params:
            raise UpstreamError(DENIED, f"upstream error {params['error']}")
        if params.get("state") != ctx.state.get("state"):
            raise UpstreamError(DENIED, "state mismatch")
        return ExternalIdentity(provider_id="whatever", subject=params["sub"], email=params.get("email"),
                                email_verified=params.get("verified") == "1", claims={"given_name": "Gus"},
                                groups=tuple(params.get("groups", "").split()), groups_asserted="groups" in params,
                                amr=tuple(params.get("amr", "pwd").split()), mfa=params.get("mfa") == "1")


@pytest.fixture(autouse=True)
def fake_kind(monkeypatch: Any) -> None:
    monkeypatch.setitem(kinds.UPSTREAMS, "fake", FakeUpstream)


@pytest.fixture
def upstream(provider: Any) -> Any:
    return provider.upstreams.add("up1", "fake", "Example Upstream")


@pytest.fixture
def app_client(register: Any) -> Any:
    return register("rp", first_party=True)


def authorize(http: Any, client: Any, **extra: str) -> tuple[Any, str]:
    verifier, challenge = pkce_pair()
    params = dict(client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code",
                  scope="openid email profile", state="rp-state", nonce="n-1", code_challenge=challenge,
                  code_challenge_method="S256", **extra)
    return http.get("/oauth2/authorize", params=params), verifier


def follow(http: Any, response: Any) -> Any:
    while response.status_code in (302, 303) and response.headers["location"].startswith(ISSUER):
        response = http.get(response.headers["location"])
    return response


def to_upstream(http: Any, start_path: str) -> dict[str, str]:
    """The start: the browser goes to the upstream; returns what it was sent with."""
    r = http.get(start_path)
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith(UPSTREAM)
    return query_of(r.headers["location"])


def come_back(http: Any, sent: dict[str, str], **answer: str) -> Any:
    path = urlsplit(sent["redirect_uri"]).path
    return http.get(path, params={"state": sent["state"], **answer})


def button(page: Any) -> str:
    found = re.search(r'href="(/idp/up1/start[^"]*)"', page.text)
    assert found, page.text
    return found.group(1).replace("&amp;", "&")


def redeem(http: Any, client: Any, location: str, verifier: str) -> dict[str, Any]:
    q = query_of(location)
    assert q.get("state") == "rp-state" and "code" in q, location
    return http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier}).json()


def id_token_claims(token: str) -> dict[str, Any]:
    """The payload (the signature is the token endpoint's suites' business)."""
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def events(provider: Any, kind: str) -> list[AuditEvent]:
    with provider.db.session(write=False) as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.kind == kind)))


def test_code_flow_through_the_button(http: Any, provider: Any, upstream: Any, app_client: Any) -> None:
    r, verifier = authorize(http, app_client)
    page = follow(http, r)
    assert page.status_code == 200 and "Continue with Example Upstream" in page.text
    sent = to_upstream(http, button(page))
    assert sent["redirect_uri"] == f"{ISSUER}/idp/up1/callback"
    r = follow(http, come_back(http, sent, sub="u-1", email="gus@example.com", verified="1"))
    assert r.status_code == 303 and r.headers["location"].startswith(app_client.redirect_uri), r.text
    tokens = redeem(http, app_client, r.headers["location"], verifier)
    claims = id_token_claims(tokens["id_token"])
    assert claims["idp"] == "up1" and "fed" in claims["amr"] and claims["nonce"] == "n-1"
    info = http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert info["idp"] == "up1" and info["email"] == "gus@example.com" and info["sub"] == claims["sub"]
    with provider.db.session(write=False) as s:
        user = s.scalars(select(User).where(User.email == "gus@example.com")).one()
        assert user.password_hash is None and user.email_verified and user.given_name == "Gus"
        assert s.get(LinkedIdentity, ("up1", "u-1")).user_id == user.id
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    with provider.db.session() as s:
        s.get(LinkedIdentity, ("up1", "u-1")).last_used_at = long_ago
    login = events(provider, "login.succeeded")[-1]
    assert login.detail["method"] == "idp:up1"
    # A second sign-in finds the same account by the link, whatever the address says now.
    http.cookies.clear()
    r, verifier = authorize(http, app_client, prompt="login")
    sent = to_upstream(http, button(follow(http, r)))
    r = follow(http, come_back(http, sent, sub="u-1", email="other@example.com", verified="1"))
    again = id_token_claims(redeem(http, app_client, r.headers["location"], verifier)["id_token"])
    assert again["sub"] == claims["sub"]
    with provider.db.session(write=False) as s:  # the link's use, written with the second sign-in
        assert aware(s.get(LinkedIdentity, ("up1", "u-1")).last_used_at) > long_ago


def test_idp_hint_goes_straight_to_the_provider(http: Any, upstream: Any, app_client: Any) -> None:
    r, _ = authorize(http, app_client, idp_hint="up1")
    assert r.status_code == 303 and r.headers["location"].startswith(f"{ISSUER}/idp/up1/start?interaction=")
    r = follow(http, r)
    assert r.status_code == 303 and r.headers["location"].startswith(UPSTREAM)
    r, _ = authorize(http, app_client, idp_hint="nobody")  # unknown: the sign-in page as usual
    assert follow(http, r).status_code == 200


def test_each_step_reads_in_one_trip_to_the_thread_pool(http: Any, provider: Any, upstream: Any, app_client: Any,
                                                         monkeypatch: Any) -> None:
    """The start and the callback read the parked request and the provider in one trip to the
    thread pool (each costs the event loop a hand-off), and the callback takes the provider's
    configuration from the built provider instead of opening its secrets again."""
    from idbroker.pages import upstream_sign_in

    trips: list[str] = []
    run_in_threadpool = upstream_sign_in.run_in_threadpool

    async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        trips.append(fn.__name__)
        return await run_in_threadpool(fn, *args, **kwargs)

    monkeypatch.setattr(upstream_sign_in, "run_in_threadpool", counting)
    r, _ = authorize(http, app_client, idp_hint="up1")
    provider.upstreams.get("up1")  # built before the spy: the callback finds it built
    opened: list[str] = []
    config = provider.upstreams.config
    monkeypatch.setattr(provider.upstreams, "config", lambda row: opened.append(row.id) or config(row))
    sent = to_upstream(http, r.headers["location"])
    assert trips == ["_reads"]
    r = come_back(http, sent, sub="u-9", email="trip@example.com", verified="1")
    assert r.status_code == 303 and r.headers["location"].startswith(app_client.redirect_uri), r.text
    assert trips == ["_reads", "_reads", "_finish"] and opened == []


def test_untrusted_address_of_an_existing_account_is_refused(http: Any, provider: Any, upstream: Any,
                                                             app_client: Any, user: Any) -> None:
    """The takeover case: the upstream says alice@example.com (verified even), but the provider is
    not trusted for addresses: no link, no merge, no new account; a page says to sign in first."""
    r, _ = authorize(http, app_client)
    sent = to_upstream(http, button(follow(http, r)))
    r = come_back(http, sent, sub="evil", email="alice@example.com", verified="1")
    assert r.status_code == 403 and "Sign in to it first" in r.text and "/login?interaction=" in r.text
    assert "idbroker_session" not in r.cookies
    with provider.db.session(write=False) as s:
        assert s.scalars(select(LinkedIdentity)).all() == []
        assert s.scalars(select(User)).all().__len__() == 1
    assert events(provider, UPSTREAM_FAILED)[-1].detail["idp"] == "up1"


def test_unverified_address_is_refused_even_when_trusted(http: Any, provider: Any, app_client: Any,
                                                         user: Any) -> None:
    provider.upstreams.add("up1", "fake", "Example Upstream", trust_email=True)
    r, _ = authorize(http, app_client)
    sent = to_upstream(http, button(follow(http, r)))
    assert come_back(http, sent, sub="evil", email="alice@example.com", verified="0").status_code == 403
    # Trusted and verified: linked to Alice.
    r, verifier = authorize(http, app_client)
    sent = to_upstream(http, button(follow(http, r)))
    r = follow(http, come_back(http, sent, sub="alice-up", email="Alice@Example.com", verified="1"))
    assert r.headers["location"].startswith(app_client.redirect_uri)
    assert id_token_claims(redeem(http, app_client, r.headers["location"], verifier)["id_token"])["sub"] == user.sub


def test_link_after_signing_in_then_unlink_but_never_the_last_way_in(http: Any, provider: Any, upstream: Any,
                                                                      user: Any) -> None:
    sign_in(http)
    page = http.get("/account/identities")
    assert page.status_code == 200 and 'action="/idp/up1/link"' in page.text
    r = http.post("/idp/up1/link", data={"csrf_token": csrf(page.text)})
    assert r.status_code == 303 and r.headers["location"].startswith(UPSTREAM)
    sent = query_of(r.headers["location"])
    r = come_back(http, sent, sub="alice-elsewhere", email="someone@else.example")
    assert r.status_code == 303 and r.headers["location"].endswith("/account/identities?linked=up1")
    page = http.get("/account/identities?linked=up1")
    assert "now linked" in page.text and 'action="/idp/up1/unlink"' in page.text
    assert events(provider, IDENTITY_LINKED)[-1].user_id == user.id
    # Signing in through it is now Alice.
    http.cookies.clear()
    sent = to_upstream(http, "/idp/up1/start")
    r = come_back(http, sent, sub="alice-elsewhere")
    assert r.status_code == 303 and "idbroker_session" in r.cookies
    # Unlink (she has a password: another way in).
    page = http.get("/account/identities")
    assert http.post("/idp/up1/unlink", data={"csrf_token": csrf(page.text)}).status_code == 303
    assert provider.linking.links(user.id) == []
    # Without a password, the one link stays.
    gus = provider.users.create("gus@example.com", None, email_verified=True)
    provider.linking._link_to(gus, ExternalIdentity("up1", "gus-up"))
    http.cookies.clear()
    sent = to_upstream(http, "/idp/up1/start")
    assert come_back(http, sent, sub="gus-up").status_code == 303
    page = http.get("/account/identities")
    r = http.post("/idp/up1/unlink", data={"csrf_token": csrf(page.text)})
    assert r.status_code == 400 and "only way to sign in" in r.text
    assert len(provider.linking.links(gus.id)) == 1


def test_upstream_errors_are_pages_with_a_way_back_and_audited(http: Any, provider: Any, upstream: Any,
                                                                app_client: Any) -> None:
    r, _ = authorize(http, app_client)
    page = follow(http, r)
    sent = to_upstream(http, button(page))
    r = come_back(http, sent, error="access_denied")
    assert r.status_code == 400 and "The provider refused: Example Upstream" in r.text
    assert re.search(r'href="/login\?interaction=[^"]+"', r.text)
    assert events(provider, UPSTREAM_FAILED)[-1].detail["reason"] == "upstream error access_denied"
    # No state cookie (another browser), a wrong state, an unknown provider: pages too.
    http.cookies.clear()
    assert http.get("/idp/up1/callback", params={"state": sent["state"], "sub": "x"}).status_code == 400
    assert http.get("/idp/nobody/start").status_code == 404
    assert http.get("/idp/up1/metadata").status_code == 404  # not a SAML provider
    sent = to_upstream(http, "/idp/up1/start")
    assert http.get("/idp/up1/callback", params={"state": "forged", "sub": "x"}).status_code == 400


def test_upstream_mfa_counts_only_when_trusted(http: Any, provider: Any, app_client: Any) -> None:
    from idbroker.federation.linking import session_methods

    untrusted = UpstreamConfig("up1", "fake", "Up")
    trusted = UpstreamConfig("up1", "fake", "Up", trust_mfa=True)
    said = ExternalIdentity("up1", "s", amr=("pwd", "otp", "mfa"), mfa=True)
    assert session_methods(said, untrusted) == (["pwd", "fed"], "urn:idbroker:acr:pwd")
    assert session_methods(said, trusted) == (["pwd", "otp", "mfa", "fed"], "urn:idbroker:acr:mfa")


def test_no_new_account_when_signup_is_off(http: Any, provider: Any, upstream: Any, register: Any) -> None:
    client = register("closed", first_party=True, signup_enabled=False)
    r, _ = authorize(http, client)
    sent = to_upstream(http, button(follow(http, r)))
    r = come_back(http, sent, sub="new", email="new@example.com", verified="1")
    assert r.status_code == 403 and "cannot be created" in r.text
    assert provider.users.by_email("new@example.com") is None


def test_registry_keeps_secrets_encrypted(provider: Any) -> None:
    row = provider.upstreams.add("up2", "fake", "Two", options={"issuer": "https://op.example"},
                                 secrets={"client_secret": "s3cr3t"}, domains=["Example.COM"])
    assert "s3cr3t" not in (row.secrets or "") and row.domains == ["example.com"]
    config = provider.upstreams.config(provider.upstreams.row("up2"))
    assert config.options == {"issuer": "https://op.example", "client_secret": "s3cr3t"}
    assert provider.upstreams.for_domain("bob@example.com").id == "up2"
    built = provider.upstreams.get("up2")[1]
    assert isinstance(built, FakeUpstream) and built.config.options["client_secret"] == "s3cr3t"


def test_the_accounts_groups_follow_what_the_upstream_asserts(http: Any, provider: Any, upstream: Any,
                                                              app_client: Any) -> None:
    """At each sign-in through a link, groups the upstream asserted replace the account's (a group
    removed upstream is removed here: groups decide roles); an answer without groups keeps them."""
    def sign_in(**answer: str) -> list[str]:
        http.cookies.clear()
        r, _ = authorize(http, app_client)
        sent = to_upstream(http, button(follow(http, r)))
        r = follow(http, come_back(http, sent, sub="u-g", email="grace@example.com", verified="1", **answer))
        assert r.status_code == 303 and r.headers["location"].startswith(app_client.redirect_uri), r.text
        return list(provider.users.by_email("grace@example.com").groups)

    assert sign_in(groups="admins staff") == ["admins", "staff"]
    assert sign_in(groups="staff") == ["staff"]
    assert sign_in() == ["staff"]          # nothing said about groups: kept
    assert sign_in(groups="") == []        # said: in none
