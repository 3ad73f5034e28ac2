"""DPoP (RFC 9449): proofs at the token endpoint, bound tokens at userinfo and introspection."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
import warnings
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, OKPKey
from starlette.testclient import TestClient
from support import ISSUER, make_settings

from idbroker.app import create_app
from idbroker.oauth2.device_codes import GRANT_DEVICE_CODE
from idbroker.oauth2.grant_store import GrantStore
from idbroker.provider import Provider
from idbroker.store.db import utcnow

TOKEN_URL = ISSUER + "/oauth2/token"
USERINFO_URL = ISSUER + "/oauth2/userinfo"


class Holder:
    """A client's DPoP key and the proofs it makes."""

    def __init__(self, key: Any = None, alg: str = "ES256") -> None:
        self.key = key or ECKey.generate_key("P-256")
        self.alg = alg

    @property
    def jkt(self) -> str:
        return self.key.thumbprint()

    def proof(self, htm: str = "POST", htu: str = TOKEN_URL, *, access_token: str | None = None,
              iat: float | None = None, nonce: str | None = None, typ: str = "dpop+jwt",
              jwk: dict[str, Any] | None = None, jti: str | None = None) -> str:
        claims: dict[str, Any] = {"jti": jti or uuid.uuid4().hex, "htm": htm, "htu": htu,
                                  "iat": int(iat if iat is not None else time.time())}
        if access_token:
            digest = hashlib.sha256(access_token.encode()).digest()
            claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if nonce:
            claims["nonce"] = nonce
        header = {"typ": typ, "alg": self.alg, "jwk": jwk or self.key.as_dict(private=False)}
        with warnings.catch_warnings():  # joserfc: EdDSA is deprecated by RFC 9864 (still what clients send)
            warnings.simplefilter("ignore")
            return jwt.encode(header, claims, self.key, algorithms=[self.alg])


def code_tokens(http: Any, flow: Any, client: Any, proof: str | None, scope: str = "openid profile offline_access"
                ) -> Any:
    q, verifier = flow.code_flow(client, scope=scope)
    data = {"grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
            "code_verifier": verifier}
    headers = {"DPoP": proof} if proof else {}
    if client.secret:
        return http.post("/oauth2/token", auth=client.basic, data=data, headers=headers)
    return http.post("/oauth2/token", data={**data, "client_id": client.client_id}, headers=headers)


def test_dpop_bound_tokens_end_to_end(http: Any, flow: Any, client: Any, user: Any) -> None:
    holder = Holder()
    answer = code_tokens(http, flow, client, holder.proof())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "DPoP"
    at = body["access_token"]
    # Userinfo with the DPoP scheme and a proof naming this request and this token.
    info = http.get("/oauth2/userinfo", headers={"Authorization": f"DPoP {at}",
                                                 "DPoP": holder.proof("GET", USERINFO_URL, access_token=at)})
    assert info.status_code == 200, info.text
    # A bound token sent as a bearer token is refused (RFC 9449 §7.1).
    assert http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {at}"}).status_code == 401
    # Without a proof, with a proof for another token (ath), with another key.
    assert http.get("/oauth2/userinfo", headers={"Authorization": f"DPoP {at}"}).status_code == 401
    assert http.get("/oauth2/userinfo", headers={
        "Authorization": f"DPoP {at}", "DPoP": holder.proof("GET", USERINFO_URL, access_token="x")}).status_code == 401
    assert http.get("/oauth2/userinfo", headers={
        "Authorization": f"DPoP {at}", "DPoP": Holder().proof("GET", USERINFO_URL, access_token=at)}
    ).status_code == 401
    # Introspection says so and names the key.
    seen = http.post("/oauth2/introspect", auth=client.basic, data={"token": at}).json()
    assert seen["active"] and seen["token_type"] == "DPoP" and seen["cnf"] == {"jkt": holder.jkt}


def test_bearer_tokens_are_unchanged(http: Any, flow: Any, client: Any, user: Any) -> None:
    body = code_tokens(http, flow, client, None).json()
    assert body["token_type"] == "Bearer"
    seen = http.post("/oauth2/introspect", auth=client.basic, data={"token": body["access_token"]}).json()
    assert "cnf" not in seen and seen["token_type"] == "Bearer"
    at = body["access_token"]
    assert http.get("/oauth2/userinfo", headers={"Authorization": f"DPoP {at}"}).status_code == 401


