"""OpenID Connect Front-Channel Logout 1.0: the signed-out page holds an iframe per client of the
session with a frontchannel_logout_uri, carrying iss and sid (§3); the registration rule (§2)."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from support import ISSUER

from idbroker.clients.metadata import InvalidClientMetadata


def _login(http, flow, client):
    q, verifier = flow.code_flow(client, scope="openid")
    return http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier}).json()


def _frames(html):
    return [unescape(src) for src in re.findall(r'<iframe src="([^"]+)"', html)]


def test_logged_out_page_loads_each_clients_frontchannel_uri(http, flow, register, user, provider):
    one = register("one", first_party=True, redirect_uris=["https://one.example/cb"],
                   post_logout_redirect_uris=["https://one.example/bye"],
                   frontchannel_logout_uri="https://one.example/fcl")
    two = register("two", first_party=True, redirect_uris=["https://two.example/cb"],
                   frontchannel_logout_uri="https://two.example/logout?x=1")
    register("three", first_party=True, redirect_uris=["https://three.example/cb"],
             frontchannel_logout_uri="https://three.example/fcl")  # not in the session
    plain = register("plain", first_party=True, redirect_uris=["https://plain.example/cb"])
    tokens = _login(http, flow, one)
    _login(http, flow, two)
    _login(http, flow, plain)
    sid = jwt.decode(tokens["id_token"], provider.keys.public_keyset()).claims["sid"]
    r = http.get("/oauth2/logout", params={"id_token_hint": tokens["id_token"], "state": "st",
                                           "post_logout_redirect_uri": "https://one.example/bye"})
    # The page, not an immediate redirect: the iframes must load, then the script goes on.
    assert r.status_code == 200
    frames = sorted(_frames(r.text))
    assert [f.split("?")[0] for f in frames] == ["https://one.example/fcl", "https://two.example/logout"]
    for f in frames:
        q = {k: v[0] for k, v in parse_qs(urlsplit(f).query).items()}
        assert q["iss"] == ISSUER and q["sid"] == sid
    assert "x=1" in frames[1]
    assert 'data-next="https://one.example/bye?state=st"' in r.text and "/static/frontchannel_logout.js" in r.text
    csp = r.headers["content-security-policy"]
    assert "frame-src https://one.example https://two.example" in csp and "frame-ancestors 'none'" in csp
    assert "_session=" in r.headers.get("set-cookie", "")  # the session cookie goes
    assert http.get("/static/frontchannel_logout.js").status_code == 200


def test_without_frontchannel_clients_the_redirect_is_immediate(http, flow, register, user):
    client = register(first_party=True)
    tokens = _login(http, flow, client)
    r = http.get("/oauth2/logout", params={"id_token_hint": tokens["id_token"],
                                           "post_logout_redirect_uri": "https://app.example/bye"})
    assert r.status_code == 303 and "<iframe" not in r.text


def test_frontchannel_uri_must_share_a_redirect_uris_origin(register):
    with pytest.raises(InvalidClientMetadata, match="frontchannel_logout_uri"):
        register("bad", redirect_uris=["https://app.example/cb"], frontchannel_logout_uri="https://evil.example/fcl")


def test_discovery_advertises_frontchannel_logout(http):
    m = http.get("/.well-known/openid-configuration").json()
    assert m["frontchannel_logout_supported"] is True and m["frontchannel_logout_session_supported"] is True
