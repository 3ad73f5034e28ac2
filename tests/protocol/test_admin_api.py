"""The admin REST API (issue 13, Admin) through HTTP with real client_credentials tokens, on
SQLite and PostgreSQL: scopes enforced (RFC 6750), every resource's happy path and errors, cursor
paging without duplicates or gaps, ETag / If-Match, 409 and 422 with field paths, audit written,
secrets never answered; the OpenAPI document matches the mounted routes."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from starlette.routing import Route
from support import PASSWORD, pkce_pair

from idbroker.endpoints.admin.spec import BASE
from idbroker.store.models import AuditEvent, BrowserSession, MfaFactor, RecoveryCode

API = BASE
CC = dict(grant_types=["client_credentials"], response_types=[], redirect_uris=[], post_logout_redirect_uris=[])


def token_for(http: Any, register: Any, client_id: str, scopes: list[str]) -> str:
    client = register(client_id, scopes=scopes, **CC)
    r = http.post("/oauth2/token", auth=client.basic,
                  data={"grant_type": "client_credentials", "scope": " ".join(scopes)})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


@pytest.fixture
def writer(http: Any, register: Any) -> dict[str, str]:
    return {"Authorization": "Bearer " + token_for(http, register, "ops", ["idbroker:admin:write"])}


@pytest.fixture
def reader(http: Any, register: Any) -> dict[str, str]:
    return {"Authorization": "Bearer " + token_for(http, register, "viewer", ["idbroker:admin:read"])}


def test_tokens_and_scopes_are_enforced(http, register, reader, writer, user, provider):
    r = http.get(f"{API}/users")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    r = http.get(f"{API}/users", headers={"Authorization": "Bearer nonsense"})
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    other = {"Authorization": "Bearer " + token_for(http, register, "plain", ["api"])}
    r = http.get(f"{API}/users", headers=other)
    assert r.status_code == 403 and 'error="insufficient_scope"' in r.headers["www-authenticate"]
    assert 'scope="idbroker:admin:read"' in r.headers["www-authenticate"]
    assert http.get(f"{API}/users", headers=reader).status_code == 200
    r = http.post(f"{API}/users/{user.sub}/reset-mfa", headers=reader)
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
    assert http.get(f"{API}/users", headers=writer).status_code == 200  # write includes read
    assert http.post(f"{API}/users/{user.sub}/reset-mfa", headers=writer).status_code == 200
    # A revoked token stops working at once.
    client = register("ops2", scopes=["idbroker:admin:write"], **CC)
    token = http.post("/oauth2/token", auth=client.basic, data={"grant_type": "client_credentials",
                                                                "scope": "idbroker:admin:write"}).json()["access_token"]
    assert http.get(f"{API}/keys", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert http.post("/oauth2/revoke", auth=client.basic, data={"token": token}).status_code == 200
    assert http.get(f"{API}/keys", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_user_token_is_not_an_admin_token(http, register, flow, user):
    client = register("web", scopes=["openid", "idbroker:admin:write"])
    q, verifier = flow.code_flow(client, scope="openid idbroker:admin:write")
    r = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier})
    assert r.status_code == 200, r.text
    r = http.get(f"{API}/users", headers={"Authorization": "Bearer " + r.json()["access_token"]})
    assert r.status_code == 403


def test_clients_lifecycle_with_secret_once_etag_and_conflicts(http, writer, reader):
    body = {"client_id": "shop", "name": "Shop", "redirect_uris": ["https://shop.example/cb"]}
    r = http.post(f"{API}/clients", headers=writer, json=body)
    assert r.status_code == 201, r.text
    secret = r.json()["client_secret"]
    assert secret and r.json()["has_secret"] is True and "secret_hash" not in r.json()
    # The secret works at the token endpoint (client_secret_basic), and is never shown again.
    got = http.get(f"{API}/clients/shop", headers=reader)
    assert got.status_code == 200 and "client_secret" not in got.json() and secret not in got.text
    assert all(secret not in c and "secret_hash" not in c
               for c in [http.get(f"{API}/clients", headers=reader).text])
    tag = got.headers["etag"]
    assert http.post(f"{API}/clients", headers=writer, json=body).status_code == 409

    r = http.patch(f"{API}/clients/shop", headers={**writer, "If-Match": tag}, json={"name": "Shop 2"})
    assert r.status_code == 200 and r.json()["name"] == "Shop 2" and r.headers["etag"] != tag
    stale = http.patch(f"{API}/clients/shop", headers={**writer, "If-Match": tag}, json={"name": "Shop 3"})
    assert stale.status_code == 412
    assert http.get(f"{API}/clients/shop", headers=reader).json()["name"] == "Shop 2"

    rotated = http.post(f"{API}/clients/shop/secret", headers=writer)
    assert rotated.status_code == 200 and rotated.json()["client_secret"] not in (None, secret)
    cc = http.post("/oauth2/token", auth=("shop", secret), data={"grant_type": "client_credentials"})
    assert cc.status_code == 401  # the old secret no longer authenticates

    assert http.delete(f"{API}/clients/shop", headers={**writer, "If-Match": '"stale"'}).status_code == 412
    assert http.delete(f"{API}/clients/shop", headers=writer).status_code == 204
    assert http.get(f"{API}/clients/shop", headers=reader).status_code == 404
    assert http.delete(f"{API}/clients/shop", headers=writer).status_code == 404


def test_client_validation_errors_have_field_paths(http, writer):
    r = http.post(f"{API}/clients", headers=writer, json={
        "client_id": "bad", "redirect_uris": ["https://ok.example/cb", "http://evil.example/cb#frag"]})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_request"
    assert any(e["path"] == "redirect_uris[1]" for e in r.json()["errors"]), r.json()
    r = http.post(f"{API}/clients", headers=writer, json={"client_id": "bad", "redirect_uris": ["x", 3],
                                                          "first_party": "yes", "nonsense": 1})
    paths = {e["path"] for e in r.json()["errors"]}
    assert r.status_code == 422 and {"redirect_uris[1]", "first_party", "nonsense"} <= paths
    assert http.post(f"{API}/clients", headers=writer, content=b"{").status_code == 415
    r = http.post(f"{API}/clients", headers={**writer, "Content-Type": "application/json"}, content=b"[1]")
    assert r.status_code == 400
    r = http.post(f"{API}/clients", headers={**writer, "Content-Type": "application/json"},
                  content=b'{"client_id":"' + b"x" * 70000 + b'"}')
    assert r.status_code == 413


def test_users_create_update_signout_reset_delete(http, writer, reader, provider, flow, register):
    r = http.post(f"{API}/users", headers=writer, json={"email": "Bob@Example.com", "password": PASSWORD,
                                                        "given_name": "Bob", "groups": ["staff"]})
    assert r.status_code == 201, r.text
    bob = r.json()
    assert bob["email"] == "bob@example.com" and "password" not in r.text and "password_hash" not in r.text
    assert http.post(f"{API}/users", headers=writer, json={"email": "bob@example.com"}).status_code == 409
    r = http.post(f"{API}/users", headers=writer, json={"email": "not-an-address", "groups": "x"})
    assert r.status_code == 422 and {"email", "groups"} <= {e["path"] for e in r.json()["errors"]}

    got = http.get(f"{API}/users/{bob['id']}", headers=reader)
    assert got.status_code == 200 and got.json()["groups"] == ["staff"]
    by_mail = http.get(f"{API}/users/bob@example.com", headers=reader)
    assert by_mail.json()["id"] == bob["id"]
    tag = got.headers["etag"]
    r = http.patch(f"{API}/users/{bob['id']}", headers={**writer, "If-Match": tag},
                   json={"family_name": "Builder", "groups": ["staff", "admins"], "email_verified": True})
    assert r.status_code == 200 and r.json()["family_name"] == "Builder"
    assert http.patch(f"{API}/users/{bob['id']}", headers={**writer, "If-Match": tag},
                      json={"family_name": "X"}).status_code == 412
    r = http.patch(f"{API}/users/{bob['id']}", headers=writer, json={"password_hash": "x", "disabled": "no"})
    assert r.status_code == 422 and {"password_hash", "disabled"} <= {e["path"] for e in r.json()["errors"]}

    # Bob signs in; his session is listed, then signed out everywhere.
    client = register()
    _, challenge = pkce_pair()
    page = flow.authorize(client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code",
                          scope="openid", state="s", code_challenge=challenge, code_challenge_method="S256")
    page = flow.login(page, email="bob@example.com")
    if page.status_code == 200 and 'action="/consent"' in page.text:
        page = flow.consent(page)
    assert page.status_code == 303, page.text
    sessions = http.get(f"{API}/users/{bob['id']}/sessions", headers=reader).json()["items"]
    assert len(sessions) == 1
    r = http.post(f"{API}/users/{bob['id']}/signout", headers=writer)
    assert r.status_code == 200 and r.json()["sessions_ended"] == 1
    assert http.get(f"{API}/users/{bob['id']}/sessions", headers=reader).json()["items"] == []

    # reset-mfa removes factors and recovery codes.
    user = provider.users.by_email("bob@example.com")
    factor = provider.mfa.add_pending(user.id, "totp", secret="JBSWY3DPEHPK3PXP")
    provider.mfa.confirm(factor.id)
    provider.mfa.new_recovery_codes(user.id)
    r = http.post(f"{API}/users/{bob['id']}/reset-mfa", headers=writer)
    assert r.status_code == 200 and r.json()["factors_removed"] >= 1
    with provider.db.session(write=False) as s:
        assert s.scalars(select(MfaFactor).where(MfaFactor.user_id == user.id)).first() is None
        assert s.scalars(select(RecoveryCode).where(RecoveryCode.user_id == user.id)).first() is None

    assert http.delete(f"{API}/users/{bob['id']}", headers=writer).status_code == 204
    assert http.get(f"{API}/users/{bob['id']}", headers=reader).status_code == 404
    assert http.post(f"{API}/users/{bob['id']}/signout", headers=writer).status_code == 404


def test_disabling_a_user_ends_the_sessions(http, writer, flow, register, user, provider):
    flow.code_flow(register())
    with provider.db.session(write=False) as s:
        assert s.scalars(select(BrowserSession).where(BrowserSession.user_id == user.id,
                                                      BrowserSession.ended_at.is_(None))).first() is not None
    r = http.patch(f"{API}/users/{user.sub}", headers=writer, json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True
    with provider.db.session(write=False) as s:
        assert s.scalars(select(BrowserSession).where(BrowserSession.user_id == user.id,
                                                      BrowserSession.ended_at.is_(None))).first() is None
    assert http.get(f"{API}/users?status=disabled", headers=writer).json()["items"][0]["id"] == user.sub
    assert http.get(f"{API}/users?status=active", headers=writer).json()["items"] == []


def test_user_search_pages_without_duplicates_or_gaps(http, reader, provider):
    made = []
    for i in range(23):
        u = provider.users.create(f"user{i:02d}@example.com", None, given_name=f"Name{i}",
                                  groups=["odd"] if i % 2 else ["even"])
        made.append(u.sub)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        r = http.get(f"{API}/users", headers=reader, params={"limit": 5, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        seen += [u["id"] for u in r.json()["items"]]
        pages += 1
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
        if pages == 2:  # rows created between pages do not shift the others
            made.append(provider.users.create("late@example.com", None).sub)
    assert seen == made and len(set(seen)) == len(seen) and pages == 5

    odd: list[str] = []
    cursor = None
    while True:
        r = http.get(f"{API}/users", headers=reader,
                     params={"group": "odd", "limit": 4, **({"cursor": cursor} if cursor else {})}).json()
        odd += [u["email"] for u in r["items"]]
        cursor = r["next_cursor"]
        if cursor is None:
            break
    assert odd == [f"user{i:02d}@example.com" for i in range(1, 23, 2)]
    r = http.get(f"{API}/users", headers=reader, params={"email": "USER1", "name": "name1"}).json()
    assert [u["email"] for u in r["items"]] == [f"user{i}@example.com" for i in range(10, 20)]
    bad = http.get(f"{API}/users", headers=reader, params={"cursor": "garbage!"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "cursor"
    assert http.get(f"{API}/users", headers=reader, params={"limit": "0"}).status_code == 400
    assert http.get(f"{API}/users", headers=reader, params={"status": "gone"}).status_code == 422


def test_audit_events_filter_and_page_and_every_call_is_audited(http, reader, writer, user, provider):
    for _ in range(7):
        provider.audit.record("login.failed", user_id=user.id, ip="192.0.2.1")
    provider.audit.record("login.succeeded", user_id=user.id)
    ids: list[int] = []
    cursor = None
    while True:
        r = http.get(f"{API}/audit-events", headers=reader, params={
            "user": user.email, "kind": "login.failed", "since": "1h", "limit": 3,
            **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        ids += [e["id"] for e in r.json()["items"]]
        assert all(e["user_id"] == user.sub and e["kind"] == "login.failed" for e in r.json()["items"])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert len(ids) == 7 and ids == sorted(ids, reverse=True)
    assert http.get(f"{API}/audit-events", headers=reader, params={"until": "2000-01-01"}).json()["items"] == []
    assert http.get(f"{API}/audit-events", headers=reader, params={"since": "yesterday"}).status_code == 422
    # "³" is a digit to str.isdigit(), not to int(): refused like any other bad limit, never a 500
    assert http.get(f"{API}/audit-events", headers=reader, params={"limit": "\u00b3"}).status_code == 400
    assert http.get(f"{API}/audit-events", headers=reader, params={"since": "\u00b2h"}).status_code == 422

    http.patch(f"{API}/users/{user.sub}", headers=writer, json={"given_name": "Alicia"})
    http.post(f"{API}/clients", headers=writer, json={"client_id": "sekrit",
                                                      "redirect_uris": ["https://s.example/cb"]})
    with provider.db.session(write=False) as s:
        calls = list(s.scalars(select(AuditEvent).where(AuditEvent.kind == "admin.call").order_by(AuditEvent.id)))
    details = [c.detail for c in calls]
    assert {"method": "PATCH", "path": f"{API}/users/{{user_id}}", "client_id": "ops", "status": 200} in details
    assert {"method": "POST", "path": f"{API}/clients", "client_id": "ops", "status": 201} in details
    assert any(d["client_id"] == "viewer" and d["method"] == "GET" for d in details)
    http.get(f"{API}/keys")  # no token: refused, and audited too
    with provider.db.session(write=False) as s:
        last = s.scalars(select(AuditEvent).where(AuditEvent.kind == "admin.call").order_by(AuditEvent.id.desc())
                         ).first()
    assert last.detail == {"method": "GET", "path": f"{API}/keys", "client_id": None, "status": 401}
    created = http.get(f"{API}/clients/sekrit", headers=reader)
    assert created.status_code == 200
    assert all("secret" not in str(d.values()) or d["path"].endswith("/secret") for d in details)


def test_keys_terms_upstreams_and_sources(http, reader, writer, provider):
    keys = http.get(f"{API}/keys", headers=reader).json()["items"]
    assert keys and all("d" not in k["public_jwk"] for k in keys)
    r = http.post(f"{API}/keys", headers=writer, json={"alg": "RS256"})
    assert r.status_code == 201 and r.json()["alg"] == "RS256" and "d" not in r.json()["public_jwk"]
    assert len(http.get(f"{API}/keys", headers=reader).json()["items"]) == len(keys) + 1
    assert http.post(f"{API}/keys", headers=writer, json={"alg": "HS256"}).status_code == 422

    terms = http.get(f"{API}/terms", headers=reader)
    assert terms.status_code == 200 and "versions" in terms.json()

    body = {"id": "corp", "kind": "oidc", "name": "Corp", "options": {"issuer": "https://corp.example"},
            "secrets": {"client_secret": "s3cr3t-value"}}
    r = http.post(f"{API}/upstreams", headers=writer, json={**body, "options": {
        **body["options"], "client_id": "broker"}})
    assert r.status_code == 201, r.text
    assert "s3cr3t-value" not in r.text and r.json()["secret_names"] == ["client_secret"]
    assert "s3cr3t-value" not in http.get(f"{API}/upstreams/corp", headers=reader).text
    assert http.post(f"{API}/upstreams", headers=writer, json=body).status_code == 409
    tag = http.get(f"{API}/upstreams/corp", headers=reader).headers["etag"]
    r = http.patch(f"{API}/upstreams/corp", headers={**writer, "If-Match": tag}, json={"name": "Corp SSO"})
    assert r.status_code == 200 and r.json()["name"] == "Corp SSO"
    assert http.delete(f"{API}/upstreams/corp", headers={**writer, "If-Match": tag}).status_code == 412
    assert http.delete(f"{API}/upstreams/corp", headers=writer).status_code == 204
    assert http.get(f"{API}/upstreams/corp", headers=reader).status_code == 404
    assert http.post(f"{API}/upstreams", headers=writer, json={"id": "x", "kind": "nope", "name": "X"}
                     ).status_code == 422
    assert http.get(f"{API}/upstreams", headers=reader).status_code == 200
    assert http.get(f"{API}/migration-sources", headers=reader).json() == {"items": []}
    assert http.get(f"{API}/migration-sources/none", headers=reader).status_code == 404
    r = http.post(f"{API}/migration-sources", headers=writer, json={"id": "old", "kind": "nope"})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "kind"


def test_openapi_document_matches_the_routes(http, app):
    doc = http.get(f"{API}/openapi.json").json()
    try:
        from openapi_spec_validator import validate
    except ImportError:  # not a dependency: check the structure ourselves
        validate = None
    if validate is not None:
        validate(doc)
    assert doc["openapi"] == "3.1.0"
    documented = {(path, method.upper()) for path, methods in doc["paths"].items() for method in methods}
    mounted = {(r.path, m) for r in app.routes if isinstance(r, Route) and r.path.startswith(API + "/")
               and r.path not in (f"{API}/", f"{API}/openapi.json") for m in (r.methods or ()) if m != "HEAD"}
    assert documented == mounted
    for path, methods in doc["paths"].items():
        for op in methods.values():
            for ref in _refs(op):
                assert ref.rsplit("/", 1)[-1] in doc["components"]["schemas"], ref
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == set(part[1:-1] for part in path.split("/") if part.startswith("{")), path
    page = http.get(f"{API}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text and "/users/{user_id}/reset-mfa" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert http.get(API).status_code == 200
    assert http.head(f"{API}/users").status_code == 401  # HEAD is GET without a body, behind the same gate


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [value["$ref"]] if "$ref" in value else [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def test_no_input_makes_a_server_error(http, writer, user, provider):
    """Random JSON bodies and query values on every operation: always an answer below 500."""
    import random

    from idbroker.endpoints.admin.handlers import OPERATIONS

    rng = random.Random(13)
    http.post(f"{API}/clients", headers=writer, json={"client_id": "c1", "redirect_uris": ["https://c.example/cb"]})
    ids = {"client_id": "c1", "user_id": user.sub, "sid": "nope", "upstream_id": "nope", "source_id": "nope"}
    atoms: list[Any] = [None, True, 0, -1, 2**70, 1.5, "", "x", "\u00e9" * 300, "https://a.example/cb", [], {},
                        ["x", 1], {"a": None}, "ES256", "oidc"]

    def value(depth: int = 0) -> Any:
        if depth < 2 and rng.random() < 0.2:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        if depth < 2 and rng.random() < 0.2:
            return {rng.choice(["id", "kind", "name", "x"]): value(depth + 1) for _ in range(rng.randint(0, 3))}
        return rng.choice(atoms)

    fields = ["client_id", "email", "redirect_uris", "groups", "disabled", "alg",
              "immediately", "id", "kind", "name", "options", "secrets", "position", "given_name", "address",
              "scopes", "jwks", "branding", "idps", "access_token_ttl", "phone_number"]
    for op in sorted(OPERATIONS, key=lambda o: o.method == "DELETE"):  # deletions last
        path = API + op.path.format(**ids)
        for _ in range(25):
            if op.method == "GET":
                params = {k: str(value()) for k in rng.sample(["email", "name", "group", "status", "cursor",
                                                                "limit", "user", "kind", "since", "until"], 3)}
                r = http.get(path, headers=writer, params=params)
            else:
                body = {k: value() for k in rng.sample(fields, rng.randint(0, 4))}
                if op.path in ("/clients", "/users") and rng.random() < 0.5:
                    body = {**body, "client_id": f"f{rng.randint(0, 10**6)}", "email": f"f{rng.random()}@e.example"}
                r = http.request(op.method, path, headers=writer, json=body)
            assert r.status_code < 500, (op.name, r.status_code, r.text)


def test_values_the_store_cannot_hold_are_422_not_500(http, writer, user):
    cases = [
        ("POST", "/clients", {"client_id": "big", "redirect_uris": ["https://c.example/cb"], "access_token_ttl": 2**70},
         "access_token_ttl"),
        ("POST", "/clients", {"client_id": "long", "redirect_uris": ["https://c.example/cb"], "name": "n" * 300},
         "name"),
        ("POST", "/users", {"email": "z@example.com", "given_name": "x" * 1000}, "given_name"),
        ("POST", "/users", {"email": "y@example.com", "groups": ["a\u0000"]}, "groups[0]"),
        ("PATCH", f"/users/{user.sub}", {"birthdate": "x" * 100}, "birthdate"),
        ("POST", "/migration-sources", {"id": "s", "kind": "webhook", "position": 2**70}, "position"),
        ("PATCH", f"/users/{user.sub}", {"address": {"street\u0000": "x"}}, "address.street\u0000"),
    ]
    for method, path, body, where in cases:
        r = http.request(method, API + path, headers=writer, json=body)
        assert r.status_code == 422, (path, body, r.text)
        assert where in [e["path"] for e in r.json()["errors"]], r.json()
    r = http.get(f"{API}/users", headers=writer, params={"email": "\u0000"})
    assert r.status_code == 400


def test_if_match_is_checked_again_in_the_writing_transaction(http, writer, user, provider, monkeypatch):
    """A change landing between the API's read and its write is caught: 412, nothing written."""
    from idbroker.accounts import administration

    tag = http.get(f"{API}/users/{user.sub}", headers=writer).headers["etag"]
    real = administration.find_user

    def read_then_someone_else_writes(db, key):  # type: ignore[no-untyped-def]
        row = real(db, key)
        administration.update_user(db, row.id, {"nickname": "changed meanwhile"})
        return row

    monkeypatch.setattr(administration, "find_user", read_then_someone_else_writes)
    r = http.patch(f"{API}/users/{user.sub}", headers={**writer, "If-Match": tag}, json={"given_name": "Mine"})
    assert r.status_code == 412, r.text
    monkeypatch.setattr(administration, "find_user", real)
    after = http.get(f"{API}/users/{user.sub}", headers=writer).json()
    assert after["given_name"] == "Alice" and after["nickname"] == "changed meanwhile"


