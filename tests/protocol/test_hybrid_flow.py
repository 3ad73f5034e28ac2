"""The hybrid flow (OIDC Core §3.3): `code id_token`, `code token`, `code id_token token`, with
c_hash / at_hash, the fragment as the default response mode and a nonce whenever an ID token
travels in the front channel."""

from __future__ import annotations

import pytest
from joserfc import jwt
from support import ISSUER, fragment_of, pkce_pair

from idbroker.oidc.id_token import half_hash

HYBRID = ["code id_token", "code token", "code id_token token"]


@pytest.fixture
def client(register):
    return register("hyb", first_party=True, response_types=["code", *HYBRID],
                    grant_types=["authorization_code", "refresh_token", "implicit"])


def _params(client, response_type, **extra):
    verifier, challenge = pkce_pair()
    params = dict(client_id=client.client_id, redirect_uri=client.redirect_uri, response_type=response_type,
                  scope="openid email", state="s-h", nonce="n-h", code_challenge=challenge,
                  code_challenge_method="S256")
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}, verifier


def _run(flow, client, response_type, **extra):
    params, verifier = _params(client, response_type, **extra)
    r = flow.login(flow.authorize(**params))
    assert r.status_code == 303, r.text
    return r.headers["location"], verifier


@pytest.mark.parametrize("response_type", HYBRID)
def test_hybrid_response_in_the_fragment(http, flow, client, user, provider, response_type):
    location, verifier = _run(flow, client, response_type)
    assert "?" not in location.split("#")[0][len(client.redirect_uri):]
    f = fragment_of(location)
    assert f["state"] == "s-h" and f["iss"] == ISSUER and f["code"]
    assert ("access_token" in f) == ("token" in response_type.split())
    assert ("id_token" in f) == ("id_token" in response_type.split())
    if "id_token" in f:
        c = jwt.decode(f["id_token"], provider.keys.public_keyset()).claims
        assert c["nonce"] == "n-h" and c["aud"] == "hyb"
        assert c["c_hash"] == half_hash(f["code"], "RS256")
        if "access_token" in f:
            assert c["at_hash"] == half_hash(f["access_token"], "RS256")
        else:
            assert "at_hash" not in c
    # The code is redeemed at the token endpoint as in the code flow (with PKCE).
    r = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": f["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier})
    assert r.status_code == 200, r.text
    assert jwt.decode(r.json()["id_token"], provider.keys.public_keyset()).claims["nonce"] == "n-h"


def test_nonce_required_when_an_id_token_is_in_the_front_channel(http, client):
    params, _ = _params(client, "code id_token", nonce=None)
    r = http.get("/oauth2/authorize", params=params)
    assert r.status_code == 303
    f = fragment_of(r.headers["location"])
    assert f["error"] == "invalid_request" and "nonce" in f["error_description"]


def test_code_token_needs_no_nonce(http, flow, client, user):
    location, _ = _run(flow, client, "code token", nonce=None)
    assert "access_token" in fragment_of(location)


def test_tokens_never_in_the_query(http, client):
    params, _ = _params(client, "code id_token", response_mode="query")
    r = http.get("/oauth2/authorize", params=params)
    assert fragment_of(r.headers["location"])["error"] == "invalid_request"


def test_form_post_carries_the_hybrid_response(http, flow, client, user):
    params, _ = _params(client, "code id_token", response_mode="form_post")
    page = flow.login(flow.authorize(**params))
    assert page.status_code == 200 and 'name="code"' in page.text and 'name="id_token"' in page.text


def test_client_not_registered_for_hybrid_is_refused(http, register):
    plain = register("plain", first_party=True)
    params, _ = _params(plain, "code id_token")
    r = http.get("/oauth2/authorize", params=params)
    assert fragment_of(r.headers["location"])["error"] == "unauthorized_client"


def test_hybrid_registration_needs_the_authorization_code_grant(register):
    from idbroker.clients.metadata import InvalidClientMetadata

    with pytest.raises(InvalidClientMetadata, match="authorization_code"):
        register("bad", response_types=["code id_token"], grant_types=["implicit"])


def test_discovery_lists_the_hybrid_types(http):
    m = http.get("/.well-known/openid-configuration").json()
    assert set(HYBRID) <= set(m["response_types_supported"])
