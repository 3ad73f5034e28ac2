"""RP-Initiated Logout 1.0 and Back-Channel Logout 1.0."""

from __future__ import annotations

from joserfc import jwt
from support import CSRF_RE, pkce_pair, query_of


def _login(http, flow, client, scope="openid"):
    q, verifier = flow.code_flow(client, scope=scope)
    return http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier}).json()


def _prompt_none(http, client):
    _, challenge = pkce_pair()
    r = http.get("/oauth2/authorize", params=dict(
        client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code", scope="openid",
        prompt="none", code_challenge=challenge, code_challenge_method="S256"))
    return query_of(r.headers["location"])


def test_logout_with_id_token_hint_redirects_with_state(http, flow, register, user):
    client = register(first_party=True)
    tokens = _login(http, flow, client)
    r = http.get("/oauth2/logout", params={"id_token_hint": tokens["id_token"], "state": "bye-1",
                                           "post_logout_redirect_uri": "https://app.example/bye"})
    assert r.status_code == 303
    assert r.headers["location"] == "https://app.example/bye?state=bye-1"
    assert _prompt_none(http, client)["error"] == "login_required"
    assert http.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}
                    ).status_code == 401


def test_offline_access_survives_logout(http, flow, register, user):
    client = register(first_party=True)
    tokens = _login(http, flow, client, scope="openid offline_access")
    http.get("/oauth2/logout", params={"id_token_hint": tokens["id_token"]})
    r = http.post("/oauth2/token", auth=client.basic, data={"grant_type": "refresh_token",
                                                            "refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200


def test_unregistered_post_logout_redirect_uri_is_an_error_page(http, flow, register, user):
    client = register(first_party=True)
    tokens = _login(http, flow, client)
    r = http.get("/oauth2/logout", params={"id_token_hint": tokens["id_token"],
                                           "post_logout_redirect_uri": "https://evil.example/"})
    assert r.status_code == 400 and "location" not in r.headers
    # the session is untouched
    assert "code" in _prompt_none(http, client)


def test_post_logout_redirect_uri_needs_a_client(http):
    r = http.get("/oauth2/logout", params={"post_logout_redirect_uri": "https://app.example/bye"})
    assert r.status_code == 400 and "location" not in r.headers


def test_client_id_must_match_hint(http, flow, register, user):
    client = register(first_party=True)
    register("other", first_party=True)
    tokens = _login(http, flow, client)
    r = http.get("/oauth2/logout", params={"id_token_hint": tokens["id_token"], "client_id": "other"})
    assert r.status_code == 400


def test_forged_hint_is_rejected(http, flow, register, user):
    client = register(first_party=True)
    tokens = _login(http, flow, client)
    header, payload, sig = tokens["id_token"].split(".")
    r = http.get("/oauth2/logout", params={"id_token_hint": f"{header}.{payload}.{sig[:-4]}AAAA"})
    assert r.status_code == 400


def test_access_token_is_not_an_id_token_hint(http, flow, register, user):
    client = register(first_party=True)
    tokens = _login(http, flow, client)
    r = http.get("/oauth2/logout", params={"id_token_hint": tokens["access_token"]})
    assert r.status_code == 400
    assert "code" in _prompt_none(http, client)


def test_logout_without_hint_asks_for_confirmation(http, flow, register, user):
    client = register(first_party=True)
    _login(http, flow, client)
    page = http.get("/oauth2/logout", params={"client_id": client.client_id, "state": "s",
                                              "post_logout_redirect_uri": "https://app.example/bye"})
    assert page.status_code == 200 and 'value="yes"' in page.text
    assert "code" in _prompt_none(http, client)  # not logged out yet
    token = CSRF_RE.search(page.text).group(1)
    forged = http.post("/oauth2/logout", data={"csrf_token": "forged", "confirm": "yes",
                                               "client_id": client.client_id})
    assert forged.status_code == 200 and 'value="yes"' in forged.text  # asked again
    r = http.post("/oauth2/logout", data={"csrf_token": token, "confirm": "yes", "client_id": client.client_id,
                                          "state": "s", "post_logout_redirect_uri": "https://app.example/bye"})
    assert r.headers["location"] == "https://app.example/bye?state=s"
    assert _prompt_none(http, client)["error"] == "login_required"


def test_logout_without_session_shows_signed_out_page(http):
    r = http.get("/oauth2/logout")
    assert r.status_code == 200 and "signed out" in r.text


def test_backchannel_logout_notifies_every_client_of_the_session(http, flow, register, user, provider, receiver):
    base, received, arrived = receiver
    one = register("one", first_party=True, redirect_uris=["https://one.example/cb"],
                   backchannel_logout_uri=base + "/bcl/one")
    two = register("two", first_party=True, redirect_uris=["https://two.example/cb"],
                   backchannel_logout_uri=base + "/bcl/two", id_token_signed_response_alg="RS256")
    register("three", first_party=True, backchannel_logout_uri=base + "/bcl/three")  # not in the session
    tokens = _login(http, flow, one)
    _login(http, flow, two)  # single sign-on: same session
    sid = jwt.decode(tokens["id_token"], provider.keys.public_keyset()).claims["sid"]
    r = http.get("/oauth2/logout", params={"id_token_hint": tokens["id_token"]})
    assert r.status_code == 200
    # TestClient runs background tasks before returning, so deliveries are done
    assert arrived.wait(10)
    assert sorted(d["path"] for d in received) == ["/bcl/one", "/bcl/two"]
    for d in received:
        assert d["content_type"] == "application/x-www-form-urlencoded"
        token = jwt.decode(d["form"]["logout_token"][0], provider.keys.public_keyset())
        c = token.claims
        assert token.header["typ"] == "logout+jwt"
        assert c["aud"] == d["path"].rsplit("/", 1)[1] and c["sid"] == sid and c["sub"] == user.sub
        assert c["events"] == {"http://schemas.openid.net/event/backchannel-logout": {}}
        assert "nonce" not in c and c["iss"] == "http://127.0.0.1:8000" and c["jti"]


def test_backchannel_deliveries_share_one_client_per_event_loop(provider, receiver, monkeypatch):
    """A new httpx client loads the CA bundle (~30 ms of CPU): the worker's event loop keeps one."""
    import httpx
    from support import run_async

    base, received, _ = receiver
    made: list[httpx.AsyncClient] = []

    class Counted(httpx.AsyncClient):
        def __init__(self, *args, **kwargs):  # noqa: ANN002, ANN003
            made.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(httpx, "AsyncClient", Counted)

    async def two_logouts() -> None:
        for n in range(2):
            await provider.signout.notify([(f"{base}/bcl/{n}", f"token-{n}")])

    run_async(two_logouts)  # on a thread of its own: another test may have left a loop running on this one
    assert [d["path"] for d in received] == ["/bcl/0", "/bcl/1"]
    assert len(made) == 1
