"""End to end with panva's openid-client (an OpenID-certified relying party) against a running
``idbroker serve``: discovery, code + PKCE through the real login (and consent) page, ID token
validation, userinfo, refresh rotation and reuse detection, revocation seen through
introspection, RP-initiated logout, and back-channel logout after single sign-on.

The relying party is ``node/rp_flow.mjs``; it checks every step itself and prints a JSON summary
that the tests below assert on.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from broker_process import NODE_DIR, PASSWORD, Broker, free_port
from joserfc import jwt
from joserfc.jwk import KeySet
from support import Quiet, serving

pytestmark = pytest.mark.peers

RP_FLOW = NODE_DIR / "rp_flow.mjs"
NODE_TIMEOUT = 120
DELIVERY_TIMEOUT = 15.0
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def run_rp(node: dict[str, str], broker: Broker, client: dict[str, Any], redirect_uri: str,
           post_logout_redirect_uri: str, id_token_alg: str, **extra: str) -> dict[str, Any]:
    """Runs the openid-client relying party; returns its summary or fails with its output."""
    env = {**broker.env, "IDBROKER_TEST_NODE_MODULES": node["node_modules"],
           "RP_ISSUER": broker.issuer, "RP_CLIENT_ID": client["client_id"],
           "RP_CLIENT_SECRET": client["client_secret"], "RP_REDIRECT_URI": redirect_uri,
           "RP_POST_LOGOUT_REDIRECT_URI": post_logout_redirect_uri, "RP_USERNAME": broker.user["email"],
           "RP_PASSWORD": PASSWORD, "RP_ID_TOKEN_ALG": id_token_alg, **extra}
    done = subprocess.run([node["node"], str(RP_FLOW)], env=env, capture_output=True, text=True,
                          timeout=NODE_TIMEOUT, stdin=subprocess.DEVNULL, cwd=RP_FLOW.parent)
    if done.returncode != 0:
        pytest.fail(f"openid-client relying party failed (exit {done.returncode}):\n"
                    f"--- stderr\n{done.stderr}\n--- stdout\n{done.stdout}", pytrace=False)
    return json.loads(done.stdout)


def assert_core_flow(summary: dict[str, Any], broker: Broker, client_id: str, alg: str, *,
                     first_party: bool) -> None:
    sub = broker.user["sub"]
    assert summary["discovery"]["issuer"] == broker.issuer
    assert alg in summary["discovery"]["id_token_signing_alg_values_supported"]
    assert summary["discovery"]["code_challenge_methods_supported"] == ["S256"]

    # The real login page, and the consent page exactly for a third-party client.
    assert summary["login"]["pages"] == (["login"] if first_party else ["login", "consent"])
    assert summary["session_cookie"] == {"httponly": True, "samesite": "lax", "path": "/"}

    # ID token, as validated by openid-client (signature against the JWKS, iss, aud, exp, nonce).
    token = summary["id_token"]
    assert token["header"]["alg"] == alg
    assert token["header"].get("kid")
    claims = token["claims"]
    assert claims["iss"] == broker.issuer
    assert claims["sub"] == sub
    assert claims["aud"] in (client_id, [client_id])
    assert token["nonce_checked"] is True and claims["nonce"] == token["expected_nonce"]
    assert isinstance(claims["auth_time"], int) and claims["iat"] <= claims["exp"]
    assert claims["sid"]
    assert claims["at_hash"]

    # UserInfo (openid-client checks its sub against the ID token's).
    userinfo = summary["userinfo"]
    assert userinfo["sub"] == sub
    assert userinfo["email"] == "alice@example.com"
    assert userinfo["email_verified"] is True
    assert userinfo.get("given_name") == "Alice" and userinfo.get("family_name") == "Liddell"

    # Refresh rotates; the new access token works.
    refresh = summary["refresh"]
    assert refresh["rotated"] is True
    assert refresh["new_access_token"] is True
    assert refresh["userinfo_sub"] == sub
    if refresh["id_token_sub"] is not None:  # an ID token in a refresh response is optional (OIDC Core §12.2)
        assert refresh["id_token_sub"] == sub and refresh["id_token_alg"] == alg
        assert refresh["id_token_keeps_original_claims"] is True

    # Reuse of a rotated refresh token (second sign-in, single sign-on) kills the family.
    reuse = summary["reuse"]
    assert reuse["second_login_pages"] == []
    assert reuse["old_token_error"] == "invalid_grant"
    assert reuse["family_revoked_error"] == "invalid_grant"
    assert reuse["family_access_token_active"] is False

    # Revocation is visible at the introspection endpoint.
    assert summary["revocation"] == {
        "access_token_active_before": True, "access_token_active_after": False,
        "refresh_token_active_before": True, "refresh_token_active_after": False,
        "refresh_after_revocation_error": "invalid_grant",
    }

    # RP-initiated logout: immediate (id_token_hint matches), back at the RP with its state, and
    # the server-side session is gone (prompt=none, even with the old cookie, says login_required).
    logout = summary["logout"]
    assert logout["pages"] == []
    assert logout["landed_on_post_logout_redirect_uri"] is True
    assert logout["state_returned"] is True
    assert logout["session_cookie_cleared"] is True
    assert logout["prompt_none_error"] == "login_required"


@pytest.mark.parametrize(("alg", "first_party", "registered"),
                         [("ES256", True, "ES256"), ("RS256", False, "RS256"), ("RS256", True, None)],
                         ids=["ES256-first-party", "RS256-consent", "RS256-by-default"])
def test_openid_client_full_flow(node: dict[str, str], broker: Broker, alg: str, first_party: bool,
                                 registered: str | None) -> None:
    """`registered` None: the client names no algorithm and gets RS256 (OIDC Registration §2)."""
    rp = f"http://127.0.0.1:{free_port()}"  # nothing listens: the RP only reads the redirects
    client_id = f"rp-{alg.lower()}-{'first' if first_party else 'third'}-party{'' if registered else '-default'}"
    client = broker.add_client(client_id, f"{rp}/cb", f"{rp}/bye", first_party=first_party, id_token_alg=registered)
    assert client["id_token_signed_response_alg"] == alg

    summary = run_rp(node, broker, client, f"{rp}/cb", f"{rp}/bye", alg)

    assert_core_flow(summary, broker, client_id, alg, first_party=first_party)
    assert "sso" not in summary


# -- back-channel logout --------------------------------------------------------------------------
@dataclass
class Delivery:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An RP's back-channel logout endpoint: records every request, answers 200 (BCL §2.8)."""

    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    class Handler(Quiet):
        def _record(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            got.deliveries.append(Delivery(self.command, self.path, headers, self.body()))
            self.answer(200, content_type="text/plain", headers={"Cache-Control": "no-store"})
            got.arrived.set()

        do_POST = _record
        do_GET = _record  # recorded too, so a wrong method fails the assertion instead of timing out

    with serving(Handler) as base:
        got = Receiver(base + "/bcl")
        yield got


def test_backchannel_logout_after_sso(node: dict[str, str], broker: Broker, receiver: Receiver) -> None:
    rp = f"http://127.0.0.1:{free_port()}"
    main = broker.add_client("rp-main", f"{rp}/cb", f"{rp}/bye", first_party=True, id_token_alg="ES256")
    other = broker.add_client("rp-bcl", f"{rp}/other/cb", f"{rp}/other/bye", first_party=True,
                              id_token_alg="RS256", backchannel_logout_uri=receiver.url)
    assert other["backchannel_logout_uri"] == receiver.url

    summary = run_rp(node, broker, main, f"{rp}/cb", f"{rp}/bye", "ES256",
                     RP_SSO_CLIENT_ID=other["client_id"], RP_SSO_CLIENT_SECRET=other["client_secret"],
                     RP_SSO_REDIRECT_URI=f"{rp}/other/cb", RP_SSO_ID_TOKEN_ALG="RS256")
    assert_core_flow(summary, broker, "rp-main", "ES256", first_party=True)

    # Single sign-on: the second client got its code without the login page, same session.
    sso = summary["sso"]
    assert sso["pages"] == []
    sid = summary["id_token"]["claims"]["sid"]
    assert sso["claims"]["sid"] == sid
    assert sso["claims"]["sub"] == broker.user["sub"]
    assert sso["claims"]["aud"] in ("rp-bcl", ["rp-bcl"])

    # The logout reached the second client's back-channel endpoint (delivered after the response).
    assert receiver.arrived.wait(DELIVERY_TIMEOUT), \
        f"no back-channel logout request within {DELIVERY_TIMEOUT:.0f}s"
    assert len(receiver.deliveries) == 1, receiver.deliveries
    delivery = receiver.deliveries[0]
    assert delivery.method == "POST" and delivery.path == "/bcl"
    assert delivery.headers["content-type"].split(";")[0].strip() == "application/x-www-form-urlencoded"
    form = parse_qs(delivery.body.decode(), strict_parsing=True)
    assert list(form) == ["logout_token"] and len(form["logout_token"]) == 1
    logout_token = form["logout_token"][0]

    # Back-Channel Logout 1.0 §2.4 / §2.6: a signed JWT the RP verifies like an ID token.
    jwks = httpx.get(f"{broker.issuer}/.well-known/jwks.json", timeout=10).json()
    decoded = jwt.decode(logout_token, KeySet.import_key_set(jwks), algorithms=["ES256", "RS256"])
    assert decoded.header["typ"] == "logout+jwt"
    assert decoded.header["alg"] == "RS256"  # the client's id_token_signed_response_alg
    claims = decoded.claims
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": broker.issuer},
        aud={"essential": True, "value": "rp-bcl"},
        sub={"essential": True, "value": broker.user["sub"]},
        sid={"essential": True, "value": sid},
        iat={"essential": True},
        exp={"essential": True},
        jti={"essential": True},
        events={"essential": True},
    ).validate(claims)
    assert claims["events"] == {BACKCHANNEL_EVENT: {}}
    assert "nonce" not in claims  # §2.4: a nonce is prohibited
