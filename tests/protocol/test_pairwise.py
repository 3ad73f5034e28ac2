"""Pairwise subject identifiers (OIDC Core §8.1) and sector_identifier_uri (OIDC Registration §5):
the `sub` is stable within a sector, differs across sectors, is the same wherever the client is
told who the user is (ID token, userinfo, introspection, logout token), and a sector URI that
does not list every redirect URI refuses the registration."""

from __future__ import annotations

import json

import pytest
from joserfc import jwt
from support import Quiet, serving

from idbroker.clients.metadata import ClientMetadata, InvalidClientMetadata


@pytest.fixture
def sectors():
    """A real HTTP server for sector_identifier_uri documents: (base URL, {path: JSON value})."""
    documents: dict[str, object] = {}

    class Handler(Quiet):
        def do_GET(self):  # noqa: N802
            if self.path not in documents:
                self.answer(404, content_type="text/plain")
                return
            self.answer(200, json.dumps(documents[self.path]).encode())

    with serving(Handler) as base:
        yield base, documents


def _tokens(http, flow, client):
    q, verifier = flow.code_flow(client, scope="openid email offline_access")
    r = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier})
    assert r.status_code == 200, r.text
    return r.json()


def _sub(provider, id_token):
    return jwt.decode(id_token, provider.keys.public_keyset()).claims["sub"]


def test_pairwise_sub_stable_within_a_sector_and_different_across(http, flow, register, user, provider, sectors):
    base, documents = sectors
    documents["/org.json"] = ["https://a.example/cb", "https://b.example/cb"]
    a = register("a", first_party=True, redirect_uris=["https://a.example/cb"], subject_type="pairwise",
                 sector_identifier_uri=base + "/org.json")
    b = register("b", first_party=True, redirect_uris=["https://b.example/cb"], subject_type="pairwise",
                 sector_identifier_uri=base + "/org.json")
    other = register("other", first_party=True, redirect_uris=["https://other.example/cb"], subject_type="pairwise")
    public = register("public", first_party=True, redirect_uris=["https://public.example/cb"])
    sub_a = _sub(provider, _tokens(http, flow, a)["id_token"])
    sub_b = _sub(provider, _tokens(http, flow, b)["id_token"])
    sub_other = _sub(provider, _tokens(http, flow, other)["id_token"])
    assert sub_a == sub_b                     # one sector (the sector URI's host)
    assert sub_other not in (sub_a, user.sub)  # another sector
    assert _sub(provider, _tokens(http, flow, public)["id_token"]) == user.sub
    # Stable: a second authorization sees the same value.
    assert _sub(provider, _tokens(http, flow, a)["id_token"]) == sub_a


def test_pairwise_sub_everywhere_the_client_sees_the_user(http, flow, register, user, provider, receiver):
    base, received, arrived = receiver
    client = register("pw", first_party=True, redirect_uris=["https://pw.example/cb"], subject_type="pairwise",
                      backchannel_logout_uri=base + "/bcl")
    tokens = _tokens(http, flow, client)
    sub = _sub(provider, tokens["id_token"])
    assert sub != user.sub
    info = http.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).json()
    assert info["sub"] == sub
    for token in (tokens["access_token"], tokens["refresh_token"]):
        r = http.post("/oauth2/introspect", auth=client.basic, data={"token": token}).json()
        assert r["active"] and r["sub"] == sub
    refreshed = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}).json()
    assert _sub(provider, refreshed["id_token"]) == sub
    http.get("/oauth2/logout", params={"id_token_hint": tokens["id_token"]})
    assert arrived.wait(10)
    logout = jwt.decode(received[0]["form"]["logout_token"][0], provider.keys.public_keyset()).claims
    assert logout["sub"] == sub


def test_sector_uri_not_listing_a_redirect_uri_is_refused(provider, sectors):
    base, documents = sectors
    documents["/partial.json"] = ["https://a.example/cb"]
    meta = ClientMetadata(client_id="sneaky", redirect_uris=["https://a.example/cb", "https://evil.example/cb"],
                          subject_type="pairwise", sector_identifier_uri=base + "/partial.json")
    with pytest.raises(InvalidClientMetadata, match="does not list the redirect URI https://evil.example/cb"):
        provider.clients.create(meta)
    assert provider.clients.get("sneaky") is None


@pytest.mark.parametrize("document", [None, {"redirect_uris": []}, "not a list"])
def test_sector_uri_that_is_missing_or_not_an_array_is_refused(provider, sectors, document):
    base, documents = sectors
    if document is not None:
        documents["/doc.json"] = document
    meta = ClientMetadata(client_id="c", redirect_uris=["https://a.example/cb"], subject_type="pairwise",
                          sector_identifier_uri=base + "/doc.json")
    with pytest.raises(InvalidClientMetadata, match="sector_identifier_uri"):
        provider.clients.create(meta)


def test_update_adding_an_unlisted_redirect_uri_is_refused(provider, register, sectors):
    base, documents = sectors
    documents["/one.json"] = ["https://a.example/cb"]
    register("u", redirect_uris=["https://a.example/cb"], subject_type="pairwise",
             sector_identifier_uri=base + "/one.json")
    with pytest.raises(InvalidClientMetadata, match="does not list"):
        provider.clients.update("u", {"redirect_uris": ["https://a.example/cb", "https://b.example/cb"]})


def test_pairwise_on_several_hosts_needs_a_sector_uri(register):
    with pytest.raises(InvalidClientMetadata, match="sector_identifier_uri"):
        register("multi", redirect_uris=["https://a.example/cb", "https://b.example/cb"], subject_type="pairwise")


def test_discovery_offers_pairwise(http):
    assert http.get("/.well-known/openid-configuration").json()["subject_types_supported"] == ["public", "pairwise"]


def test_exchanged_id_token_carries_the_audiences_pairwise_sub(http, flow, register, user, provider):
    grant = "urn:ietf:params:oauth:grant-type:token-exchange"
    front = register("front", first_party=True, grant_types=["authorization_code", "refresh_token", grant],
                     exchange_audiences=["pw-rp", "pw-other"])
    rp = register("pw-rp", first_party=True, redirect_uris=["https://rp.example/cb"], subject_type="pairwise")
    register("pw-other", first_party=True, redirect_uris=["https://other.example/cb"], subject_type="pairwise")
    tokens = _tokens(http, flow, front)

    def exchange(*audiences):
        return http.post("/oauth2/token", auth=front.basic, data={
            "grant_type": grant, "subject_token": tokens["access_token"], "scope": "openid",
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token", "audience": list(audiences),
            "requested_token_type": "urn:ietf:params:oauth:token-type:id_token"})

    r = exchange("pw-rp")
    assert r.status_code == 200, r.text
    rp_sub = _sub(provider, _tokens(http, flow, rp)["id_token"])
    assert _sub(provider, r.json()["access_token"]) == rp_sub != user.sub
    assert exchange("pw-rp", "pw-other").json()["error"] == "invalid_request"  # two sectors, no one sub
