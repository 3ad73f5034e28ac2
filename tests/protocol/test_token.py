"""Token endpoint: client authentication, code redemption, PKCE, refresh rotation, client credentials."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import update
from support import ISSUER

from idbroker.oidc.id_token import half_hash
from idbroker.store.db import utcnow
from idbroker.store.models import AuthorizationCode


def redeem(http, client, code, verifier, **extra):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": client.redirect_uri,
            "code_verifier": verifier, **extra}
    return http.post("/oauth2/token", auth=client.basic, data=data)


def decode(provider, token):
    return jwt.decode(token, provider.keys.public_keyset())


@pytest.fixture
def client(register):
    return register(first_party=True)


def test_code_exchange_returns_standard_tokens(http, flow, client, user, provider):
    q, verifier = flow.code_flow(client, scope="openid profile email offline_access", nonce="nonce-123")
    r = redeem(http, client, q["code"], verifier)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache"
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert set(body["scope"].split()) == {"openid", "profile", "email", "offline_access"}
    assert body["refresh_token"]
    # RFC 9068 access token
    at = decode(provider, body["access_token"])
    assert at.header["typ"] == "at+jwt" and at.header["alg"] == "ES256" and at.header["kid"]
    for claim in ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"):
        assert claim in at.claims
    assert at.claims["client_id"] == client.client_id and at.claims["sub"] == user.sub
    # ID token
    idt = decode(provider, body["id_token"])
    c = idt.claims
    assert idt.header["kid"] and c["iss"] == ISSUER and c["aud"] == client.client_id and c["sub"] == user.sub
    assert c["nonce"] == "nonce-123" and c["at_hash"] == half_hash(body["access_token"], "ES256")
    assert abs(c["auth_time"] - time.time()) < 60 and c["sid"] and c["amr"] == ["pwd"] and c["acr"]
    assert c["exp"] > c["iat"]


def test_rs256_id_token_for_clients_that_ask(http, flow, register, user, provider):
    client = register("rs", first_party=True, id_token_signed_response_alg="RS256")
    q, verifier = flow.code_flow(client)
    body = redeem(http, client, q["code"], verifier).json()
    assert decode(provider, body["id_token"]).header["alg"] == "RS256"


def test_no_refresh_token_without_offline_access(http, flow, client, user):
    q, verifier = flow.code_flow(client, scope="openid email")
    assert "refresh_token" not in redeem(http, client, q["code"], verifier).json()


def test_code_replay_fails_and_revokes_tokens(http, flow, client, user):
    q, verifier = flow.code_flow(client, scope="openid offline_access")
    first = redeem(http, client, q["code"], verifier).json()
    second = redeem(http, client, q["code"], verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    # RFC 6749 §4.1.2: what the code issued is revoked
    r = http.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + first["access_token"]})
    assert r.status_code == 401
    r = http.post("/oauth2/token", auth=client.basic,
                  data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert r.json()["error"] == "invalid_grant"


def test_concurrent_redemption_exactly_one_succeeds(http, flow, client, user):
    q, verifier = flow.code_flow(client)
    results: list[int] = []
    barrier = threading.Barrier(4)

    def go() -> None:
        barrier.wait()
        results.append(redeem(http, client, q["code"], verifier).status_code)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200, 400, 400, 400]


def test_wrong_pkce_verifier(http, flow, client, user):
    q, verifier = flow.code_flow(client)
    r = redeem(http, client, q["code"], verifier[:-1] + ("A" if verifier[-1] != "A" else "B"))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_missing_pkce_verifier(http, flow, client, user):
    q, _ = flow.code_flow(client)
    r = http.post("/oauth2/token", auth=client.basic, data={"grant_type": "authorization_code", "code": q["code"],
                                                            "redirect_uri": client.redirect_uri})
    assert r.json()["error"] == "invalid_grant"


def test_wrong_redirect_uri(http, flow, client, user):
    q, verifier = flow.code_flow(client)
    r = redeem(http, client, q["code"], verifier, redirect_uri="https://app.example/other")
    assert r.json()["error"] == "invalid_grant"


def test_expired_code(http, flow, client, user, provider):
    q, verifier = flow.code_flow(client)
    with provider.db.session() as s:
        s.execute(update(AuthorizationCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    r = redeem(http, client, q["code"], verifier)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_code_bound_to_client(http, flow, register, client, user):
    other = register("other", first_party=True)
    q, verifier = flow.code_flow(client)
    r = redeem(http, other, q["code"], verifier)
    assert r.json()["error"] == "invalid_grant"


def test_code_lifetime_is_at_most_60_seconds(http, flow, client, user, provider):
    flow.code_flow(client)
    with provider.db.session() as s:
        row = s.query(AuthorizationCode).one()
        assert (row.expires_at - row.created_at).total_seconds() <= 60


@pytest.mark.parametrize("auth", [("app", "wrong-secret"), ("nobody", "x")])
def test_bad_client_secret_is_401_with_www_authenticate(http, client, auth):
    r = http.post("/oauth2/token", auth=auth, data={"grant_type": "client_credentials"})
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")


def test_client_secret_post(http, flow, register, user):
    client = register("posty", first_party=True, token_endpoint_auth_method="client_secret_post")
    q, verifier = flow.code_flow(client)
    r = http.post("/oauth2/token", data={"grant_type": "authorization_code", "code": q["code"],
                                         "redirect_uri": client.redirect_uri, "code_verifier": verifier,
                                         "client_id": client.client_id, "client_secret": client.secret})
    assert r.status_code == 200, r.text
    # a basic-auth client may not switch methods
    r = http.post("/oauth2/token", data={"grant_type": "client_credentials", "client_id": client.client_id,
                                         "client_secret": "nope"})
    assert r.status_code == 401


def test_two_authentication_methods_are_rejected(http, client):
    r = http.post("/oauth2/token", auth=client.basic, data={"grant_type": "client_credentials",
                                                            "client_secret": client.secret})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_public_client_code_flow(http, flow, register, user):
    spa = register("spa", token_endpoint_auth_method="none", first_party=True)
    q, verifier = flow.code_flow(spa)
    r = http.post("/oauth2/token", data={"grant_type": "authorization_code", "code": q["code"],
                                         "redirect_uri": spa.redirect_uri, "code_verifier": verifier,
                                         "client_id": "spa"})
    assert r.status_code == 200, r.text


def test_private_key_jwt(http, flow, register, user):
    key = ECKey.generate_key("P-256", parameters={"kid": "c1", "alg": "ES256"}, private=True)
    client = register("pkj", first_party=True, token_endpoint_auth_method="private_key_jwt",
                      jwks={"keys": [key.as_dict(private=False)]})
    q, verifier = flow.code_flow(client)

    def assertion(jti: str, aud: str = ISSUER + "/oauth2/token") -> str:
        now = int(time.time())
        return jwt.encode({"alg": "ES256", "kid": "c1"}, {"iss": "pkj", "sub": "pkj", "aud": aud, "jti": jti,
                                                          "iat": now, "exp": now + 60}, key)

    data = {"grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
            "code_verifier": verifier, "client_assertion_type":
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    r = http.post("/oauth2/token", data={**data, "client_assertion": assertion("j1", aud="https://other/")})
    assert r.status_code == 401
    r = http.post("/oauth2/token", data={**data, "client_assertion": assertion("j2")})
    assert r.status_code == 200, r.text
    # the same assertion (jti) cannot be replayed
    r = http.post("/oauth2/token", data={"grant_type": "client_credentials", "client_assertion_type":
                                         data["client_assertion_type"], "client_assertion": assertion("j2")})
    assert r.status_code == 401
    other = ECKey.generate_key("P-256", parameters={"kid": "c1"}, private=True)
    now = int(time.time())
    forged = jwt.encode({"alg": "ES256", "kid": "c1"}, {"iss": "pkj", "sub": "pkj", "aud": ISSUER, "jti": "j3",
                                                        "iat": now, "exp": now + 60}, other)
    r = http.post("/oauth2/token", data={"grant_type": "client_credentials", "client_assertion_type":
                                         data["client_assertion_type"], "client_assertion": forged})
    assert r.status_code == 401


def test_refresh_rotation_and_reuse_detection(http, flow, client, user, provider):
    q, verifier = flow.code_flow(client, scope="openid email offline_access")
    first = redeem(http, client, q["code"], verifier).json()
    r = http.post("/oauth2/token", auth=client.basic,
                  data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"] and second["expires_in"] > 0
    assert decode(provider, second["id_token"]).claims["sub"] == user.sub
    # reuse of the rotated-out token: rejected, and the whole family is revoked
    r = http.post("/oauth2/token", auth=client.basic,
                  data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = http.post("/oauth2/token", auth=client.basic,
                  data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]})
    assert r.json()["error"] == "invalid_grant"
    r = http.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + second["access_token"]})
    assert r.status_code == 401


def test_concurrent_refresh_exactly_one_succeeds_and_the_family_ends(http, flow, client, user):
    q, verifier = flow.code_flow(client, scope="openid offline_access")
    token = redeem(http, client, q["code"], verifier).json()["refresh_token"]
    results: list = []
    barrier = threading.Barrier(4)

    def go() -> None:
        barrier.wait()
        results.append(http.post("/oauth2/token", auth=client.basic,
                                  data={"grant_type": "refresh_token", "refresh_token": token}))

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [200, 400, 400, 400]
    winner = next(r.json() for r in results if r.status_code == 200)
    # The losers presented a used token: the successor the winner got is revoked with its family.
    r = http.post("/oauth2/token", auth=client.basic,
                  data={"grant_type": "refresh_token", "refresh_token": winner["refresh_token"]})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_refresh_scope_can_narrow_not_widen(http, flow, register, user):
    client = register("narrow", first_party=True)
    q, verifier = flow.code_flow(client, scope="openid email offline_access")
    rt = redeem(http, client, q["code"], verifier).json()["refresh_token"]
    r = http.post("/oauth2/token", auth=client.basic,
                  data={"grant_type": "refresh_token", "refresh_token": rt, "scope": "openid phone"})
    assert r.json()["error"] == "invalid_scope"
    r = http.post("/oauth2/token", auth=client.basic,
                  data={"grant_type": "refresh_token", "refresh_token": rt, "scope": "openid offline_access"})
    assert r.status_code == 200 and r.json()["scope"] == "openid offline_access"


def test_refresh_token_bound_to_client(http, flow, register, client, user):
    other = register("other2", first_party=True)
    q, verifier = flow.code_flow(client, scope="openid offline_access")
    rt = redeem(http, client, q["code"], verifier).json()["refresh_token"]
    r = http.post("/oauth2/token", auth=other.basic, data={"grant_type": "refresh_token", "refresh_token": rt})
    assert r.json()["error"] == "invalid_grant"


def test_client_credentials(http, register, provider):
    svc = register("svc", grant_types=["client_credentials"], response_types=[], redirect_uris=[],
                   post_logout_redirect_uris=[], scopes=["api:read", "api:write"])
    r = http.post("/oauth2/token", auth=svc.basic, data={"grant_type": "client_credentials", "scope": "api:read",
                                                         "resource": "https://api.example/"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scope"] == "api:read" and body["expires_in"] == 3600 and "refresh_token" not in body
    claims = decode(provider, body["access_token"]).claims
    assert claims["sub"] == "svc" and claims["client_id"] == "svc" and claims["aud"] == "https://api.example/"
    r = http.post("/oauth2/token", auth=svc.basic, data={"grant_type": "client_credentials", "scope": "openid"})
    assert r.json()["error"] == "invalid_scope"


def test_client_credentials_refused_to_clients_without_the_grant(http, client):
    r = http.post("/oauth2/token", auth=client.basic, data={"grant_type": "client_credentials"})
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"


@pytest.mark.parametrize("data,error", [
    ({"grant_type": "password", "username": "a", "password": "b"}, "unsupported_grant_type"),
    ({}, "invalid_request"),
    ({"grant_type": "authorization_code"}, "invalid_request"),
    ({"grant_type": "authorization_code", "code": "nope"}, "invalid_grant"),
    ({"grant_type": "refresh_token", "refresh_token": "nope"}, "invalid_grant"),
])
def test_token_endpoint_errors(http, client, data, error):
    r = http.post("/oauth2/token", auth=client.basic, data=data)
    assert r.status_code == 400 and r.json()["error"] == error
    assert r.headers["content-type"] == "application/json"


def test_token_endpoint_rejects_duplicate_parameters_and_json(http, client):
    r = http.post("/oauth2/token", auth=client.basic, content="grant_type=client_credentials&grant_type=x",
                  headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.json()["error"] == "invalid_request"
    r = http.post("/oauth2/token", auth=client.basic, json={"grant_type": "client_credentials"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_token_endpoint_rejects_get(http):
    assert http.get("/oauth2/token").status_code == 405
