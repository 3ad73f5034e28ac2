"""The ID token checks of the "oidc" kind (federation/openid_connect.py, OIDC Core §3.1.3.7) and
the userinfo subject check (§5.3.2), one refusal each, against an httpx MockTransport upstream."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from test_upstream_presets import CALLBACK, Upstream, run

from idbroker.federation.base import StartContext, UpstreamConfig, UpstreamError
from idbroker.federation.openid_connect import OpenIDConnectUpstream

ISSUER = "https://id.example"


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": "c1", "sub": "u1", "iat": now, "exp": now + 300, "nonce": "n-1"}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def oidc(http: httpx.AsyncClient) -> OpenIDConnectUpstream:
    config = UpstreamConfig(id="up", kind="oidc", name="Up", options={"issuer": ISSUER, "client_id": "c1"})
    return OpenIDConnectUpstream(config, http=http)


@pytest.mark.parametrize(("changes", "why"), [
    ({"iss": "https://evil.example"}, "item 2"),
    ({"aud": "someone-else"}, "item 3"),
    ({"aud": ["c1", "other"]}, "items 4-5"),
    ({"aud": ["c1", "other"], "azp": "other"}, "items 4-5"),
    ({"exp": int(time.time()) - 3600}, "item 9"),
    ({"exp": None}, "item 9"),
    ({"iat": int(time.time()) + 3600}, "item 10"),
    ({"iat": int(time.time()) - 7200}, "item 10"),
    ({"nonce": "another"}, "item 11"),
    ({"nonce": None}, "item 11"),
    ({"sub": None}, "without sub"),
])
def test_each_claim_check_refuses(changes: dict[str, Any], why: str) -> None:
    upstream = Upstream(ISSUER)
    token = upstream.id_token(**claims(**changes))
    with pytest.raises(UpstreamError) as caught:
        run(lambda http: oidc(http).verify_id_token(token, "n-1"), upstream)
    assert why in caught.value.detail


def test_valid_token_with_azp_passes() -> None:
    upstream = Upstream(ISSUER)
    token = upstream.id_token(**claims(aud=["c1", "other"], azp="c1"))
    assert run(lambda http: oidc(http).verify_id_token(token, "n-1"), upstream)["sub"] == "u1"


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_unsigned_and_symmetric_algs_are_refused(alg: str) -> None:
    upstream = Upstream(ISSUER)
    upstream.routes["/.well-known/openid-configuration"]["id_token_signing_alg_values_supported"] = [alg, "ES256"]
    if alg == "none":
        token = "eyJhbGciOiJub25lIn0." + upstream.id_token(**claims()).split(".")[1] + "."
    else:
        token = jwt.encode({"alg": alg}, claims(), OctKey.import_key("k" * 32), algorithms=[alg])
    with pytest.raises(UpstreamError) as caught:
        run(lambda http: oidc(http).verify_id_token(token, "n-1"), upstream)
    assert "item 7" in caught.value.detail


def test_userinfo_of_another_subject_is_refused() -> None:
    upstream = Upstream(ISSUER, **{"/userinfo": {"sub": "someone-else", "email": "victim@example.com"}})
    upstream.routes["/.well-known/openid-configuration"]["userinfo_endpoint"] = ISSUER + "/userinfo"

    async def sign_in(http: httpx.AsyncClient) -> Any:
        up = oidc(http)
        ctx = StartContext(callback_url=CALLBACK)
        await up.start(ctx)
        upstream.routes["/token"] = {"access_token": "a", "token_type": "Bearer",
                                     "id_token": upstream.id_token(**claims(nonce=ctx.state["nonce"]))}
        return await up.finish(ctx, {"code": "c", "state": ctx.state["state"], "iss": ISSUER})
    with pytest.raises(UpstreamError) as caught:
        run(sign_in, upstream)
    assert "§5.3.2" in caught.value.detail
