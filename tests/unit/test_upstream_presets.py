"""Presets (federation/presets.py) and the provider quirks they switch on, without network: the
upstreams are httpx MockTransports answering what the real providers answer."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey
from support import run_coroutine

from idbroker.federation.base import StartContext, UpstreamConfig, UpstreamError
from idbroker.federation.oauth import OAuth2Upstream, pick_email
from idbroker.federation.openid_connect import (
    APPLE_MAX_SECRET_SECONDS,
    OpenIDConnectUpstream,
    apple_client_secret,
)
from idbroker.federation.presets import PRESETS, expand

CALLBACK = "https://broker.example/idp/up1/callback"
TENANT = "9b1c3a2e-0000-4000-8000-00000000aaaa"
OTHER_TENANT = "9b1c3a2e-0000-4000-8000-00000000bbbb"
MS_TEMPLATE = "https://login.microsoftonline.com/{tenantid}/v2.0"

# GET https://api.github.com/user/emails, as GitHub answers it (trimmed to the fields used).
GITHUB_EMAILS = [
    {"email": "octo@users.noreply.github.com", "primary": False, "verified": True, "visibility": None},
    {"email": "octocat@example.com", "primary": True, "verified": True, "visibility": "public"},
    {"email": "old@example.org", "primary": False, "verified": False, "visibility": None},
]


def test_every_preset_expands_to_a_kind_with_what_it_needs() -> None:
    for name, preset in PRESETS.items():
        kind, options = expand(name, {"client_id": "c", "client_secret": "s"})
        assert kind == preset["kind"] and options["preset"] == name
        needed = {"issuer"} if kind == "oidc" else {"authorize_url", "token_url", "userinfo_url"}
        assert needed <= set(options)
        assert options["scopes"] and options["client_id"] == "c"


def test_operator_options_win_and_claim_mappings_merge() -> None:
    kind, options = expand("gitlab", {"issuer": "https://gitlab.example.com", "client_id": "c",
                                      "claims": ["groups=groups_direct"], "scopes": None})
    assert kind == "oidc" and options["issuer"] == "https://gitlab.example.com"
    assert options["claims"] == {"preferred_username": "nickname", "groups": "groups_direct"}
    assert options["scopes"] == ["openid", "email", "profile"]  # None means "not given"
    assert expand("oidc", {"issuer": "https://id.example", "claims": ["a=b"]}) == \
        ("oidc", {"issuer": "https://id.example", "claims": {"a": "b"}})
    assert expand("ldap", {"url": "ldaps://dc.example"}) == ("ldap", {"url": "ldaps://dc.example"})
    with pytest.raises(ValueError, match="LOCAL=UPSTREAM"):
        expand("oidc", {"claims": ["no-equals-sign"]})


def test_microsoft_tenant_picks_the_discovery_endpoint() -> None:
    assert expand("microsoft", {})[1]["issuer"] == "https://login.microsoftonline.com/common/v2.0"
    _, options = expand("microsoft", {"tenant": TENANT, "tenants": [TENANT]})
    assert options["issuer"] == f"https://login.microsoftonline.com/{TENANT}/v2.0"


class Upstream:
    """A provider on an httpx MockTransport: discovery, JWKS, and whatever `routes` add."""

    def __init__(self, issuer: str, metadata_issuer: str | None = None, **routes: Any):
        self.key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
        self.routes = {"/.well-known/openid-configuration": {
            "issuer": metadata_issuer or issuer, "authorization_endpoint": issuer + "/authorize",
            "token_endpoint": issuer + "/token", "jwks_uri": issuer + "/keys",
            "id_token_signing_alg_values_supported": ["RS256", "ES256"]},
            "/keys": {"keys": [self.key.as_dict(private=False)]}, **routes}
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path.split("/v2.0", 1)[-1] if "/v2.0" in request.url.path else request.url.path
        answer = self.routes.get(path)
        return httpx.Response(200, json=answer) if answer is not None else httpx.Response(404)

    def id_token(self, **claims: Any) -> str:
        return jwt.encode({"alg": "ES256", "kid": "k1"}, claims, self.key)


def run(coro_factory: Any, upstream: Upstream) -> Any:
    async def main() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(upstream.handler)) as http:
            return await coro_factory(http)
    return run_coroutine(main())


def microsoft(http: httpx.AsyncClient, **extra: Any) -> OpenIDConnectUpstream:
    _, options = expand("microsoft", {"client_id": "app-1", "client_secret": "s", **extra})
    return OpenIDConnectUpstream(UpstreamConfig(id="entra", kind="oidc", name="Entra", options=options), http=http)


def ms_claims(tid: str | None, iss_tid: str | None = None, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": MS_TEMPLATE.replace("{tenantid}", iss_tid or tid or ""), "aud": "app-1", "sub": "s-1",
              "iat": now, "exp": now + 3600, "nonce": "n-1", **extra}
    if tid:
        claims["tid"] = tid
    return claims


@pytest.mark.parametrize(("claims", "allow", "refusal"), [
    (ms_claims(TENANT), None, None),
    (ms_claims(TENANT), [TENANT], None),
    (ms_claims(OTHER_TENANT), [TENANT], "allow-list"),
    (ms_claims(TENANT, iss_tid=OTHER_TENANT), None, "is not"),   # iss of another tenant than tid
    (ms_claims(None, iss_tid=TENANT), None, "without tid"),
])
def test_microsoft_multi_tenant_issuer_and_tid_allow_list(claims: dict[str, Any], allow: list[str] | None,
                                                          refusal: str | None) -> None:
    now = int(time.time())  # the parameters were made at collection, maybe minutes ago
    claims = {**claims, "iat": now, "exp": now + 3600}
    upstream = Upstream("https://login.microsoftonline.com/common/v2.0", metadata_issuer=MS_TEMPLATE)
    token = upstream.id_token(**claims)

    async def verify(http: httpx.AsyncClient) -> dict[str, Any]:
        return await microsoft(http, **({"tenants": allow} if allow else {})).verify_id_token(token, "n-1")
    if refusal is None:
        assert run(verify, upstream)["tid"] == TENANT
    else:
        with pytest.raises(UpstreamError) as caught:
            run(verify, upstream)
        assert refusal in (caught.value.message + caught.value.detail)


def test_template_issuer_is_refused_without_the_microsoft_quirk() -> None:
    upstream = Upstream("https://id.example", metadata_issuer="https://id.example/{tenantid}")

    async def start(http: httpx.AsyncClient) -> str:
        config = UpstreamConfig(id="x", kind="oidc", name="X",
                                options={"issuer": "https://id.example", "client_id": "c"})
        return await OpenIDConnectUpstream(config, http=http).start(StartContext(callback_url=CALLBACK))
    with pytest.raises(UpstreamError, match="Discovery"):
        run(start, upstream)


def test_github_primary_verified_email_from_the_emails_api() -> None:
    assert pick_email(GITHUB_EMAILS) == ("octocat@example.com", True)
    assert pick_email([{**GITHUB_EMAILS[1], "verified": False}]) == ("octocat@example.com", False)
    assert pick_email({"message": "Bad credentials"}) == (None, False)
    user = {"id": 583231, "login": "octocat", "name": "The Octocat", "email": None,
            "avatar_url": "https://avatars.githubusercontent.com/u/583231"}
    upstream = Upstream("https://github.com", **{
        "/login/oauth/access_token": {"access_token": "gho_x", "token_type": "bearer", "scope": "read:user,user:email"},
        "/user": user, "/user/emails": GITHUB_EMAILS})

    async def sign_in(http: httpx.AsyncClient) -> Any:
        kind, options = expand("github", {"client_id": "gh", "client_secret": "sec"})
        github = OAuth2Upstream(UpstreamConfig(id="gh", kind=kind, name="GitHub", options=options), http=http)
        ctx = StartContext(callback_url=CALLBACK)
        await github.start(ctx)
        return await github.finish(ctx, {"code": "c0de", "state": ctx.state["state"]})
    identity = run(sign_in, upstream)
    assert identity.subject == "583231" and identity.email == "octocat@example.com" and identity.email_verified
    assert identity.claims["preferred_username"] == "octocat" and identity.claims["name"] == "The Octocat"
    token_request = next(r for r in upstream.requests if r.url.path == "/login/oauth/access_token")
    assert b"client_secret=sec" in token_request.content and b"code_verifier=" in token_request.content
    assert all(r.url.host == "api.github.com" for r in upstream.requests if r.url.path.startswith("/user"))


def test_github_token_error_answered_with_200_is_refused() -> None:
    upstream = Upstream("https://github.com", **{"/login/oauth/access_token": {"error": "bad_verification_code"}})

    async def sign_in(http: httpx.AsyncClient) -> Any:
        _, options = expand("github", {"client_id": "gh", "client_secret": "sec"})
        github = OAuth2Upstream(UpstreamConfig(id="gh", kind="oauth2", name="GitHub", options=options), http=http)
        ctx = StartContext(callback_url=CALLBACK)
        await github.start(ctx)
        return await github.finish(ctx, {"code": "c0de", "state": ctx.state["state"]})
    with pytest.raises(UpstreamError, match="bad_verification_code"):
        run(sign_in, upstream)


def p8_key() -> tuple[str, ec.EllipticCurvePublicKey]:
    """A key as Apple hands it out (AuthKey_XXXXXXXXXX.p8: PKCS#8 PEM, P-256)."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return pem, private.public_key()


def test_apple_client_secret_is_an_es256_jwt_of_at_most_six_months() -> None:
    pem, public = p8_key()
    now = time.time()
    secret = apple_client_secret(team_id="TEAM123456", key_id="KEY1234567", client_id="com.example.web",
                                 private_key=pem, now=now, ttl=APPLE_MAX_SECRET_SECONDS)
    public_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    token = jwt.decode(secret, ECKey.import_key(public_pem), algorithms=["ES256"])
    assert (token.header["alg"], token.header["kid"]) == ("ES256", "KEY1234567")
    claims = token.claims
    assert claims["iss"] == "TEAM123456" and claims["sub"] == "com.example.web"
    assert claims["aud"] == "https://appleid.apple.com" and claims["iat"] == int(now)
    assert claims["exp"] - claims["iat"] == 15777000
    with pytest.raises(ValueError, match="six months"):
        apple_client_secret(team_id="T", key_id="K", client_id="c", private_key=pem, now=now,
                            ttl=APPLE_MAX_SECRET_SECONDS + 1)


def test_apple_preset_posts_a_fresh_jwt_secret_and_takes_the_first_login_name() -> None:
    pem, _ = p8_key()
    upstream = Upstream("https://appleid.apple.com")
    upstream.routes["/.well-known/openid-configuration"]["id_token_signing_alg_values_supported"] = ["ES256"]
    now = int(time.time())

    async def sign_in(http: httpx.AsyncClient) -> Any:
        kind, options = expand("apple", {"client_id": "com.example.web", "team_id": "TEAM123456",
                                         "key_id": "KEY1234567", "private_key": pem})
        apple = OpenIDConnectUpstream(UpstreamConfig(id="apple", kind=kind, name="Apple", options=options),
                                      http=http)
        ctx = StartContext(callback_url=CALLBACK)
        url = await apple.start(ctx)
        assert "response_mode=form_post" in url and "scope=openid%20name%20email" in url
        upstream.routes["/token"] = {"access_token": "a", "token_type": "bearer", "id_token": upstream.id_token(
            iss="https://appleid.apple.com", aud="com.example.web", sub="001234.abcd", iat=now, exp=now + 600,
            nonce=ctx.state["nonce"], email="x@privaterelay.appleid.com", email_verified="true")}
        user = json.dumps({"name": {"firstName": "Ada", "lastName": "Lovelace"}, "email": "ignored@example.com"})
        return await apple.finish(ctx, {"code": "c", "state": ctx.state["state"], "user": user})
    identity = run(sign_in, upstream)
    assert identity.subject == "001234.abcd" and identity.email == "x@privaterelay.appleid.com"
    assert identity.email_verified and identity.claims["name"] == "Ada Lovelace"
    form = dict(httpx.QueryParams(next(r for r in upstream.requests if r.url.path == "/token").content.decode()))
    assert form["client_id"] == "com.example.web" and form["client_secret"].count(".") == 2
