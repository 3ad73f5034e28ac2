"""The claims request parameter (OIDC Core §5.5): individual claims asked for in the ID token or
from userinfo, `acr` asked for as an essential claim with values (§5.5.1.1), malformed requests
refused at the redirect URI."""

from __future__ import annotations

import json

import pytest
from joserfc import jwt
from support import query_of

from idbroker.oauth2 import constants as c


@pytest.fixture
def client(register):
    return register(first_party=True)


def _redeem(http, client, q, verifier):
    r = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier})
    assert r.status_code == 200, r.text
    return r.json()


def _claims(provider, token):
    return jwt.decode(token, provider.keys.public_keyset()).claims


def test_claims_asked_for_in_the_id_token(http, flow, client, user, provider):
    asked = {"id_token": {"email": {"essential": True}, "given_name": None}}
    q, verifier = flow.code_flow(client, scope="openid email profile", claims=json.dumps(asked))
    idt = _claims(provider, _redeem(http, client, q, verifier)["id_token"])
    assert idt["email"] == "alice@example.com" and idt["given_name"] == "Alice"
    assert "family_name" not in idt  # only what was asked for


def test_without_the_parameter_the_id_token_has_no_profile_claims(http, flow, client, user, provider):
    q, verifier = flow.code_flow(client, scope="openid email profile")
    idt = _claims(provider, _redeem(http, client, q, verifier)["id_token"])
    assert "email" not in idt and "given_name" not in idt


def test_claims_asked_for_from_userinfo(http, flow, client, user):
    asked = {"userinfo": {"phone_number": None}}
    q, verifier = flow.code_flow(client, scope="openid phone", claims=json.dumps(asked))
    tokens = _redeem(http, client, q, verifier)
    info = http.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).json()
    assert info["phone_number"] == "+15555550100"


def test_claims_beyond_the_granted_scopes_are_not_released(http, flow, client, user, provider):
    asked = {"id_token": {"email": {"essential": True}}, "userinfo": {"email": None}}
    q, verifier = flow.code_flow(client, scope="openid", claims=json.dumps(asked))
    tokens = _redeem(http, client, q, verifier)
    assert "email" not in _claims(provider, tokens["id_token"])
    info = http.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).json()
    assert "email" not in info


def test_essential_acr_with_values_asks_for_the_second_factor(http, flow, client, user):
    asked = {"id_token": {"acr": {"essential": True, "values": [c.ACR_MFA]}}}
    page = flow.login(flow.authorize(
        client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code", scope="openid",
        state="s", nonce="n", code_challenge="x" * 43, code_challenge_method="S256", claims=json.dumps(asked)))
    assert page.status_code == 200 and "/mfa" in page.text  # step-up (enrolment), not the code
    assert "location" not in page.headers


@pytest.mark.parametrize("bad", ["not json", "[]", '{"idtoken": {}}', '{"id_token": {"email": 5}}',
                                 '{"id_token": {"acr": {"essential": "yes"}}}'])
def test_malformed_claims_are_refused(http, client, bad):
    r = http.get("/oauth2/authorize", params=dict(
        client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code", scope="openid",
        state="s", code_challenge="x" * 43, code_challenge_method="S256", claims=bad))
    assert r.status_code == 303
    q = query_of(r.headers["location"])
    assert q["error"] == "invalid_request" and q["state"] == "s"


def test_discovery_says_the_claims_parameter_is_supported(http):
    assert http.get("/.well-known/openid-configuration").json()["claims_parameter_supported"] is True


def test_essential_acr_that_cannot_be_met_is_a_failed_authentication(http, flow, client, user):
    asked = {"id_token": {"acr": {"essential": True, "values": ["urn:example:unknown"]}}}
    r = flow.login(flow.authorize(
        client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code", scope="openid",
        state="s", code_challenge="x" * 43, code_challenge_method="S256", claims=json.dumps(asked)))
    assert r.status_code == 303
    assert query_of(r.headers["location"])["error"] == "access_denied"


def test_essential_acr_password_level_is_stated_as_asked(http, flow, client, user, provider):
    asked = {"id_token": {"acr": {"essential": True, "values": [c.ACR_PASSWORD]}}}
    q, verifier = flow.code_flow(client, scope="openid", claims=json.dumps(asked))
    assert _claims(provider, _redeem(http, client, q, verifier)["id_token"])["acr"] == c.ACR_PASSWORD


def test_sub_asked_for_by_value_is_answered_only_for_that_user(http, flow, client, user, provider):
    q, verifier = flow.code_flow(client, scope="openid",
                                 claims=json.dumps({"id_token": {"sub": {"value": user.sub}}}))
    assert _claims(provider, _redeem(http, client, q, verifier)["id_token"])["sub"] == user.sub
    # Signed in as Alice, a request for another sub is not answered with her tokens.
    r = http.get("/oauth2/authorize", params=dict(
        client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code", scope="openid",
        state="s", code_challenge="x" * 43, code_challenge_method="S256", prompt="none",
        claims=json.dumps({"id_token": {"sub": {"value": "someone-else"}}})))
    assert r.status_code == 303 and query_of(r.headers["location"])["error"] == "login_required"
    # Without prompt=none she is asked to sign in (as the other user); signing in as herself again fails.
    page = flow.authorize(
        client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code", scope="openid",
        state="s", code_challenge="x" * 43, code_challenge_method="S256",
        claims=json.dumps({"id_token": {"sub": {"value": "someone-else"}}}))
    r = flow.login(page)
    assert r.status_code == 303 and query_of(r.headers["location"])["error"] == "login_required"
