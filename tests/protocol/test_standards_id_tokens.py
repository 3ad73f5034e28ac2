"""Correct defaults (issue 15): RS256 ID tokens for a client that registered no algorithm (OIDC
Registration §2), ES256 on request, access tokens in the broker's algorithm; signed userinfo
(`userinfo_signed_response_alg`, OIDC Core §5.3.2)."""

from __future__ import annotations

import pytest
from joserfc import jwt
from support import ISSUER

from idbroker.clients.metadata import ClientMetadata, InvalidClientMetadata


def _tokens(http, flow, client, scope="openid email"):
    q, verifier = flow.code_flow(client, scope=scope)
    r = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier})
    assert r.status_code == 200, r.text
    return r.json()


def _decode(provider, token):
    return jwt.decode(token, provider.keys.public_keyset(), algorithms=["ES256", "RS256"])


def test_client_registering_no_alg_gets_rs256_id_tokens(http, flow, register, user, provider):
    client = register(first_party=True)  # no id_token_signed_response_alg
    body = _tokens(http, flow, client)
    assert _decode(provider, body["id_token"]).header["alg"] == "RS256"
    # Access tokens keep the broker's configured algorithm (signing_alg, ES256 by default).
    assert _decode(provider, body["access_token"]).header["alg"] == "ES256"


def test_es256_only_when_asked(http, flow, register, user, provider):
    client = register(first_party=True, id_token_signed_response_alg="ES256")
    body = _tokens(http, flow, client)
    assert _decode(provider, body["id_token"]).header["alg"] == "ES256"


def test_discovery_lists_both_algorithms_rs256_first(http):
    m = http.get("/.well-known/openid-configuration").json()
    assert m["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]
    assert set(m["userinfo_signing_alg_values_supported"]) == {"RS256", "ES256"}


def test_userinfo_is_plain_json_by_default(http, flow, register, user):
    client = register(first_party=True)
    body = _tokens(http, flow, client)
    r = http.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
    assert r.headers["content-type"].startswith("application/json") and r.json()["email"] == "alice@example.com"


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_signed_userinfo_is_a_jwt(http, flow, register, user, provider, alg):
    client = register(first_party=True, userinfo_signed_response_alg=alg)
    body = _tokens(http, flow, client)
    r = http.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/jwt"
    assert r.headers["cache-control"] == "no-store"
    token = _decode(provider, r.text)
    assert token.header["alg"] == alg
    c = token.claims
    assert c["iss"] == ISSUER and c["aud"] == client.client_id and c["sub"] == user.sub
    assert c["email"] == "alice@example.com"


def test_unknown_algorithms_are_refused_at_registration():
    with pytest.raises(InvalidClientMetadata):
        ClientMetadata(client_id="x", redirect_uris=["https://a.example/cb"], userinfo_signed_response_alg="HS256"
                       ).validate()
    assert ClientMetadata(client_id="x").id_token_signed_response_alg == "RS256"
