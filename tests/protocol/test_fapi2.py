"""FAPI 2.0 Security Profile as a per-client switch (`--fapi2`, oauth2/fapi.py): PAR, PKCE S256,
response_type code, private_key_jwt, DPoP-bound tokens and refresh tokens, RFC 9207 `iss`, codes
valid at most 60 seconds."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import select, update
from support import ISSUER, pkce_pair, query_of
from test_dpop import Holder

from idbroker.clients.metadata import ClientMetadata, InvalidClientMetadata
from idbroker.store.db import aware
from idbroker.store.models import AuthorizationCode, Client

KEY = ECKey.generate_key("P-256", parameters={"kid": "fapi-1"})
JWKS = {"keys": [KEY.as_dict(private=False)]}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"code_ttl": 600}  # the broker's codes live longer; a FAPI 2.0 client's at most 60 s


@pytest.fixture
def fapi(register: Any) -> Any:
    return register("fapi", first_party=True, token_endpoint_auth_method="private_key_jwt", jwks=JWKS, fapi2=True)


def assertion(client_id: str = "fapi") -> dict[str, str]:
    now = int(time.time())
    token = jwt.encode({"alg": "ES256", "kid": "fapi-1"}, {
        "iss": client_id, "sub": client_id, "aud": ISSUER, "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}, KEY)
    return {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": token}


def push(http: Any, client: Any, **params: str) -> Any:
    verifier, challenge = pkce_pair()
    data = dict(response_type="code", redirect_uri=client.redirect_uri, scope="openid profile offline_access",
                state="s-f", nonce="n-f", code_challenge=challenge, code_challenge_method="S256") | params
    answer = http.post("/oauth2/par", data={k: v for k, v in data.items() if v is not None} | assertion())
    answer.verifier = verifier  # type: ignore[attr-defined]
    return answer


def code_via_par(http: Any, flow: Any, client: Any) -> tuple[str, str]:
    pushed = push(http, client)
    assert pushed.status_code == 201, pushed.text
    page = flow.authorize(client_id=client.client_id, request_uri=pushed.json()["request_uri"])
    page = flow.login(page)
    assert page.status_code == 303, page.text
    q = query_of(page.headers["location"])
    assert q["iss"] == ISSUER and q["state"] == "s-f"  # RFC 9207
    return q["code"], pushed.verifier  # type: ignore[attr-defined]


def redeem(http: Any, client: Any, code: str, verifier: str, proof: str | None, auth: dict[str, str] | None = None,
           basic: Any = None) -> Any:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
            "code_verifier": verifier} | (assertion() if auth is None else auth)
    return http.post("/oauth2/token", data=data, headers={"DPoP": proof} if proof else {}, auth=basic)


def test_full_fapi2_flow_binds_tokens_and_refresh_tokens(http: Any, flow: Any, fapi: Any, user: Any) -> None:
    code, verifier = code_via_par(http, flow, fapi)
    holder = Holder()
    answer = redeem(http, fapi, code, verifier, holder.proof())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "DPoP" and body["refresh_token"]
    # The refresh token is sender-constrained: no proof, or another key's, is refused.
    refresh = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    bare = http.post("/oauth2/token", data=refresh | assertion())
    assert bare.status_code == 400 and bare.json()["error"] == "invalid_dpop_proof"
    other = http.post("/oauth2/token", data=refresh | assertion(), headers={"DPoP": Holder().proof()})
    assert other.status_code == 400 and other.json()["error"] == "invalid_grant"
    mine = http.post("/oauth2/token", data=refresh | assertion(), headers={"DPoP": holder.proof()})
    assert mine.status_code == 200 and mine.json()["token_type"] == "DPoP"


def test_authorization_request_must_be_pushed(http: Any, fapi: Any) -> None:
    _, challenge = pkce_pair()
    answer = http.get("/oauth2/authorize", params={
        "client_id": "fapi", "redirect_uri": fapi.redirect_uri, "response_type": "code", "scope": "openid",
        "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"})
    q = query_of(answer.headers["location"])
    assert q["error"] == "invalid_request" and "PAR" in q["error_description"]


def test_pkce_is_required(http: Any, fapi: Any) -> None:
    answer = push(http, fapi, code_challenge=None, code_challenge_method=None)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"
    assert "code_challenge" in answer.json()["error_description"]


def test_code_lives_at_most_60_seconds(http: Any, flow: Any, fapi: Any, provider: Any, user: Any) -> None:
    code_via_par(http, flow, fapi)
    with provider.db.session(write=False) as s:
        row = s.scalars(select(AuthorizationCode)).one()
        assert aware(row.expires_at) - aware(row.created_at) <= timedelta(seconds=60)


def test_other_clients_keep_the_configured_code_lifetime(flow: Any, register: Any, provider: Any,
                                                          user: Any) -> None:
    flow.code_flow(register("plain", first_party=True))
    with provider.db.session(write=False) as s:
        row = s.scalars(select(AuthorizationCode)).one()
        assert aware(row.expires_at) - aware(row.created_at) > timedelta(seconds=500)


def test_token_request_needs_a_dpop_proof(http: Any, flow: Any, fapi: Any, user: Any) -> None:
    code, verifier = code_via_par(http, flow, fapi)
    answer = redeem(http, fapi, code, verifier, None)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_dpop_proof"


def test_client_secret_is_refused_for_a_fapi2_client(http: Any, provider: Any, register: Any) -> None:
    """A FAPI 2.0 client registered before its auth method was checked (or changed in the store)
    still cannot authenticate with a secret: invalid_client."""
    basic = register("legacy", first_party=True)
    with provider.db.session() as s:
        s.execute(update(Client).where(Client.client_id == "legacy").values(fapi2=True))
    provider.clients.forget("legacy")
    answer = http.post("/oauth2/par", auth=basic.basic, data={"response_type": "code"})
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"


def test_response_type_other_than_code_is_unauthorized(http: Any, provider: Any, register: Any) -> None:
    hybrid = register("hyb", first_party=True, token_endpoint_auth_method="private_key_jwt", jwks=JWKS,
                      response_types=["code", "code id_token"], grant_types=["authorization_code", "implicit"])
    with provider.db.session() as s:
        s.execute(update(Client).where(Client.client_id == "hyb").values(fapi2=True))
    provider.clients.forget("hyb")
    answer = http.post(
        "/oauth2/par", data={"response_type": "code id_token", "redirect_uri": hybrid.redirect_uri,
                             "scope": "openid", "nonce": "n", "code_challenge": pkce_pair()[1],
                             "code_challenge_method": "S256"} | assertion("hyb"))
    assert answer.status_code == 400 and answer.json()["error"] == "unauthorized_client"


@pytest.mark.parametrize(("fields", "problem"), [
    ({"token_endpoint_auth_method": "none"}, "public client cannot be FAPI 2.0"),
    ({"token_endpoint_auth_method": "client_secret_basic"}, "private_key_jwt"),
    ({"token_endpoint_auth_method": "private_key_jwt", "jwks": JWKS, "response_types": ["code", "code id_token"]},
     "response_type code only"),
])
def test_registration_validates_the_combination(fields: dict[str, Any], problem: str) -> None:
    meta = ClientMetadata(client_id="x", redirect_uris=["https://app.example/cb"], fapi2=True, **fields)
    with pytest.raises(InvalidClientMetadata) as raised:
        meta.validate()
    assert problem in str(raised.value)


def test_cli_fapi2(cli: Any, tmp_path: Any) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(JWKS))
    refused = cli("clients", "add", "--client-id", "c1", "--redirect-uri", "https://app.example/cb", "--fapi2",
                  ok=False)
    assert refused.exit_code == 1 and "private_key_jwt" in refused.output and "Traceback" not in refused.output
    public = cli("clients", "add", "--client-id", "c2", "--redirect-uri", "https://app.example/cb", "--public",
                 "--fapi2", ok=False)
    assert public.exit_code == 1 and "public client" in public.output
    ok = cli("clients", "add", "--client-id", "c3", "--redirect-uri", "https://app.example/cb", "--auth-method",
             "private_key_jwt", "--jwks-file", str(jwks), "--fapi2", "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["fapi2"] is True
    off = cli("clients", "update", "c3", "--no-fapi2", "--json")
    assert off.exit_code == 0 and json.loads(off.output)["fapi2"] is False
