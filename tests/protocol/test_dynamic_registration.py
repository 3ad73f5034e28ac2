"""Dynamic client registration (RFC 7591, OIDC Registration) and its management protocol (RFC 7592),
over HTTP against the app, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from joserfc import jws, jwt
from joserfc.jwk import ECKey, OctKey
from sqlalchemy import select, update
from starlette.testclient import TestClient
from support import ISSUER, Quiet, RegisteredClient, make_settings, query_of, serving
from typer.testing import CliRunner

from idbroker.accounts import throttle
from idbroker.app import create_app
from idbroker.cli import app as cli_app
from idbroker.cli import context as ctx
from idbroker.provider import Provider
from idbroker.store.db import utcnow
from idbroker.store.models import AuditEvent, Client, RegistrationToken

STATEMENT_KEY = ECKey.generate_key("P-256", parameters={"kid": "trusted"})
OTHER_KEY = ECKey.generate_key("P-256", parameters={"kid": "trusted"})
WEB = {"redirect_uris": ["https://rp.example/cb"], "client_name": "RP"}


@pytest.fixture
def settings_overrides(tmp_path: Any) -> dict[str, Any]:
    path = tmp_path / "statement-keys.json"
    path.write_text(json.dumps({"keys": [STATEMENT_KEY.as_dict(private=False)]}))
    return {"registration": "open", "registration_software_statement_jwks": str(path)}


@pytest.fixture
def app_with(database: Any, tmp_path: Any) -> Iterator[Any]:
    """A client of another app on the same store, with these settings."""
    opened: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        provider = Provider(make_settings(tmp_path, **overrides), db=database)
        provider.keys.ensure()
        client = TestClient(create_app(provider=provider), base_url=ISSUER, follow_redirects=False)
        client.__enter__()
        client.provider = provider  # type: ignore[attr-defined]
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def register(http: Any, body: dict[str, Any], token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http.post("/oauth2/register", json=body, headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- on or off -----------------------------------------------------------------------------------
def test_off_by_default_answers_404_and_discovery_omits_it(app_with: Any) -> None:
    http = app_with()
    assert register(http, WEB).status_code == 404
    assert http.get("/oauth2/register/anything", headers=bearer("x")).status_code == 404
    assert "registration_endpoint" not in http.get("/.well-known/openid-configuration").json()


def test_discovery_names_the_endpoint_when_on(http: Any) -> None:
    meta = http.get("/.well-known/openid-configuration").json()
    assert meta["registration_endpoint"] == ISSUER + "/oauth2/register"


# -- open registration ---------------------------------------------------------------------------
def test_registered_client_completes_a_code_flow_with_consent_and_rs256(http: Any, flow: Any, user: Any,
                                                                        provider: Any) -> None:
    answer = register(http, WEB)
    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["client_secret"] and body["client_secret_expires_at"] == 0
    assert body["registration_access_token"] and isinstance(body["client_id_issued_at"], int)
    assert body["registration_client_uri"] == f"{ISSUER}/oauth2/register/{body['client_id']}"
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["grant_types"] == ["authorization_code"] and body["response_types"] == ["code"]
    assert body["id_token_signed_response_alg"] == "RS256"  # OIDC Registration §2 default
    assert body["application_type"] == "web" and body["client_name"] == "RP"
    assert set(body["scope"].split()) == {"openid", "profile", "email", "phone", "address", "offline_access"}
    row = provider.clients.get(body["client_id"])
    assert row.registered_dynamically and not row.first_party
    assert row.secret_hash != body["client_secret"]
    assert row.registration_access_token_hash not in (None, body["registration_access_token"])
    client = RegisteredClient(body["client_id"], body["client_secret"], "https://rp.example/cb")
    from support import pkce_pair
    verifier, challenge = pkce_pair()
    page = flow.authorize(client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code",
                          scope="openid email", state="s", nonce="n", code_challenge=challenge,
                          code_challenge_method="S256")
    page = flow.login(page)
    assert 'action="/consent"' in page.text  # never first-party: consent is asked
    done = flow.consent(page)
    q = query_of(done.headers["location"])
    tokens = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier})
    assert tokens.status_code == 200, tokens.text
    assert jws.extract_compact(tokens.json()["id_token"].encode()).protected["alg"] == "RS256"


def test_public_client_through_none_needs_pkce(http: Any, flow: Any, user: Any) -> None:
    body = register(http, {**WEB, "token_endpoint_auth_method": "none"}).json()
    assert "client_secret" not in body and body["token_endpoint_auth_method"] == "none"
    client = RegisteredClient(body["client_id"], None, "https://rp.example/cb")
    without = http.get("/oauth2/authorize", params={"client_id": client.client_id, "redirect_uri": client.redirect_uri,
                                                    "response_type": "code", "scope": "openid", "state": "s"})
    assert without.status_code == 303 and query_of(without.headers["location"])["error"] == "invalid_request"
    q, verifier = flow.code_flow(client, scope="openid")
    tokens = http.post("/oauth2/token", data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier, "client_id": client.client_id})
    assert tokens.status_code == 200, tokens.text


@pytest.mark.parametrize(("app_type", "uri"), [
    ("web", "https://rp.example/cb"),
    ("web", "http://127.0.0.1:8765/cb"),        # loopback, as for every client
    ("native", "com.example.app:/oauth2redirect"),  # RFC 8252 §7.1
    ("native", "http://127.0.0.1/cb"),             # RFC 8252 §7.3
    ("native", "http://[::1]:5000/cb"),
])
def test_allowed_redirect_uris(http: Any, app_type: str, uri: str) -> None:
    answer = register(http, {"redirect_uris": [uri], "application_type": app_type})
    assert answer.status_code == 201, answer.text
    assert answer.json()["redirect_uris"] == [uri] and answer.json()["application_type"] == app_type


@pytest.mark.parametrize(("app_type", "uri"), [
    ("web", "http://rp.example/cb"),            # a web client on plain http: refused (issue 15)
    ("web", "com.example.app:/cb"),             # an app's own scheme is for native clients
    ("native", "myapp:/cb"),                    # not a reverse-DNS scheme (RFC 8252 §7.1)
    ("web", "https://rp.example/cb#frag"),      # RFC 6749 §3.1.2
    ("web", "/relative/cb"),
])
def test_refused_redirect_uris(http: Any, provider: Any, app_type: str, uri: str) -> None:
    answer = register(http, {"redirect_uris": [uri], "application_type": app_type})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_redirect_uri", answer.text
    assert answer.json()["error_description"]
    assert provider.clients.list() == []


def test_missing_redirect_uris_is_invalid_redirect_uri(http: Any) -> None:
    answer = register(http, {"client_name": "no uris"})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_redirect_uri"


@pytest.mark.parametrize("extra", [
    {"grant_types": ["password"]},
    {"grant_types": ["authorization_code", "urn:ietf:params:oauth:grant-type:token-exchange"]},
    {"grant_types": ["refresh_token"]},                          # code needs authorization_code
    {"grant_types": ["authorization_code", "client_credentials"], "token_endpoint_auth_method": "none"},
    {"token_endpoint_auth_method": "client_secret_jwt"},
    {"token_endpoint_auth_method": "private_key_jwt"},           # no keys
    {"scope": "openid idbroker:admin"},                          # the broker's own scopes: never
    {"scope": "openid idbroker:metrics"},
    {"scope": "openid aws.credentials"},
    {"scope": "openid something_else"},                          # outside registration_allowed_scopes
    {"id_token_signed_response_alg": "HS256"},
    {"id_token_encrypted_response_alg": "RSA-OAEP"},
    {"logo_uri": "http://rp.example/logo.png"},
    {"policy_uri": "javascript:alert(1)"},
    {"contacts": "admin@rp.example"},
    {"application_type": "desktop"},
    {"client_name": 42},
    {"subject_type": "secret"},
    {"jwks": {"keys": [STATEMENT_KEY.as_dict(private=False)]}, "jwks_uri": "https://rp.example/jwks"},
    {"jwks": {"keys": [STATEMENT_KEY.as_dict(private=True)]}},   # private keys
    {"jwks_uri": "http://rp.example/jwks"},
])
def test_metadata_rules(http: Any, provider: Any, extra: dict[str, Any]) -> None:
    answer = register(http, {**WEB, **extra})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_client_metadata"
    assert provider.clients.list() == []


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b'{"redirect_uris": ["https://rp.example/cb"]'])
def test_body_must_be_a_json_object(http: Any, content: bytes) -> None:
    answer = http.post("/oauth2/register", content=content, headers={"content-type": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_client_metadata"
    form = http.post("/oauth2/register", data={"redirect_uris": "https://rp.example/cb"})
    assert form.status_code == 400 and form.json()["error"] == "invalid_client_metadata"


def test_metadata_is_registered_as_sent(http: Any, provider: Any) -> None:
    sent = {**WEB, "logo_uri": "https://rp.example/logo.png", "client_uri": "https://rp.example/",
            "policy_uri": "https://rp.example/privacy", "tos_uri": "https://rp.example/terms",
            "contacts": ["ops@rp.example"], "post_logout_redirect_uris": ["https://rp.example/bye"],
            "backchannel_logout_uri": "https://rp.example/bc", "scope": "openid email",
            "grant_types": ["authorization_code", "refresh_token"], "id_token_signed_response_alg": "ES256",
            "userinfo_signed_response_alg": "RS256"}
    body = register(http, sent).json()
    for key, value in sent.items():
        assert body[key] == value, key
    read = http.get(body["registration_client_uri"], headers=bearer(body["registration_access_token"])).json()
    assert {k: v for k, v in read.items() if k in sent} == sent


class JwksServer(Quiet):
    document: bytes = b""

    def do_GET(self) -> None:  # noqa: N802
        self.answer(200, self.document)


def test_jwks_uri_is_read_for_private_key_jwt(http: Any, provider: Any) -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "rp-1"})
    JwksServer.document = json.dumps({"keys": [key.as_dict(private=False)]}).encode()
    with serving(JwksServer) as base:
        uri = base + "/jwks.json"
        body = register(http, {**WEB, "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": uri,
                               "grant_types": ["client_credentials"], "response_types": [],
                               "redirect_uris": []}).json()
        assert body["jwks_uri"] == uri and "client_secret" not in body
        assert provider.clients.get(body["client_id"]).jwks["keys"][0]["kid"] == "rp-1"
        now = int(time.time())
        assertion = jwt.encode({"alg": "ES256", "kid": "rp-1"}, {
            "iss": body["client_id"], "sub": body["client_id"], "aud": ISSUER + "/oauth2/token",
            "jti": f"j-{now}", "iat": now, "exp": now + 60}, key)
        tokens = http.post("/oauth2/token", data={
            "grant_type": "client_credentials", "client_assertion": assertion,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})
        assert tokens.status_code == 200, tokens.text


# -- token mode ----------------------------------------------------------------------------------
def test_token_mode_needs_a_valid_initial_access_token(app_with: Any) -> None:
    http = app_with(registration="token")
    service = http.provider.registration
    missing = register(http, WEB)
    assert missing.status_code == 401 and missing.json()["error"] == "invalid_token"
    assert missing.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert register(http, WEB, token="not-a-token").status_code == 401
    once = service.issue_initial_token(max_uses=1)
    bad = register(http, {**WEB, "redirect_uris": ["http://rp.example/cb"]}, token=once)
    assert bad.status_code == 400  # refused metadata does not use the token up
    assert register(http, WEB, token=once).status_code == 201
    used_up = register(http, WEB, token=once)
    assert used_up.status_code == 401 and used_up.json()["error"] == "invalid_token"
    many = service.issue_initial_token(expires_in=600)
    assert register(http, WEB, token=many).status_code == 201
    assert register(http, WEB, token=many).status_code == 201
    with http.provider.db.session() as s:
        s.execute(update(RegistrationToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    expired = register(http, WEB, token=many)
    assert expired.status_code == 401 and expired.json()["error"] == "invalid_token"
    with http.provider.db.session(write=False) as s:
        assert all(len(t.token_hash) == 64 and t.token_hash not in (once, many)
                   for t in s.scalars(select(RegistrationToken)))


def test_cli_creates_an_initial_access_token(app_with: Any, database: Any, tmp_path: Any, monkeypatch: Any) -> None:
    from support import TEST_SECRET
    monkeypatch.setenv("IDBROKER_DATABASE_URL", database.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("IDBROKER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("IDBROKER_SECRET_KEY", TEST_SECRET)
    ctx.provider.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["clients", "registration-token", "--expires-in", "600",
                                              "--max-uses", "1"])
        assert result.exit_code == 0, result.output
        token = result.output.strip().splitlines()[-1]
        bad = CliRunner().invoke(cli_app, ["clients", "registration-token", "--max-uses", "0"])
        assert bad.exit_code == 1 and "--max-uses" in bad.output and "Traceback" not in bad.output
    finally:
        ctx.provider.cache_clear()
    http = app_with(registration="token")
    assert register(http, WEB, token=token).status_code == 201
    assert register(http, WEB, token=token).status_code == 401


# -- RFC 7592 ------------------------------------------------------------------------------------
def test_read_needs_the_registration_access_token(http: Any, register: Any) -> None:
    mine = register_client(http)
    other = register_client(http)
    uri, token = mine["registration_client_uri"], mine["registration_access_token"]
    assert http.get(uri).status_code == 401
    assert http.get(uri, headers=bearer("wrong")).status_code == 401
    assert http.get(uri, headers=bearer(other["registration_access_token"])).status_code == 401
    wrong = http.get(uri, headers=bearer("wrong"))
    assert wrong.json()["error"] == "invalid_token" and "Bearer" in wrong.headers["www-authenticate"]
    read = http.get(uri, headers=bearer(token))
    assert read.status_code == 200 and read.json()["client_id"] == mine["client_id"]
    assert "client_secret" not in read.json() and "registration_access_token" not in read.json()
    register("static")  # registered by the operator: not managed through RFC 7592
    assert http.get(ISSUER + "/oauth2/register/static", headers=bearer(token)).status_code == 401


def register_client(http: Any, **extra: Any) -> dict[str, Any]:
    answer = register(http, {**WEB, **extra})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_update_replaces_the_metadata(http: Any, provider: Any) -> None:
    mine = register_client(http, logo_uri="https://rp.example/logo.png")
    uri, token = mine["registration_client_uri"], mine["registration_access_token"]
    new = {"client_id": mine["client_id"], "redirect_uris": ["https://rp.example/cb2"], "client_name": "RP 2"}
    assert http.put(uri, json=new).status_code == 401
    assert http.put(uri, json=new, headers=bearer("wrong")).status_code == 401
    other_id = http.put(uri, json={**new, "client_id": "someone"}, headers=bearer(token))
    assert other_id.status_code == 400 and other_id.json()["error"] == "invalid_client_metadata"
    bad_secret = http.put(uri, json={**new, "client_secret": "guess"}, headers=bearer(token))
    assert bad_secret.status_code == 400
    bad_uri = http.put(uri, json={**new, "redirect_uris": ["http://rp.example/cb"]}, headers=bearer(token))
    assert bad_uri.status_code == 400 and bad_uri.json()["error"] == "invalid_redirect_uri"
    assert provider.clients.get(mine["client_id"]).redirect_uris == ["https://rp.example/cb"]
    done = http.put(uri, json={**new, "client_secret": mine["client_secret"]}, headers=bearer(token))
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["redirect_uris"] == ["https://rp.example/cb2"] and body["client_name"] == "RP 2"
    assert "logo_uri" not in body  # full replace: what is omitted is gone (RFC 7592 §2.2)
    row = provider.clients.get(mine["client_id"])
    assert row.redirect_uris == ["https://rp.example/cb2"] and row.logo_uri is None and not row.first_party
    assert provider.clients.verify_secret(row, mine["client_secret"])  # the secret is kept
    assert http.get(uri, headers=bearer(token)).json()["client_name"] == "RP 2"


def test_delete_removes_the_client_and_its_grants(http: Any, flow: Any, user: Any, provider: Any) -> None:
    mine = register_client(http)
    uri, token = mine["registration_client_uri"], mine["registration_access_token"]
    client = RegisteredClient(mine["client_id"], mine["client_secret"], "https://rp.example/cb")
    q, verifier = flow.code_flow(client, scope="openid email")
    tokens = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier}).json()
    access = tokens["access_token"]
    assert http.get("/oauth2/userinfo", headers=bearer(access)).status_code == 200
    assert http.delete(uri).status_code == 401
    assert http.delete(uri, headers=bearer("wrong")).status_code == 401
    gone = http.delete(uri, headers=bearer(token))
    assert gone.status_code == 204 and gone.content == b""
    assert provider.clients.get(mine["client_id"]) is None
    assert http.get(uri, headers=bearer(token)).status_code == 401
    assert http.get("/oauth2/userinfo", headers=bearer(access)).status_code == 401


def test_events_are_audited(http: Any, provider: Any) -> None:
    mine = register_client(http)
    uri, token = mine["registration_client_uri"], mine["registration_access_token"]
    http.put(uri, json={"client_id": mine["client_id"], **WEB}, headers=bearer(token))
    http.delete(uri, headers=bearer(token))
    with provider.db.session(write=False) as s:
        events = [(e.kind, e.detail["client_id"]) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert events == [(k, mine["client_id"]) for k in ("client.registered", "client.updated", "client.deleted")]


def test_registrations_are_rate_limited_per_address(http: Any, monkeypatch: Any) -> None:
    monkeypatch.setitem(throttle.LIMITS, "register-ip", (2, 3600))
    assert register(http, WEB).status_code == 201
    assert register(http, WEB).status_code == 201
    third = register(http, WEB)
    assert third.status_code == 429 and int(third.headers["retry-after"]) >= 1


# -- software statements (RFC 7591 §2.3) -----------------------------------------------------------
def statement(key: Any, **claims: Any) -> str:
    return jwt.encode({"alg": "ES256", "kid": key.kid}, {"iss": "https://vendor.example", **claims}, key)


def test_software_statement_claims_win(http: Any, provider: Any) -> None:
    signed = statement(STATEMENT_KEY, software_id="rp-suite", client_name="Vendor RP",
                       redirect_uris=["https://vendor.example/cb"])
    answer = register(http, {**WEB, "software_statement": signed})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["client_name"] == "Vendor RP" and body["redirect_uris"] == ["https://vendor.example/cb"]
    assert body["software_id"] == "rp-suite"


@pytest.mark.parametrize(("make", "error"), [
    (lambda: statement(OTHER_KEY, client_name="x"), "unapproved_software_statement"),
    (lambda: statement(STATEMENT_KEY, client_name="x", exp=int(time.time()) - 10), "invalid_software_statement"),
    (lambda: "not.a.jwt", "invalid_software_statement"),
    (lambda: 42, "invalid_software_statement"),
    (lambda: jws.serialize_compact({"alg": "HS256"}, b"{}", OctKey.import_key(b"s" * 32), algorithms=["HS256"]),
     "invalid_software_statement"),
])
def test_software_statement_refused(http: Any, provider: Any, make: Any, error: str) -> None:
    answer = register(http, {**WEB, "software_statement": make()})
    assert answer.status_code == 400 and answer.json()["error"] == error, answer.text
    assert provider.clients.list() == []


def test_software_statement_without_configured_keys(app_with: Any) -> None:
    http = app_with(registration="open")
    answer = register(http, {**WEB, "software_statement": statement(STATEMENT_KEY)})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_software_statement"


def test_registered_row_is_marked(http: Any, provider: Any) -> None:
    mine = register_client(http)
    with provider.db.session(write=False) as s:
        row = s.get(Client, mine["client_id"])
        assert row.registered_dynamically and row.application_type == "web"
