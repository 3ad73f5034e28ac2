"""OpenID Connect Prompt Create 1.0: prompt=create sends the user to the sign-up page of the
request (and is in discovery's prompt_values_supported); where sign-up is off, to sign-in."""

from __future__ import annotations

from support import ISSUER, pkce_pair


def _authorize(http, client, **extra):
    _, challenge = pkce_pair()
    return http.get("/oauth2/authorize", params=dict(
        client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code", scope="openid",
        state="s", code_challenge=challenge, code_challenge_method="S256", **extra))


def test_prompt_create_goes_to_sign_up(http, register):
    client = register()
    r = _authorize(http, client, prompt="create")
    assert r.status_code == 303 and r.headers["location"].startswith(f"{ISSUER}/signup?interaction=")
    page = http.get(r.headers["location"])
    assert page.status_code == 200 and 'autocomplete="new-password"' in page.text


def test_without_prompt_create_the_sign_in_page(http, register):
    r = _authorize(http, register())
    assert r.headers["location"].startswith(f"{ISSUER}/login?interaction=")


def test_prompt_create_where_sign_up_is_off_shows_sign_in(http, register):
    client = register(signup_enabled=False)
    r = _authorize(http, client, prompt="create")
    assert r.headers["location"].startswith(f"{ISSUER}/login?interaction=")


def test_prompt_create_with_none_is_refused(http, register):
    client = register()
    r = _authorize(http, client, prompt="none create")
    assert "error=invalid_request" in r.headers["location"]


def test_discovery_lists_create(http):
    assert "create" in http.get("/.well-known/openid-configuration").json()["prompt_values_supported"]
