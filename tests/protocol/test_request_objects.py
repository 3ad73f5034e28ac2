"""Request objects (RFC 9101 / OIDC Core §6) at the authorization and PAR endpoints."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from support import ISSUER, pkce_pair, query_of

KEY = ECKey.generate_key("P-256", parameters={"kid": "rp-1"})
OTHER_KEY = ECKey.generate_key("P-256", parameters={"kid": "rp-1"})


@pytest.fixture
def rp(register: Any) -> Any:
    return register("rp", jwks={"keys": [KEY.as_dict(private=False)]})


@pytest.fixture
def strict(register: Any) -> Any:
    return register("strict", jwks={"keys": [KEY.as_dict(private=False)]}, require_signed_request_object=True)


def claims_for(client: Any, **extra: Any) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    now = int(time.time())
    return {"iss": client.client_id, "aud": ISSUER, "client_id": client.client_id, "iat": now, "exp": now + 300,
            "jti": uuid.uuid4().hex, "response_type": "code", "redirect_uri": client.redirect_uri,
            "scope": "openid profile", "state": "inside", "nonce": "n-1", "code_challenge": challenge,
            "code_challenge_method": "S256", "max_age": 3600} | extra


def signed(claims: dict[str, Any], key: ECKey = KEY) -> str:
    return jwt.encode({"alg": "ES256", "typ": "oauth-authz-req+jwt", "kid": "rp-1"}, claims, key)


def unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'none'})}.{part(claims)}."


def authorize(http: Any, client: Any, request: str, **outer: str) -> Any:
    return http.get("/oauth2/authorize", params={"client_id": client.client_id, "request": request, **outer})


def test_signed_request_object_parameters_win(http: Any, flow: Any, rp: Any, user: Any) -> None:
    """RFC 9101 §5: only the object's parameters are used (the outer state is ignored)."""
    page = flow.follow(authorize(http, rp, signed(claims_for(rp)), state="outside", scope="openid email"))
    page = flow.login(page)
    page = flow.consent(page)
    q = query_of(page.headers["location"])
    assert q["state"] == "inside" and "code" in q


def test_unsigned_request_object_accepted_unless_signing_required(http: Any, flow: Any, rp: Any,
                                                                   strict: Any) -> None:
    page = flow.follow(authorize(http, rp, unsigned(claims_for(rp))))
    assert page.status_code == 200 and 'autocomplete="current-password"' in page.text
    refused = authorize(http, strict, unsigned(claims_for(strict)), redirect_uri=strict.redirect_uri, state="o")
    q = query_of(refused.headers["location"])
    assert q["error"] == "invalid_request_object" and q["state"] == "o"


def test_client_requiring_signed_objects_refuses_plain_requests(http: Any, strict: Any) -> None:
    answer = http.get("/oauth2/authorize", params={
        "client_id": "strict", "redirect_uri": strict.redirect_uri, "response_type": "code", "scope": "openid",
        "code_challenge": pkce_pair()[1], "code_challenge_method": "S256"})
    assert query_of(answer.headers["location"])["error"] == "invalid_request_object"


@pytest.mark.parametrize("change", [
    {"iss": "someone-else"},
    {"aud": "https://other.example"},
    {"exp": int(time.time()) - 10},
    {"nbf": int(time.time()) + 3600},
    {"client_id": "strict"},
], ids=["iss", "aud", "exp", "nbf", "client_id"])
def test_claim_checks(http: Any, rp: Any, strict: Any, change: dict[str, Any]) -> None:
    answer = authorize(http, rp, signed(claims_for(rp) | change), redirect_uri=rp.redirect_uri)
    assert query_of(answer.headers["location"])["error"] == "invalid_request_object"


def test_wrong_key_and_replayed_jti_are_refused(http: Any, flow: Any, rp: Any) -> None:
    forged = authorize(http, rp, signed(claims_for(rp), OTHER_KEY), redirect_uri=rp.redirect_uri)
    assert query_of(forged.headers["location"])["error"] == "invalid_request_object"
    token = signed(claims_for(rp))
    assert flow.follow(authorize(http, rp, token)).status_code == 200
    replay = authorize(http, rp, token, redirect_uri=rp.redirect_uri)
    assert query_of(replay.headers["location"])["error"] == "invalid_request_object"


def test_encrypted_request_objects_are_refused_clearly(http: Any, rp: Any) -> None:
    answer = authorize(http, rp, "a.b.c.d.e", redirect_uri=rp.redirect_uri)
    q = query_of(answer.headers["location"])
    assert q["error"] == "invalid_request_object" and "encrypted" in q["error_description"]


def test_untrusted_redirect_shows_the_error_page(http: Any, rp: Any) -> None:
    answer = authorize(http, rp, signed(claims_for(rp), OTHER_KEY), redirect_uri="https://evil.example/cb")
    assert answer.status_code == 400 and "evil.example" not in answer.headers.get("location", "")


def test_request_object_through_par(http: Any, flow: Any, register: Any, user: Any) -> None:
    client = register("pushy", jwks={"keys": [KEY.as_dict(private=False)]}, require_signed_request_object=True)
    plain = http.post("/oauth2/par", auth=client.basic, data={"response_type": "code", "scope": "openid"})
    assert plain.status_code == 400 and plain.json()["error"] == "invalid_request_object"
    pushed = http.post("/oauth2/par", auth=client.basic, data={"request": signed(claims_for(client))})
    assert pushed.status_code == 201, pushed.text
    page = flow.authorize(client_id=client.client_id, request_uri=pushed.json()["request_uri"])
    page = flow.consent(flow.login(page))
    assert query_of(page.headers["location"])["state"] == "inside"


def test_discovery_advertises_request_objects(http: Any) -> None:
    meta = http.get("/.well-known/openid-configuration").json()
    assert meta["request_parameter_supported"] is True
    assert "ES256" in meta["request_object_signing_alg_values_supported"]
