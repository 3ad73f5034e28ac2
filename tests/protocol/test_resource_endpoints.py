"""UserInfo (OIDC Core §5.3, RFC 6750), revocation (RFC 7009) and introspection (RFC 7662)."""

from __future__ import annotations

import base64
import json
import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey


@pytest.fixture
def client(register):
    return register(first_party=True)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


# -- userinfo -------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/oauth2/userinfo", "/oauth2/userInfo"])
def test_userinfo_get_and_post(http, tokens, user, path):
    r = http.get(path, headers=bearer(tokens["access_token"]))
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["sub"] == user.sub and body["email"] == "alice@example.com" and body["email_verified"] is True
    assert body["given_name"] == "Alice" and body["name"] == "Alice Liddell"
    assert body["phone_number"] == "+15555550100" and body["address"] == {"country": "GB"}
    r = http.post(path, headers=bearer(tokens["access_token"]))
    assert r.status_code == 200 and r.json()["sub"] == user.sub
    r = http.post(path, data={"access_token": tokens["access_token"]})
    assert r.status_code == 200


def test_userinfo_releases_only_granted_scopes(http, flow, register, user):
    client = register("narrow", first_party=True)
    q, verifier = flow.code_flow(client, scope="openid email")
    at = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier}).json()["access_token"]
    body = http.get("/oauth2/userinfo", headers=bearer(at)).json()
    assert set(body) == {"sub", "email", "email_verified"}


def test_userinfo_without_token_is_401_with_challenge(http):
    r = http.get("/oauth2/userinfo")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")


def _tamper(token: str) -> str:
    header, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{sig}"


def _alg_none(token: str) -> str:
    _, payload, _ = token.split(".")
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"at+jwt"}').rstrip(b"=").decode()
    return f"{header}.{payload}."


def _foreign_key(token: str) -> str:
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    key = ECKey.generate_key("P-256", private=True)
    return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": "x"}, claims, key)


@pytest.mark.parametrize("mangle", [_tamper, _alg_none, _foreign_key, lambda t: "not-a-token",
                                    lambda t: t + "x"])
def test_userinfo_rejects_bad_tokens(http, tokens, mangle):
    r = http.get("/oauth2/userinfo", headers=bearer(mangle(tokens["access_token"])))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_userinfo_rejects_id_token_as_access_token(http, tokens):
    r = http.get("/oauth2/userinfo", headers=bearer(tokens["id_token"]))
    assert r.status_code == 401


def test_userinfo_rejects_expired_token(http, provider, user, client):
    at = provider.access_tokens.issue(client_id=client.client_id, sub=user.sub, scope="openid", ttl=1)
    time.sleep(1.1)
    assert http.get("/oauth2/userinfo", headers=bearer(at.token)).status_code == 401


def test_userinfo_needs_openid_scope(http, provider, user, client):
    at = provider.access_tokens.issue(client_id=client.client_id, sub=user.sub, scope="email", ttl=60)
    r = http.get("/oauth2/userinfo", headers=bearer(at.token))
    assert r.status_code == 403 and 'error="insufficient_scope"' in r.headers["www-authenticate"]


def test_userinfo_rejects_disabled_user(http, tokens, provider):
    provider.users.set_disabled("alice@example.com")
    assert http.get("/oauth2/userinfo", headers=bearer(tokens["access_token"])).status_code == 401


def test_userinfo_rejects_token_in_two_places(http, tokens):
    r = http.post("/oauth2/userinfo", headers=bearer(tokens["access_token"]),
                  data={"access_token": tokens["access_token"]})
    assert r.status_code == 400


# -- introspection ------------------------------------------------------------------------------
def test_introspection_of_access_and_refresh_tokens(http, tokens, client, user):
    r = http.post("/oauth2/introspect", auth=client.basic, data={"token": tokens["access_token"]})
    body = r.json()
    assert r.status_code == 200 and body["active"] is True
    assert body["sub"] == user.sub and body["client_id"] == client.client_id and "openid" in body["scope"]
    assert body["exp"] > time.time() and body["iss"] == "http://127.0.0.1:8000"
    r = http.post("/oauth2/introspect", auth=client.basic, data={"token": tokens["refresh_token"],
                                                                 "token_type_hint": "refresh_token"})
    assert r.json()["active"] is True and r.json()["token_type"] == "refresh_token"
    r = http.post("/oauth2/introspect", auth=client.basic, data={"token": "garbage"})
    assert r.json() == {"active": False}


def test_introspection_requires_client_authentication(http, tokens, register):
    r = http.post("/oauth2/introspect", data={"token": tokens["access_token"]})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    spa = register("spa", token_endpoint_auth_method="none")
    r = http.post("/oauth2/introspect", data={"token": tokens["access_token"], "client_id": spa.client_id})
    assert r.status_code == 401


def test_introspection_missing_token(http, client):
    r = http.post("/oauth2/introspect", auth=client.basic, data={})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


# -- revocation -----------------------------------------------------------------------------------
def test_revoking_access_token(http, tokens, client):
    r = http.post("/oauth2/revoke", auth=client.basic, data={"token": tokens["access_token"],
                                                             "token_type_hint": "access_token"})
    assert r.status_code == 200
    assert http.get("/oauth2/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    assert http.post("/oauth2/introspect", auth=client.basic,
                     data={"token": tokens["access_token"]}).json() == {"active": False}
    # the refresh token still works
    r = http.post("/oauth2/token", auth=client.basic,
                  data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200


def test_revoking_refresh_token_revokes_the_grant(http, tokens, client):
    r = http.post("/oauth2/revoke", auth=client.basic, data={"token": tokens["refresh_token"]})
    assert r.status_code == 200
    r = http.post("/oauth2/token", auth=client.basic,
                  data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert r.json()["error"] == "invalid_grant"
    assert http.get("/oauth2/userinfo", headers=bearer(tokens["access_token"])).status_code == 401


def test_revoking_unknown_token_is_200(http, client):
    assert http.post("/oauth2/revoke", auth=client.basic, data={"token": "nothing"}).status_code == 200


def test_other_client_cannot_revoke(http, tokens, register):
    other = register("other", first_party=True)
    assert http.post("/oauth2/revoke", auth=other.basic, data={"token": tokens["refresh_token"]}).status_code == 200
    assert http.post("/oauth2/revoke", auth=other.basic, data={"token": tokens["access_token"]}).status_code == 200
    assert http.get("/oauth2/userinfo", headers=bearer(tokens["access_token"])).status_code == 200


def test_revocation_requires_client_authentication(http, tokens, client):
    r = http.post("/oauth2/revoke", auth=(client.client_id, "wrong"), data={"token": tokens["refresh_token"]})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = http.post("/oauth2/revoke", auth=client.basic, data={})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