@pytest.mark.parametrize("bad", ["replay", "htm", "htu", "old_iat", "future_iat", "typ", "private_jwk", "alg",
                                 "garbage"])
def test_bad_proofs_are_refused(http: Any, flow: Any, client: Any, user: Any, bad: str) -> None:
    holder = Holder()
    if bad == "replay":
        proof = holder.proof()
        assert code_tokens(http, flow, client, proof).status_code == 200
    elif bad == "htm":
        proof = holder.proof(htm="GET")
    elif bad == "htu":
        proof = holder.proof(htu=ISSUER + "/oauth2/other")
    elif bad == "old_iat":
        proof = holder.proof(iat=time.time() - 600)
    elif bad == "future_iat":
        proof = holder.proof(iat=time.time() + 600)
    elif bad == "typ":
        proof = holder.proof(typ="jwt")
    elif bad == "private_jwk":
        proof = holder.proof(jwk=holder.key.as_dict(private=True))
    elif bad == "alg":
        secret = OctKey.import_key("a shared secret is no proof of possession")
        proof = jwt.encode({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "EC", "crv": "P-256"}},
                           {"jti": "j", "htm": "POST", "htu": TOKEN_URL, "iat": int(time.time())}, secret)
    else:
        proof = "not.a.proof"
    answer = code_tokens(http, flow, client, proof)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_dpop_proof", answer.text


def test_htu_ignores_query_and_fragment(http: Any, flow: Any, client: Any, user: Any) -> None:
    answer = code_tokens(http, flow, client, Holder().proof(htu=TOKEN_URL + "?a=1#f"))
    assert answer.status_code == 200 and answer.json()["token_type"] == "DPoP"


def test_eddsa_proofs_are_accepted(http: Any, flow: Any, client: Any, user: Any) -> None:
    answer = code_tokens(http, flow, client, Holder(OKPKey.generate_key("Ed25519"), "EdDSA").proof())
    assert answer.status_code == 200 and answer.json()["token_type"] == "DPoP"


def test_dpop_bound_client_must_send_a_proof(http: Any, flow: Any, register: Any, user: Any) -> None:
    bound = register("bound", dpop_bound=True)
    answer = code_tokens(http, flow, bound, None)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_dpop_proof"
    assert code_tokens(http, flow, bound, Holder().proof()).json()["token_type"] == "DPoP"


def test_public_client_refresh_tokens_are_bound_to_the_key(http: Any, flow: Any, register: Any, user: Any) -> None:
    spa = register("spa", token_endpoint_auth_method="none")
    holder = Holder()
    rt = code_tokens(http, flow, spa, holder.proof()).json()["refresh_token"]
    refresh = {"grant_type": "refresh_token", "refresh_token": rt, "client_id": "spa"}
    stolen = http.post("/oauth2/token", data=refresh, headers={"DPoP": Holder().proof()})
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    without = http.post("/oauth2/token", data=refresh)
    assert without.status_code == 400 and without.json()["error"] == "invalid_grant"


def test_public_client_refresh_with_its_key(http: Any, flow: Any, register: Any, user: Any) -> None:
    spa = register("spa", token_endpoint_auth_method="none")
    holder = Holder()
    rt = code_tokens(http, flow, spa, holder.proof()).json()["refresh_token"]
    again = http.post("/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": rt, "client_id": "spa"},
                      headers={"DPoP": holder.proof()})
    assert again.status_code == 200 and again.json()["token_type"] == "DPoP"