def test_client_if_match_is_checked_again_in_the_writing_transaction(http, writer, provider, monkeypatch):
    from idbroker.endpoints.admin import handlers

    http.post(f"{API}/clients", headers=writer, json={"client_id": "race", "redirect_uris": ["https://r.example/cb"]})
    tag = http.get(f"{API}/clients/race", headers=writer).headers["etag"]
    real = handlers._client

    async def read_then_someone_else_writes(call):  # type: ignore[no-untyped-def]
        row = await real(call)
        provider.clients.update("race", {"name": "changed meanwhile"})
        return row

    monkeypatch.setattr(handlers, "_client", read_then_someone_else_writes)
    assert http.patch(f"{API}/clients/race", headers={**writer, "If-Match": tag}, json={"name": "Mine"}
                      ).status_code == 412
    assert http.delete(f"{API}/clients/race", headers={**writer, "If-Match": tag}).status_code == 412
    monkeypatch.setattr(handlers, "_client", real)
    assert http.get(f"{API}/clients/race", headers=writer).json()["name"] == "changed meanwhile"


@pytest.mark.parametrize("resource", ["upstreams", "migration-sources"])
def test_registry_if_match_is_checked_again_in_the_writing_transaction(http, writer, provider, monkeypatch, resource):
    """Upstream providers and migration sources: a change landing between the API's read and its
    write (PATCH or DELETE) is 412 and nothing of the stale request is written."""
    from idbroker.endpoints.admin import handlers

    if resource == "upstreams":
        body = {"id": "race", "kind": "oidc", "name": "Race",
                "options": {"issuer": "https://race.example", "client_id": "b"}}
        reader_name, change, mine = "_upstream", {"name": "changed meanwhile"}, {"name": "Mine"}
        registry = provider.upstreams
    else:
        body = {"id": "race", "kind": "webhook", "options": {"url": "https://hook.example/verify", "secret": "x" * 32}}
        reader_name, change, mine = "_source", {"enabled": False}, {"position": 1, "enabled": True}
        registry = provider.migration_sources
    assert http.post(f"{API}/{resource}", headers=writer, json=body).status_code == 201
    tag = http.get(f"{API}/{resource}/race", headers=writer).headers["etag"]
    real = getattr(handlers, reader_name)

    async def read_then_someone_else_writes(call):  # type: ignore[no-untyped-def]
        row = await real(call)
        if resource == "upstreams":
            registry.update("race", **change)
        else:
            registry.update("race", None, **change)
        return row

    monkeypatch.setattr(handlers, reader_name, read_then_someone_else_writes)
    r = http.patch(f"{API}/{resource}/race", headers={**writer, "If-Match": tag}, json=mine)
    assert r.status_code == 412, r.text
    assert http.delete(f"{API}/{resource}/race", headers={**writer, "If-Match": tag}).status_code == 412
    monkeypatch.setattr(handlers, reader_name, real)
    after = http.get(f"{API}/{resource}/race", headers=writer)
    assert after.status_code == 200
    assert all(after.json()[k] == v for k, v in change.items())


def test_user_delete_if_match_is_checked_again_before_anything_changes(http, writer, user, provider, monkeypatch):
    from idbroker.accounts import administration

    tag = http.get(f"{API}/users/{user.sub}", headers=writer).headers["etag"]
    real = administration.find_user

    def read_then_someone_else_writes(db, key):  # type: ignore[no-untyped-def]
        row = real(db, key)
        administration.update_user(db, row.id, {"nickname": "changed meanwhile"})
        return row

    monkeypatch.setattr(administration, "find_user", read_then_someone_else_writes)
    assert http.delete(f"{API}/users/{user.sub}", headers={**writer, "If-Match": tag}).status_code == 412
    monkeypatch.setattr(administration, "find_user", real)
    after = http.get(f"{API}/users/{user.sub}", headers=writer)
    assert after.status_code == 200 and after.json()["nickname"] == "changed meanwhile"
    assert http.delete(f"{API}/users/{user.sub}", headers={**writer, "If-Match": after.headers["etag"]}
                       ).status_code == 204
