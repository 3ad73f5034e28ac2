"""Encrypted request objects (RFC 9101 §6.1, OIDC Core §6.1): JWE to the broker's encryption key
(published with `use` enc), nested (signed then encrypted) or encrypted claims only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from joserfc import jwe
from joserfc.jwk import RSAKey
from support import pkce_pair, query_of
from test_request_objects import KEY, OTHER_KEY, authorize, claims_for, signed

ENC_HEADER = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"registration": "open"}  # for the registration test at the end


@pytest.fixture
def rp(register: Any) -> Any:
    return register("rp", first_party=True, jwks={"keys": [KEY.as_dict(private=False)]})


@pytest.fixture
def strict(register: Any) -> Any:
    return register("strict", first_party=True, jwks={"keys": [KEY.as_dict(private=False)]},
                    require_signed_request_object=True)


def broker_key(http: Any) -> RSAKey:
    keys = [k for k in http.get("/.well-known/jwks.json").json()["keys"] if k.get("use") == "enc"]
    assert len(keys) == 1 and keys[0]["alg"] == "RSA-OAEP-256" and "d" not in keys[0]
    return RSAKey.import_key(keys[0])


def encrypted(http: Any, plaintext: str | bytes, key: RSAKey | None = None, enc: str = "A256GCM") -> str:
    key = key or broker_key(http)
    header = ENC_HEADER | {"enc": enc} | ({"kid": key.kid} if key.kid else {})
    return jwe.encrypt_compact(header, plaintext, key, algorithms=["RSA-OAEP-256", enc])


def test_discovery_advertises_request_object_encryption(http: Any) -> None:
    m = http.get("/.well-known/openid-configuration").json()
    assert m["request_object_encryption_alg_values_supported"] == ["RSA-OAEP-256"]
    assert "A256GCM" in m["request_object_encryption_enc_values_supported"]
    broker_key(http)  # and the key is published


@pytest.mark.parametrize("enc", ["A256GCM", "A128CBC-HS256"])
def test_nested_request_object_is_accepted(http: Any, flow: Any, rp: Any, user: Any, enc: str) -> None:
    token = encrypted(http, signed(claims_for(rp)), enc=enc)
    page = flow.login(flow.follow(authorize(http, rp, token, state="outside")))
    q = query_of(page.headers["location"])
    assert q["state"] == "inside" and "code" in q  # RFC 9101 §5: the object's parameters win


def test_encrypted_unsigned_claims_accepted_unless_signing_required(http: Any, flow: Any, rp: Any,
                                                                    strict: Any) -> None:
    plain = json.dumps(claims_for(rp))
    page = flow.follow(authorize(http, rp, encrypted(http, plain)))
    assert page.status_code == 200 and 'autocomplete="current-password"' in page.text
    refused = authorize(http, strict, encrypted(http, json.dumps(claims_for(strict))),
                        redirect_uri=strict.redirect_uri, state="o")
    q = query_of(refused.headers["location"])
    assert q["error"] == "invalid_request_object" and q["state"] == "o"


def test_nested_object_for_strict_client_is_accepted(http: Any, flow: Any, strict: Any, user: Any) -> None:
    page = flow.follow(authorize(http, strict, encrypted(http, signed(claims_for(strict)))))
    assert page.status_code == 200 and 'autocomplete="current-password"' in page.text


def test_inner_signature_is_still_checked(http: Any, rp: Any) -> None:
    token = encrypted(http, signed(claims_for(rp), OTHER_KEY))
    answer = authorize(http, rp, token, redirect_uri=rp.redirect_uri)
    assert query_of(answer.headers["location"])["error"] == "invalid_request_object"


def test_object_encrypted_to_another_key_is_refused(http: Any, rp: Any) -> None:
    stranger = RSAKey.generate_key(2048, parameters={"kid": broker_key(http).kid})
    token = encrypted(http, signed(claims_for(rp)), key=RSAKey.import_key(stranger.as_dict(private=False)))
    answer = authorize(http, rp, token, redirect_uri=rp.redirect_uri, state="o")
    q = query_of(answer.headers["location"])
    assert q["error"] == "invalid_request_object" and q["state"] == "o"


def test_encrypted_object_at_the_par_endpoint(http: Any, rp: Any) -> None:
    pushed = http.post("/oauth2/par", auth=rp.basic, data={"request": encrypted(http, signed(claims_for(rp)))})
    assert pushed.status_code == 201, pushed.text


def test_rotated_encryption_key_and_the_previous_one_both_decrypt(http: Any, flow: Any, provider: Any, rp: Any,
                                                                  user: Any) -> None:
    old = broker_key(http)
    provider.keys.rotate("RSA-OAEP-256", immediately=True)
    provider.keys.invalidate()
    published = [k for k in http.get("/.well-known/jwks.json").json()["keys"] if k.get("use") == "enc"]
    assert len(published) == 2
    new = RSAKey.import_key(next(k for k in published if k["kid"] != old.kid))
    for key in (old, new):
        page = flow.follow(authorize(http, rp, encrypted(http, signed(claims_for(rp)), key=key)))
        assert page.status_code == 200 and 'autocomplete="current-password"' in page.text, key.kid


def test_plain_request_still_needs_no_encryption(http: Any, rp: Any) -> None:
    _, challenge = pkce_pair()
    page = http.get("/oauth2/authorize", params={
        "client_id": "rp", "redirect_uri": rp.redirect_uri, "response_type": "code", "scope": "openid",
        "code_challenge": challenge, "code_challenge_method": "S256"})
    assert page.status_code == 303 and "error" not in query_of(page.headers["location"])


def test_dynamic_registration_accepts_supported_request_object_encryption(http: Any) -> None:
    base = {"redirect_uris": ["https://rp.example/cb"]}
    ok = http.post("/oauth2/register", json=base | {"request_object_encryption_alg": "RSA-OAEP-256",
                                                    "request_object_encryption_enc": "A256GCM"})
    assert ok.status_code == 201, ok.text
    bad = http.post("/oauth2/register", json=base | {"request_object_encryption_alg": "RSA1_5"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_client_metadata"


def test_compressed_object_is_refused(http: Any, rp: Any) -> None:
    """A `zip` JWE could inflate a 16 KB token to megabytes before any check: refused unopened (the
    keystore refuses `zip`, and DEF is not in its algorithm allow-list either)."""
    key = broker_key(http)
    token = jwe.encrypt_compact(ENC_HEADER | {"kid": key.kid, "zip": "DEF"}, signed(claims_for(rp)), key,
                                algorithms=["RSA-OAEP-256", "A256GCM", "DEF"])
    answer = authorize(http, rp, token, redirect_uri=rp.redirect_uri)
    assert query_of(answer.headers["location"])["error"] == "invalid_request_object"
