"""Discovery metadata, JWKS and signing-key rotation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from joserfc import jwt
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from starlette.testclient import TestClient
from support import ISSUER

from idbroker.store.db import utcnow
from idbroker.store.models import SigningKey


def test_discovery_document(http):
    r = http.get("/.well-known/openid-configuration")
    m = r.json()
    assert m["issuer"] == ISSUER
    for name, path in [("authorization_endpoint", "/oauth2/authorize"), ("token_endpoint", "/oauth2/token"),
                       ("userinfo_endpoint", "/oauth2/userinfo"), ("jwks_uri", "/.well-known/jwks.json"),
                       ("revocation_endpoint", "/oauth2/revoke"), ("introspection_endpoint", "/oauth2/introspect"),
                       ("end_session_endpoint", "/oauth2/logout")]:
        assert m[name] == ISSUER + path
        assert http.options(path).status_code in (200, 405)  # the route exists
    assert m["code_challenge_methods_supported"] == ["S256"]
    assert "ES256" in m["id_token_signing_alg_values_supported"]
    assert m["authorization_response_iss_parameter_supported"] is True
    assert m["backchannel_logout_supported"] and m["backchannel_logout_session_supported"]
    assert set(m["response_types_supported"]) == {"code", "id_token", "id_token token", "code id_token",
                                                  "code token", "code id_token token"}
    assert {"openid", "offline_access"} <= set(m["scopes_supported"])


def test_jwks_has_public_keys_only(http):
    keys = http.get("/.well-known/jwks.json").json()["keys"]
    assert {k["alg"] for k in keys} == {"ES256", "RS256", "RSA-OAEP-256"}  # the last: request objects (RFC 9101 §6.1)
    for k in keys:
        assert k["kid"] and k["use"] == ("enc" if k["alg"] == "RSA-OAEP-256" else "sig")
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(k)


def test_private_keys_are_encrypted_at_rest(provider):
    with provider.db.session(write=False) as s:
        for row in s.query(SigningKey):
            assert row.private_jwe.count(".") == 4  # compact JWE
            assert '"d"' not in row.private_jwe


def _kid(provider, token):
    return jwt.decode(token, provider.keys.public_keyset()).header["kid"]


def test_rotation_publishes_before_signing_and_retires_after_expiry(http, provider, register):
    svc = register("svc", grant_types=["client_credentials"], response_types=[], redirect_uris=[],
                   post_logout_redirect_uris=[], scopes=["api"])

    def token():
        return http.post("/oauth2/token", auth=svc.basic, data={"grant_type": "client_credentials"}).json()[
            "access_token"]

    old_kid = _kid(provider, token())
    new = provider.keys.rotate("ES256")  # activation delay (300 s by default)
    kids = {k["kid"] for k in http.get("/.well-known/jwks.json").json()["keys"]}
    assert new.kid in kids and old_kid in kids      # published at once
    assert _kid(provider, token()) == old_kid       # but not signing yet
    # time passes: the new key's activation moment arrives
    with provider.db.session() as s:
        s.execute(update(SigningKey).where(SigningKey.kid == new.kid).values(activate_at=datetime.now(UTC)))
    provider.keys.invalidate()
    assert _kid(provider, token()) == new.kid
    kids = {k["kid"] for k in http.get("/.well-known/jwks.json").json()["keys"]}
    assert old_kid in kids                          # still verifies tokens it signed
    states = {k.kid: st for k, st in provider.keys.list()}
    assert states[old_kid] == "retired" and states[new.kid] == "active"
    # after every token it signed has expired, it leaves the JWKS
    with provider.db.session() as s:
        s.execute(update(SigningKey).where(SigningKey.kid == old_kid)
                  .values(retire_after=utcnow() - timedelta(seconds=1)))
    provider.keys.invalidate()
    kids = {k["kid"] for k in http.get("/.well-known/jwks.json").json()["keys"]}
    assert old_kid not in kids and new.kid in kids


def test_retired_key_is_kept_for_the_longest_token_lifetime(provider):
    old = {k.kid for k, st in provider.keys.list() if k.alg == "ES256"}
    provider.keys.rotate("ES256", immediately=True)
    provider.keys.invalidate()
    provider.keys.jwks()
    retired = [k for k, st in provider.keys.list() if k.kid in old]
    assert retired[0].retire_after is not None
    assert retired[0].retire_after - retired[0].activate_at >= timedelta(seconds=3600)


def test_cors_for_browser_apps_on_back_channel_endpoints_only(http):
    origin = {"Origin": "https://spa.example"}
    r = http.options("/oauth2/token", headers={**origin, "Access-Control-Request-Method": "POST",
                                               "Access-Control-Request-Headers": "content-type"})
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == "*"
    r = http.get("/.well-known/jwks.json", headers=origin)
    assert r.headers["access-control-allow-origin"] == "*"
    r = http.post("/oauth2/token", headers=origin, data={"grant_type": "client_credentials"})
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == "*"
    r = http.get("/login", headers=origin)
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize(("path", "media_type", "max_age"), [
    ("/.well-known/openid-configuration", "application/json", 300),
    ("/.well-known/jwks.json", "application/jwk-set+json", 60)])
def test_documents_answer_get_and_head_and_refuse_other_methods(http, path, media_type, max_age):
    """Served before the router (web/documents.py): the same answer a route gives, HEAD included
    (RFC 9110 §9.3.2: GET's headers, no body), and 405 naming the allowed methods for the rest."""
    got = http.get(path)
    assert got.status_code == 200 and got.headers["content-type"] == media_type
    assert got.headers["cache-control"] == f"public, max-age={max_age}"
    assert int(got.headers["content-length"]) == len(got.content) > 0 and got.headers["x-request-id"]
    head = http.head(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
    refused = http.post(path, data={"a": "b"})
    assert refused.status_code == 405 and set(refused.headers["allow"].split(", ")) == {"GET", "HEAD"}


@pytest.fixture
def local_http(app):
    """A client on the loopback address, which the default metrics_allow lets read /metrics."""
    with TestClient(app, base_url=ISSUER, client=("127.0.0.1", 40000)) as client:
        yield client


def test_documents_are_counted_under_their_route(local_http):
    def count(path):
        text = local_http.get("/metrics").text
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == "idbroker_http_requests_total" and s.labels.get("route") == path
                   and s.labels.get("status") == "200")
    before = count("/.well-known/jwks.json")
    local_http.get("/.well-known/jwks.json")
    local_http.head("/.well-known/jwks.json")
    assert count("/.well-known/jwks.json") == before + 2
