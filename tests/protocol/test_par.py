"""Pushed authorization requests (RFC 9126) against the app, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from support import ISSUER, pkce_pair, query_of

from idbroker.oauth2.pushed_requests import URN_PREFIX
from idbroker.store.db import utcnow
from idbroker.store.models import PushedRequest


def push(http: Any, client: Any, **params: str) -> Any:
    verifier, challenge = pkce_pair()
    data = dict(response_type="code", redirect_uri=client.redirect_uri, scope="openid profile", state="s-1",
                nonce="n-1", code_challenge=challenge, code_challenge_method="S256") | params
    response = http.post("/oauth2/par", auth=client.basic, data=data)
    response.verifier = verifier  # type: ignore[attr-defined]
    return response


def sign_in_with(flow: Any, client: Any, request_uri: str) -> Any:
    page = flow.authorize(client_id=client.client_id, request_uri=request_uri)
    if 'autocomplete="current-password"' in page.text:
        page = flow.login(page)
    if 'action="/consent"' in page.text:
        page = flow.consent(page)
    return page


def test_pushed_request_signs_in_and_the_code_redeems(http: Any, flow: Any, client: Any, user: Any) -> None:
    pushed = push(http, client)
    assert pushed.status_code == 201, pushed.text
    body = pushed.json()
    assert body["request_uri"].startswith(URN_PREFIX) and body["expires_in"] == 60
    assert pushed.headers["cache-control"] == "no-store"
    done = sign_in_with(flow, client, body["request_uri"])
    assert done.status_code == 303 and done.headers["location"].startswith(client.redirect_uri)
    q = query_of(done.headers["location"])
    assert q["state"] == "s-1"
    tokens = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": pushed.verifier})
    assert tokens.status_code == 200 and "id_token" in tokens.json()


def test_request_uri_is_single_use(http: Any, flow: Any, client: Any, user: Any) -> None:
    uri = push(http, client).json()["request_uri"]
    sign_in_with(flow, client, uri)
    again = http.get("/oauth2/authorize", params={"client_id": client.client_id, "request_uri": uri})
    assert again.status_code == 303
    assert query_of(again.headers["location"])["error"] == "invalid_request_uri"


def test_expired_request_uri_is_refused(http: Any, provider: Any, client: Any) -> None:
    uri = push(http, client).json()["request_uri"]
    with provider.db.session() as s:
        s.execute(update(PushedRequest).values(expires_at=utcnow() - timedelta(seconds=1)))
    answer = http.get("/oauth2/authorize", params={"client_id": client.client_id, "request_uri": uri})
    assert query_of(answer.headers["location"])["error"] == "invalid_request_uri"


def test_request_uri_is_bound_to_its_client(http: Any, register: Any, client: Any) -> None:
    other = register("other")
    uri = push(http, client).json()["request_uri"]
    answer = http.get("/oauth2/authorize", params={"client_id": other.client_id, "request_uri": uri})
    assert query_of(answer.headers["location"])["error"] == "invalid_request_uri"


def test_push_needs_client_authentication(http: Any, client: Any) -> None:
    answer = http.post("/oauth2/par", auth=(client.client_id, "wrong"), data={"response_type": "code"})
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"


def test_push_validates_the_request(http: Any, client: Any) -> None:
    bad_redirect = push(http, client, redirect_uri="https://evil.example/cb")
    assert bad_redirect.status_code == 400 and bad_redirect.json()["error"] == "invalid_request"
    bad_scope = push(http, client, scope="openid admin")
    assert bad_scope.status_code == 400 and bad_scope.json()["error"] == "invalid_scope"
    nested = push(http, client, request_uri=URN_PREFIX + "x")
    assert nested.status_code == 400 and nested.json()["error"] == "invalid_request"


def test_client_that_requires_par_cannot_send_a_plain_request(http: Any, register: Any) -> None:
    strict = register("strict", require_par=True)
    verifier, challenge = pkce_pair()
    answer = http.get("/oauth2/authorize", params={
        "client_id": "strict", "redirect_uri": strict.redirect_uri, "response_type": "code", "scope": "openid",
        "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"})
    assert answer.status_code == 303
    q = query_of(answer.headers["location"])
    assert q["error"] == "invalid_request" and q["state"] == "s" and q["iss"] == ISSUER
    assert push(http, strict).status_code == 201


@pytest.mark.parametrize("settings_overrides", [{"par_required": True}])
def test_par_required_globally(http: Any, client: Any, settings_overrides: Any) -> None:
    meta = http.get("/.well-known/openid-configuration").json()
    assert meta["require_pushed_authorization_requests"] is True
    answer = http.get("/oauth2/authorize", params={
        "client_id": client.client_id, "redirect_uri": client.redirect_uri, "response_type": "code",
        "scope": "openid", "code_challenge": pkce_pair()[1], "code_challenge_method": "S256"})
    assert query_of(answer.headers["location"])["error"] == "invalid_request"


def test_discovery_names_the_par_endpoint(http: Any) -> None:
    meta = http.get("/.well-known/openid-configuration").json()
    assert meta["pushed_authorization_request_endpoint"] == ISSUER + "/oauth2/par"
    assert meta["require_pushed_authorization_requests"] is False