@pytest.mark.parametrize("settings_overrides", [{"dpop_nonce": True}])
def test_server_nonces(http: Any, flow: Any, client: Any, user: Any, settings_overrides: Any) -> None:
    holder = Holder()
    first = code_tokens(http, flow, client, holder.proof())
    assert first.status_code == 400 and first.json()["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    answer = code_tokens(http, flow, client, holder.proof(nonce=nonce))
    assert answer.status_code == 200 and answer.json()["token_type"] == "DPoP"
    wrong = code_tokens(http, flow, client, holder.proof(nonce="made-up"))
    assert wrong.json()["error"] == "use_dpop_nonce"
    # At userinfo too: 401 with the DPoP challenge and the nonce to use (§9).
    at = answer.json()["access_token"]
    refused = http.get("/oauth2/userinfo", headers={"Authorization": f"DPoP {at}",
                                                    "DPoP": holder.proof("GET", USERINFO_URL, access_token=at)})
    assert refused.status_code == 401 and refused.json()["error"] == "use_dpop_nonce"
    assert refused.headers["WWW-Authenticate"].startswith("DPoP ") and refused.headers["DPoP-Nonce"]
    info = http.get("/oauth2/userinfo", headers={"Authorization": f"DPoP {at}", "DPoP": holder.proof(
        "GET", USERINFO_URL, access_token=at, nonce=refused.headers["DPoP-Nonce"])})
    assert info.status_code == 200, info.text


def test_discovery_lists_dpop_algs(http: Any) -> None:
    meta = http.get("/.well-known/openid-configuration").json()
    assert set(meta["dpop_signing_alg_values_supported"]) == {"ES256", "RS256", "PS256", "EdDSA"}


def refreshed(http: Any, refresh_token: str, client_id: str, holder: Holder) -> Any:
    return http.post("/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token,
                                            "client_id": client_id}, headers={"DPoP": holder.proof()})


def test_the_binding_is_written_with_the_redemption(provider: Any, relayed: Any, http: Any, flow: Any, register: Any,
                                                    user: Any, tmp_path: Any, monkeypatch: Any) -> None:
    """A public client's refresh token is bound to its DPoP key in the transaction that uses the code
    up (RFC 9449 §5): once that commits, answering needs nothing more from the store, so a
    connection lost right after it still answers the tokens - bound - instead of leaving the client
    with a used-up code (PostgreSQL: the node's connections go through a relay)."""
    relay, db = relayed
    spa = register("spa", token_endpoint_auth_method="none")
    q, verifier = flow.code_flow(spa, scope="openid offline_access")
    node = Provider(make_settings(tmp_path), db=db)
    redeem = GrantStore.redeem_code

    async def redeem_then_lose_the_store(self: GrantStore, *args: Any, **kwargs: Any) -> Any:
        answered = await redeem(self, *args, **kwargs)
        relay.refusing = True
        relay.cut()
        return answered

    monkeypatch.setattr(GrantStore, "redeem_code", redeem_then_lose_the_store)
    holder = Holder()
    with TestClient(create_app(provider=node), base_url=ISSUER) as on_node:
        node.keys.sign({})  # the keys, loaded once
        tokens = on_node.post("/oauth2/token", headers={"DPoP": holder.proof()}, data={
            "grant_type": "authorization_code", "code": q["code"], "redirect_uri": spa.redirect_uri,
            "code_verifier": verifier, "client_id": "spa"})
    assert tokens.status_code == 200, tokens.text
    stolen = refreshed(http, tokens.json()["refresh_token"], "spa", Holder())
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    again = refreshed(http, tokens.json()["refresh_token"], "spa", holder)
    assert again.status_code == 200 and again.json()["token_type"] == "DPoP"
    # its successor carries the binding on
    assert refreshed(http, again.json()["refresh_token"], "spa", Holder()).json()["error"] == "invalid_grant"
    assert refreshed(http, again.json()["refresh_token"], "spa", holder).status_code == 200


def test_a_public_device_clients_refresh_token_is_bound(provider: Any, http: Any, register: Any, user: Any) -> None:
    """RFC 9449 §5 for every grant that issues a public client a refresh token: the device grant too."""
    register("tv", token_endpoint_auth_method="none", redirect_uris=[], post_logout_redirect_uris=[],
             grant_types=[GRANT_DEVICE_CODE, "refresh_token"], response_types=[])
    started = provider.device_codes.start(provider.clients.get("tv"), "openid offline_access")
    assert provider.device_codes.decide(started["user_code"], allow=True, user=user, auth_time=utcnow(), amr=["pwd"],
                                        acr=None, sid=None, idp=None, grant_ttl=3600)
    holder = Holder()
    tokens = http.post("/oauth2/token", headers={"DPoP": holder.proof()}, data={
        "grant_type": GRANT_DEVICE_CODE, "device_code": started["device_code"], "client_id": "tv"})
    assert tokens.status_code == 200 and tokens.json()["token_type"] == "DPoP", tokens.text
    assert refreshed(http, tokens.json()["refresh_token"], "tv", Holder()).json()["error"] == "invalid_grant"
    assert refreshed(http, tokens.json()["refresh_token"], "tv", holder).status_code == 200

