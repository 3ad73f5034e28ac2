"""Authorization endpoint: request validation, error delivery, prompts, sessions, response modes."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from support import ISSUER, PASSWORD, form_fields, fragment_of, pkce_pair, query_of


def _params(client, **extra):
    verifier, challenge = pkce_pair()
    params = dict(client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code",
                  scope="openid", state="s1", code_challenge=challenge, code_challenge_method="S256", nonce="n")
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


# -- errors before the redirect URI is trusted: a page, never a redirect (RFC 6749 §4.1.2.1) --------
@pytest.mark.parametrize("change", [
    {"client_id": "nobody"},
    {"client_id": None},
    {"redirect_uri": "https://evil.example/cb"},
    {"redirect_uri": "https://app.example/cb/extra"},   # exact match, no prefix matching
    {"redirect_uri": "https://APP.example/cb"},
    {"redirect_uri": None},                             # OIDC requests must name it
])
def test_untrusted_client_or_redirect_gets_error_page(http, register, change):
    client = register()
    r = http.get("/oauth2/authorize", params=_params(client, **change))
    assert r.status_code == 400
    assert "location" not in r.headers
    assert "text/html" in r.headers["content-type"]
    assert "evil.example" not in r.text or "redirect_uri" in r.text


def test_redirect_uri_may_be_omitted_for_plain_oauth_with_one_registered(http, flow, register, user):
    client = register(scopes=["api"], redirect_uris=["https://app.example/cb"])
    page = flow.authorize(**_params(client, redirect_uri=None, scope="api", nonce=None))
    page = flow.consent(flow.login(page))
    assert page.headers["location"].startswith("https://app.example/cb?")


def _redirect_error(r, client):
    assert r.status_code == 303, r.text
    location = r.headers["location"]
    assert location.startswith(client.redirect_uri)
    return {**query_of(location), **fragment_of(location)}


@pytest.mark.parametrize("change,error", [
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": None}, "invalid_request"),
    ({"scope": "openid admin"}, "invalid_scope"),
    ({"scope": None}, "invalid_scope"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge": "short"}, "invalid_request"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"prompt": "bogus"}, "invalid_request"),
    ({"max_age": "-1"}, "invalid_request"),
    ({"request": "eyJ.x.y"}, "invalid_request_object"),
    ({"request_uri": "https://app.example/r"}, "request_uri_not_supported"),
    ({"response_mode": "bogus"}, "invalid_request"),
])
def test_invalid_requests_are_redirected_with_state_and_iss(http, register, change, error):
    client = register()
    r = http.get("/oauth2/authorize", params=_params(client, state="a b+c/é", **change))
    q = _redirect_error(r, client)
    assert q["error"] == error
    assert q["state"] == "a b+c/é"      # exactly as sent
    assert q["iss"] == ISSUER           # RFC 9207


def test_implicit_response_type_refused_unless_registered(http, register):
    client = register()
    r = http.get("/oauth2/authorize", params=_params(client, response_type="id_token"))
    assert r.headers["location"].startswith(client.redirect_uri + "#")
    assert fragment_of(r.headers["location"])["error"] == "unauthorized_client"


def test_public_client_must_use_pkce(http, register):
    client = register("spa", token_endpoint_auth_method="none")
    r = http.get("/oauth2/authorize", params=_params(client, code_challenge=None, code_challenge_method=None))
    assert _redirect_error(r, client)["error"] == "invalid_request"


def test_duplicate_parameter_is_rejected(http, register):
    client = register()
    params = list(_params(client).items()) + [("scope", "openid email")]
    r = http.get("/oauth2/authorize", params=params)
    assert r.status_code == 400 and "location" not in r.headers


def test_redirect_uri_query_is_kept(http, flow, register, user):
    client = register(redirect_uris=["https://app.example/cb?tenant=7"])
    q, _ = flow.code_flow(client)
    assert q["tenant"] == "7" and "code" in q


# -- prompts and sessions -------------------------------------------------------------------------
def test_prompt_none_without_session_returns_login_required(http, register):
    client = register()
    q = _redirect_error(http.get("/oauth2/authorize", params=_params(client, prompt="none")), client)
    assert q["error"] == "login_required" and q["state"] == "s1" and q["iss"] == ISSUER


def test_single_sign_on_second_client_gets_code_without_login(http, flow, register, user):
    first = register("one", first_party=True, redirect_uris=["https://one.example/cb"])
    second = register("two", first_party=True, redirect_uris=["https://two.example/cb"])
    flow.code_flow(first)
    r = flow.authorize(**_params(second))
    assert r.status_code == 303 and "code=" in r.headers["location"]
    r = http.get("/oauth2/authorize", params=_params(second, prompt="none"))
    assert "code" in _redirect_error(r, second)


def test_prompt_login_forces_reauthentication(http, flow, register, user):
    client = register(first_party=True)
    flow.code_flow(client)
    page = flow.authorize(**_params(client, prompt="login"))
    assert 'autocomplete="current-password"' in page.text
    r = flow.login(page)
    assert r.status_code == 303 and "code=" in r.headers["location"]


def test_select_account_offers_the_current_account(http, flow, register, user):
    client = register(first_party=True)
    flow.code_flow(client)
    page = flow.authorize(**_params(client, prompt="select_account"))
    assert "Continue as alice@example.com" in page.text and 'autocomplete="current-password"' in page.text
    fields = form_fields(page.text.split('value="continue"')[0])
    r = flow.follow(http.post("/login", data={**fields, "action": "continue"}))
    assert r.status_code == 303 and "code=" in r.headers["location"]


def test_per_client_access_token_lifetime(http, flow, register, user):
    client = register(first_party=True, access_token_ttl=120)
    q, verifier = flow.code_flow(client)
    body = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier}).json()
    assert body["expires_in"] == 120


def test_max_age_zero_forces_login_and_prompt_none_fails(http, flow, register, user):
    client = register(first_party=True)
    flow.code_flow(client)
    time.sleep(1.05)  # auth_time has one-second resolution; max_age=0 needs it to be in the past
    q = _redirect_error(http.get("/oauth2/authorize", params=_params(client, prompt="none", max_age="0")), client)
    assert q["error"] == "login_required"
    page = flow.authorize(**_params(client, max_age="0"))
    assert 'autocomplete="current-password"' in page.text


def test_login_failure_message_does_not_reveal_account_existence(http, flow, register, user):
    client = register()
    page = flow.authorize(**_params(client))
    wrong_password = flow.login(page, password="not the password")
    page = flow.authorize(**_params(client))
    no_account = flow.login(page, email="nobody@example.com")
    assert wrong_password.status_code == no_account.status_code == 401
    assert "Incorrect email or password." in wrong_password.text
    assert "Incorrect email or password." in no_account.text


def test_login_form_needs_csrf_token(http, flow, register, user):
    client = register()
    page = flow.authorize(**_params(client))
    fields = form_fields(page.text)
    r = http.post("/login", data={"interaction": fields["interaction"], "csrf_token": "forged",
                                  "username": "alice@example.com", "password": PASSWORD})
    assert r.status_code == 400
    assert "set-cookie" not in r.headers or "idbroker_session" not in r.headers.get("set-cookie", "")


def test_login_page_has_autocomplete_and_labels(http, register):
    page = http.get("/login")
    assert 'autocomplete="username webauthn"' in page.text and 'autocomplete="current-password"' in page.text
    assert '<label for="username">' in page.text and '<label for="password">' in page.text


def test_session_cookie_attributes(http, flow, register, user):
    client = register(first_party=True)
    page = flow.authorize(**_params(client))
    fields = form_fields(page.text)
    r = http.post("/login", data={**fields, "username": "alice@example.com", "password": PASSWORD})
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and "idbroker_session" in v)
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()


def test_disabled_user_cannot_log_in(http, flow, register, user, provider):
    provider.users.set_disabled("alice@example.com")
    client = register()
    r = flow.login(flow.authorize(**_params(client)))
    assert r.status_code == 401


# -- consent --------------------------------------------------------------------------------------
def test_consent_is_asked_once_and_remembered(http, flow, register, user):
    client = register()
    page = flow.login(flow.authorize(**_params(client)))
    assert 'action="/consent"' in page.text
    flow.consent(page)
    r = flow.authorize(**_params(client))
    assert r.status_code == 303 and "code=" in r.headers["location"]
    # more scopes → asked again; prompt=consent → asked again
    assert 'action="/consent"' in flow.authorize(**_params(client, scope="openid email")).text
    assert 'action="/consent"' in flow.authorize(**_params(client, prompt="consent")).text


def test_consent_denied_returns_access_denied(http, flow, register, user):
    client = register()
    r = flow.consent(flow.login(flow.authorize(**_params(client))), decision="deny")
    q = _redirect_error(r, client)
    assert q["error"] == "access_denied" and q["state"] == "s1"


def test_prompt_none_without_consent_returns_consent_required(http, flow, register, user):
    first = register("one", first_party=True, redirect_uris=["https://one.example/cb"])
    flow.code_flow(first)
    third = register("three", redirect_uris=["https://three.example/cb"])
    q = _redirect_error(http.get("/oauth2/authorize", params=_params(third, prompt="none")), third)
    assert q["error"] == "consent_required"


def test_first_party_client_skips_consent(http, flow, register, user):
    client = register(first_party=True)
    r = flow.login(flow.authorize(**_params(client)))
    assert r.status_code == 303 and "code=" in r.headers["location"]


def test_sign_in_answers_the_parked_request_at_once(http, flow, register, user):
    client = register(first_party=True)
    page = flow.authorize(**_params(client))
    r = http.post("/login", data={**form_fields(page.text), "username": "alice@example.com", "password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"].startswith(client.redirect_uri + "?code=")
    assert query_of(r.headers["location"])["state"] == "s1"
    # the request is answered: its interaction is gone, the browser's cookie for it too
    interaction = form_fields(page.text)["interaction"]
    assert http.get("/oauth2/authorize/resume", params={"interaction": interaction}).status_code == 400


def test_sign_in_from_another_browser_does_not_answer_the_request(http, flow, register, user):
    client = register(first_party=True)
    page = flow.authorize(**_params(client))
    http.cookies.delete("idbroker_interaction")  # the form was posted by a browser that did not start it
    r = http.post("/login", data={**form_fields(page.text), "username": "alice@example.com", "password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"].startswith(f"{ISSUER}/oauth2/authorize/resume?")
    assert http.get(r.headers["location"]).status_code == 400


def test_sign_in_then_consent_for_a_third_party(http, flow, register, user):
    client = register()
    page = flow.authorize(**_params(client))
    r = http.post("/login", data={**form_fields(page.text), "username": "alice@example.com", "password": PASSWORD})
    assert r.status_code == 303 and r.headers["location"].startswith(f"{ISSUER}/consent?interaction=")
    r = flow.consent(flow.follow(r))
    assert r.status_code == 303 and "code=" in r.headers["location"]


def test_client_name_is_escaped_on_pages(http, flow, register, user):
    client = register(name="<script>alert(1)</script>")
    page = flow.authorize(**_params(client))
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


# -- implicit and response modes --------------------------------------------------------------------
def _implicit_client(register):
    return register("imp", response_types=["id_token", "id_token token"], grant_types=["implicit"],
                    first_party=True, token_endpoint_auth_method="none")


def test_implicit_requires_nonce(http, register):
    client = _implicit_client(register)
    r = http.get("/oauth2/authorize", params=_params(client, response_type="id_token", nonce=None,
                                                     code_challenge=None, code_challenge_method=None))
    assert r.status_code == 303
    assert fragment_of(r.headers["location"])["error"] == "invalid_request"


def test_implicit_id_token_in_fragment_with_claims(http, flow, register, user, provider):
    client = _implicit_client(register)
    page = flow.authorize(**_params(client, response_type="id_token", scope="openid email", nonce="n-imp",
                                    code_challenge=None, code_challenge_method=None))
    r = flow.login(page)
    location = r.headers["location"]
    assert "?" not in location.split("#")[0][len(client.redirect_uri):]
    f = fragment_of(location)
    assert "access_token" not in f and f["state"] == "s1" and f["iss"] == ISSUER
    claims = jwt.decode(f["id_token"], provider.keys.public_keyset()).claims
    assert claims["nonce"] == "n-imp" and claims["email"] == "alice@example.com" and claims["aud"] == "imp"


def test_implicit_id_token_token_has_at_hash(http, flow, register, user, provider):
    from idbroker.oidc.id_token import half_hash

    client = _implicit_client(register)
    r = flow.login(flow.authorize(**_params(client, response_type="id_token token", code_challenge=None,
                                            code_challenge_method=None)))
    f = fragment_of(r.headers["location"])
    claims = jwt.decode(f["id_token"], provider.keys.public_keyset()).claims
    assert claims["at_hash"] == half_hash(f["access_token"], "ES256")
    assert f["token_type"] == "Bearer" and int(f["expires_in"]) > 0
    assert http.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + f["access_token"]}).status_code == 200


def test_implicit_refuses_query_response_mode(http, register):
    client = _implicit_client(register)
    r = http.get("/oauth2/authorize", params=_params(client, response_type="id_token", response_mode="query",
                                                     code_challenge=None, code_challenge_method=None))
    assert fragment_of(r.headers["location"])["error"] == "invalid_request"


def test_form_post_response_mode(http, flow, register, user):
    client = register(first_party=True)
    r = flow.login(flow.authorize(**_params(client, response_mode="form_post", state="<&>")))
    assert r.status_code == 200
    assert f'action="{client.redirect_uri}"' in r.text
    assert 'name="code"' in r.text and 'name="iss"' in r.text
    assert 'name="state" value="&lt;&amp;&gt;"' in r.text


def test_fragment_response_mode_for_code(http, flow, register, user):
    client = register(first_party=True)
    r = flow.login(flow.authorize(**_params(client, response_mode="fragment")))
    assert "code" in fragment_of(r.headers["location"])


def test_authorize_accepts_post(http, flow, register, user):
    client = register(first_party=True)
    r = flow.follow(http.post("/oauth2/authorize", data=_params(client)))
    assert 'autocomplete="current-password"' in r.text


def test_expired_interaction_is_an_error_page(http, register):
    r = http.get("/oauth2/authorize/resume", params={"interaction": "nope"})
    assert r.status_code == 400 and "location" not in r.headers


@pytest.mark.parametrize("field", ["username", "interaction"])
def test_nul_characters_in_login_form_are_not_a_server_error(http, flow, register, user, field):
    client = register()
    page = flow.authorize(**_params(client))
    data = {**form_fields(page.text), "username": "alice@example.com", "password": PASSWORD}
    data[field] = data[field] + "\x00"
    r = http.post("/login", data=data)
    assert r.status_code in (400, 401)


def test_nul_characters_in_authorization_request(http, register):
    client = register()
    r = http.get("/oauth2/authorize", params=_params(client, client_id="app\x00"))
    assert r.status_code == 400 and "location" not in r.headers


@pytest.mark.parametrize("remember", [False, True])
def test_keep_me_signed_in(http, flow, register, user, provider, remember):
    from idbroker.store.db import aware, utcnow
    from idbroker.store.models import BrowserSession

    client = register(first_party=True)
    page = flow.authorize(**_params(client))
    assert 'name="remember"' in page.text and "Keep me signed in" in page.text
    data = {**form_fields(page.text), "username": "alice@example.com", "password": PASSWORD}
    if remember:
        data["remember"] = "1"
    r = http.post("/login", data=data)
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and "idbroker_session" in v)
    with provider.db.session(write=False) as s:
        lifetime = (aware(s.query(BrowserSession).one().expires_at) - utcnow()).total_seconds()
    if remember:
        assert f"Max-Age={14 * 86400}" in cookie and lifetime > 13 * 86400
    else:
        assert "Max-Age" not in cookie and "expires" not in cookie.lower() and lifetime <= 12 * 3600
