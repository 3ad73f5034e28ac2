"""JWT Secured Authorization Response Mode (JARM): response_mode jwt, query.jwt, fragment.jwt,
form_post.jwt; the response parameters inside one JWT the broker signs (JARM §2.1)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from support import ISSUER, fragment_of, pkce_pair, query_of

HYBRID = "code id_token"


@pytest.fixture
def client(register: Any) -> Any:
    return register("jarm", first_party=True, response_types=["code", HYBRID],
                    grant_types=["authorization_code", "refresh_token", "implicit"])


def params_for(client: Any, **extra: str) -> tuple[dict[str, str], str]:
    verifier, challenge = pkce_pair()
    params = dict(client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code",
                  scope="openid email", state="s-j", nonce="n-j", code_challenge=challenge,
                  code_challenge_method="S256") | extra
    return params, verifier


def decode(http: Any, token: str, client_id: str = "jarm") -> Any:
    keys = KeySet.import_key_set(http.get("/.well-known/jwks.json").json())
    decoded = jwt.decode(token, keys, algorithms=["RS256", "ES256"])
    claims = decoded.claims
    assert claims["iss"] == ISSUER and claims["aud"] == client_id
    assert time.time() < claims["exp"] <= time.time() + 600  # JARM §2.1: short-lived, at most 10 minutes
    return decoded


def signed_in(flow: Any, **params: str) -> Any:
    page = flow.login(flow.authorize(**params))
    assert page.status_code in (200, 303), page.text
    return page


def test_discovery_advertises_jarm(http: Any) -> None:
    m = http.get("/.well-known/openid-configuration").json()
    assert {"jwt", "query.jwt", "fragment.jwt", "form_post.jwt"} <= set(m["response_modes_supported"])
    assert m["authorization_signing_alg_values_supported"] == ["RS256", "ES256"]


def test_jwt_mode_for_code_is_query_jwt_and_the_code_redeems(http: Any, flow: Any, client: Any,
                                                               user: Any) -> None:
    params, verifier = params_for(client, response_mode="jwt")
    page = signed_in(flow, **params)
    assert page.status_code == 303
    q = query_of(page.headers["location"])
    assert set(q) == {"response"}  # everything inside the JWT, nothing beside it
    decoded = decode(http, q["response"])
    assert decoded.header["alg"] == "RS256"  # JARM §3: the default
    assert decoded.claims["state"] == "s-j" and decoded.claims["code"]
    tokens = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": decoded.claims["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier})
    assert tokens.status_code == 200, tokens.text


def test_fragment_jwt(http: Any, flow: Any, client: Any, user: Any) -> None:
    params, _ = params_for(client, response_mode="fragment.jwt")
    location = signed_in(flow, **params).headers["location"]
    assert "?" not in location
    claims = decode(http, fragment_of(location)["response"]).claims
    assert claims["code"] and claims["state"] == "s-j"


def test_form_post_jwt(http: Any, flow: Any, client: Any, user: Any) -> None:
    params, _ = params_for(client, response_mode="form_post.jwt")
    page = signed_in(flow, **params)
    assert page.status_code == 200 and f'action="{client.redirect_uri}"' in page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    assert set(fields) == {"response"}
    assert decode(http, fields["response"]).claims["state"] == "s-j"


def test_jwt_mode_for_hybrid_is_fragment_jwt(http: Any, flow: Any, client: Any, user: Any) -> None:
    params, _ = params_for(client, response_type=HYBRID, response_mode="jwt")
    location = signed_in(flow, **params).headers["location"]
    claims = decode(http, fragment_of(location)["response"]).claims
    assert claims["code"] and claims["id_token"] and claims["state"] == "s-j"


def test_query_jwt_is_refused_for_tokens_in_the_front_channel(http: Any, client: Any) -> None:
    """JARM §2.3.1: query.jwt must not carry a response type that returns a token; the error
    itself travels as a JWT in the fragment."""
    params, _ = params_for(client, response_type=HYBRID, response_mode="query.jwt")
    answer = http.get("/oauth2/authorize", params=params)
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert "?" not in location
    claims = decode(http, fragment_of(location)["response"]).claims
    assert claims["error"] == "invalid_request" and claims["state"] == "s-j"


def test_errors_travel_as_jwt(http: Any, client: Any) -> None:
    params, _ = params_for(client, response_mode="jwt", scope="openid not-allowed")
    answer = http.get("/oauth2/authorize", params=params)
    q = query_of(answer.headers["location"])
    assert set(q) == {"response"}
    claims = decode(http, q["response"]).claims
    assert claims["error"] == "invalid_scope" and claims["state"] == "s-j"


def test_client_alg_es256(http: Any, flow: Any, register: Any, user: Any) -> None:
    es = register("jarm-es", first_party=True, authorization_signed_response_alg="ES256")
    params, _ = params_for(es, response_mode="query.jwt")
    q = query_of(signed_in(flow, **params).headers["location"])
    assert decode(http, q["response"], "jarm-es").header["alg"] == "ES256"


def test_plain_modes_unchanged(http: Any, flow: Any, client: Any, user: Any) -> None:
    params, _ = params_for(client)
    q = query_of(signed_in(flow, **params).headers["location"])
    assert "response" not in q and q["iss"] == ISSUER and q["code"]


def test_cli_authorization_alg(cli: Any) -> None:
    r = cli("clients", "add", "--client-id", "c1", "--redirect-uri", "https://app.example/cb",
            "--authorization-alg", "ES256", "--json")
    assert r.exit_code == 0, r.output
    bad = cli("clients", "update", "c1", "--authorization-alg", "HS256", ok=False)
    assert bad.exit_code == 1 and "authorization_signed_response_alg" in bad.output
