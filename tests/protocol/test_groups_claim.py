"""The `groups` scope and claim (oidc/claims.py): released in the ID token and userinfo only when the
client asked for the scope and is allowed it; listed in discovery; named on the consent page."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from support import pkce_pair

from idbroker.store.models import User

SCOPES = ["openid", "profile", "email", "groups"]


@pytest.fixture
def grouped(provider: Any, user: Any) -> Any:
    with provider.db.session() as s:
        s.get(User, user.id).groups = ["engineering", "admins"]
    return user


def payload(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def tokens_for(http: Any, flow: Any, client: Any, scope: str) -> tuple[dict[str, Any], dict[str, Any]]:
    q, verifier = flow.code_flow(client, scope=scope)
    body = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier}).json()
    info = http.get("/oauth2/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}).json()
    return payload(body["id_token"]), info


def test_discovery_lists_the_groups_scope_and_claim(http: Any) -> None:
    meta = http.get("/.well-known/openid-configuration").json()
    assert "groups" in meta["scopes_supported"] and "groups" in meta["claims_supported"]


def test_groups_in_the_id_token_and_userinfo_when_asked_and_allowed(http: Any, flow: Any, register: Any,
                                                                   grouped: Any) -> None:
    client = register("rp", first_party=True, scopes=SCOPES)
    id_token, info = tokens_for(http, flow, client, "openid groups")
    assert id_token["groups"] == ["engineering", "admins"]
    assert info["groups"] == ["engineering", "admins"]


def test_no_groups_without_the_scope(http: Any, flow: Any, register: Any, grouped: Any) -> None:
    client = register("rp", first_party=True, scopes=SCOPES)
    id_token, info = tokens_for(http, flow, client, "openid email")
    assert "groups" not in id_token and "groups" not in info


def test_a_client_not_allowed_the_scope_cannot_ask_for_it(http: Any, register: Any, grouped: Any) -> None:
    client = register("rp", first_party=True)  # the default scopes: OIDC Core's only
    _, challenge = pkce_pair()
    r = http.get("/oauth2/authorize", params=dict(
        client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code", scope="openid groups",
        state="st", code_challenge=challenge, code_challenge_method="S256"))
    assert r.status_code in (302, 303)
    assert "error=invalid_scope" in r.headers["location"]


def test_the_consent_page_names_the_scope(http: Any, flow: Any, register: Any, grouped: Any) -> None:
    client = register("third", scopes=SCOPES)
    _, challenge = pkce_pair()
    page = flow.authorize(client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code",
                          scope="openid groups", state="st", code_challenge=challenge, code_challenge_method="S256")
    page = flow.login(page)
    assert page.status_code == 200 and 'action="/consent"' in page.text
    assert "The groups you belong to" in page.text
