"""Terms of service: the versioned text, accepting it in the middle of an authorization, declining,
and a new version sending every user back to the terms before any application."""

from __future__ import annotations

import pytest
from support import ISSUER, PASSWORD, form_fields, pkce_pair, query_of

TERMS_V1 = """Welcome to Example.

You agree to be <b>nice</b> & honest.
Line two of the same paragraph.


Last paragraph: <script>alert(1)</script>
"""
TERMS_V2 = "Version two.\n\nNew rules apply."


@pytest.fixture
def terms_file(tmp_path):
    path = tmp_path / "terms.txt"
    path.write_text(TERMS_V1, encoding="utf-8")
    return path


@pytest.fixture
def settings_overrides(terms_file):
    return {"terms_version": "2024-01", "terms_file": str(terms_file)}


@pytest.fixture
def client(register):
    return register("shop", name="Shop")  # third party: asks consent


def params(client, **extra):
    _, challenge = pkce_pair()
    out = dict(client_id=client.client_id, redirect_uri=client.redirect_uri, response_type="code",
               scope="openid email", state="st-9", code_challenge=challenge, code_challenge_method="S256")
    out.update(extra)
    return out


def sign_in(http, email="alice@example.com", password=PASSWORD):
    page = http.get("/login")
    r = http.post("/login", data={**form_fields(page.text), "username": email, "password": password})
    assert r.status_code == 303, r.text


def is_terms_page(page):
    return page.status_code == 200 and 'action="/terms"' in page.text and "I accept" in page.text


def decide(http, flow, page, decision):
    data = {**form_fields(page.text), "decision": decision,
            "version": page.text.split('name="version" value="')[1].split('"')[0]}
    return flow.follow(http.post("/terms", data=data))


def test_login_terms_consent_code_then_a_new_version_is_asked_before_any_app(http, flow, client, user, provider,
                                                                            terms_file):
    page = flow.login(flow.authorize(**params(client)))
    assert is_terms_page(page), page.text
    assert "Shop" in page.text  # which application is waiting
    assert "Version 2024-01" in page.text
    # the text: paragraphs, escaped, line breaks inside a paragraph kept
    assert "<p>Welcome to Example.</p>" in page.text
    assert "You agree to be &lt;b&gt;nice&lt;/b&gt; &amp; honest.\nLine two of the same paragraph." in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script>" not in page.text
    assert provider.users.by_id(user.id).terms_version is None

    consent = decide(http, flow, page, "accept")
    stored = provider.users.by_id(user.id)
    assert stored.terms_version == "2024-01" and stored.terms_accepted_at is not None
    done = flow.consent(consent)
    assert done.status_code == 303 and done.headers["location"].startswith(client.redirect_uri)
    assert "code" in query_of(done.headers["location"])

    # Already accepted: single sign-on straight back to the client.
    again = flow.authorize(**params(client))
    assert again.status_code == 303 and "code" in query_of(again.headers["location"])

    # The operator publishes a new version.
    terms_file.write_text(TERMS_V2, encoding="utf-8")
    provider.settings.terms_version = "2025-06"
    quiet = http.get("/oauth2/authorize", params=params(client, prompt="none"))
    assert quiet.status_code == 303
    answer = query_of(quiet.headers["location"])
    assert answer["error"] == "interaction_required" and answer["state"] == "st-9"

    r = http.get("/oauth2/authorize", params=params(client))
    assert r.status_code == 303 and r.headers["location"].startswith(ISSUER + "/terms?interaction=")
    page = flow.follow(r)
    assert is_terms_page(page) and "Version 2025-06" in page.text and "New rules apply." in page.text
    assert "Welcome to Example." not in page.text
    assert 'autocomplete="current-password"' not in page.text  # no second login
    done = decide(http, flow, page, "accept")  # consent is remembered
    assert done.status_code == 303 and "code" in query_of(done.headers["location"])
    assert provider.users.by_id(user.id).terms_version == "2025-06"


def test_first_party_client_also_waits_for_the_terms(http, flow, register, user, provider):
    client = register("portal", first_party=True)
    page = flow.login(flow.authorize(**params(client)))
    assert is_terms_page(page)
    done = decide(http, flow, page, "accept")
    assert done.status_code == 303 and "code" in query_of(done.headers["location"])


def test_declining_returns_access_denied_to_the_client(http, flow, client, user, provider):
    page = flow.login(flow.authorize(**params(client)))
    assert is_terms_page(page)
    r = decide(http, flow, page, "decline")
    assert r.status_code == 303 and r.headers["location"].startswith(client.redirect_uri)
    answer = query_of(r.headers["location"])
    assert answer["error"] == "access_denied" and answer["state"] == "st-9"
    assert provider.users.by_id(user.id).terms_version is None
    # the interaction is finished: resuming it is refused
    interaction = form_fields(page.text)["interaction"]
    assert http.get("/terms", params={"interaction": interaction}).status_code == 400


def test_prompt_none_for_a_signed_in_user_who_never_accepted(http, client, user):
    sign_in(http)
    r = http.get("/oauth2/authorize", params=params(client, prompt="none"))
    assert query_of(r.headers["location"])["error"] == "interaction_required"


def test_terms_page_without_interaction_records_and_goes_to_the_account(http, user, provider):
    sign_in(http)
    page = http.get("/terms")
    assert is_terms_page(page) and form_fields(page.text)["interaction"] == ""
    r = http.post("/terms", data={**form_fields(page.text), "decision": "accept", "version": "2024-01"})
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/account"
    assert provider.users.by_id(user.id).terms_version == "2024-01"
    page = http.get("/terms")
    assert "You have accepted this version." in page.text and 'action="/terms"' not in page.text


def test_declining_without_an_application_changes_nothing(http, user, provider):
    sign_in(http)
    page = http.get("/terms")
    r = http.post("/terms", data={**form_fields(page.text), "decision": "decline", "version": "2024-01"})
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/account"
    assert provider.users.by_id(user.id).terms_version is None


def test_accepting_an_outdated_version_shows_the_new_text(http, user, provider, terms_file):
    sign_in(http)
    page = http.get("/terms")
    terms_file.write_text(TERMS_V2, encoding="utf-8")
    provider.settings.terms_version = "2025-06"
    r = http.post("/terms", data={**form_fields(page.text), "decision": "accept", "version": "2024-01"})
    assert r.status_code == 409 and "The terms changed" in r.text and "Version 2025-06" in r.text
    assert provider.users.by_id(user.id).terms_version is None


def test_terms_form_needs_csrf_and_a_session(http, flow, client, user, provider):
    r = http.get("/terms")
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/login"
    page = flow.authorize(**params(client))  # the login page of a parked request
    interaction = form_fields(page.text)["interaction"]
    r = http.get("/terms", params={"interaction": interaction})
    assert r.status_code == 303 and r.headers["location"] == ISSUER + f"/login?interaction={interaction}"
    r = http.post("/terms", data={"decision": "accept", "version": "2024-01", "interaction": interaction})
    assert r.status_code == 303 and r.headers["location"].startswith(ISSUER + "/login")
    sign_in(http)
    r = http.post("/terms", data={"decision": "accept", "version": "2024-01"})
    assert r.status_code == 400
    r = http.post("/terms", data={"decision": "accept", "version": "2024-01", "csrf_token": "forged"})
    assert r.status_code == 400
    assert provider.users.by_id(user.id).terms_version is None


def test_unknown_interaction_is_refused(http, user):
    sign_in(http)
    assert http.get("/terms", params={"interaction": "nope"}).status_code == 400
    page = http.get("/terms")
    r = http.post("/terms", data={**form_fields(page.text), "interaction": "nope", "decision": "accept",
                                  "version": "2024-01"})
    assert r.status_code == 400


def test_current_terms_are_public_and_have_no_form(http):
    r = http.get("/terms/current")
    assert r.status_code == 200
    assert "Welcome to Example." in r.text and "&lt;b&gt;nice&lt;/b&gt;" in r.text
    assert "Version 2024-01" in r.text
    assert "<form method=\"post\"" not in r.text and "I accept" not in r.text


def test_without_configured_terms_nothing_is_asked(http, flow, client, user, provider):
    provider.settings.terms_version = ""
    assert http.get("/terms/current").status_code == 404
    page = flow.login(flow.authorize(**params(client)))
    assert 'action="/consent"' in page.text  # straight from login to consent
    sign_in(http)
    assert http.get("/terms").status_code == 404


def test_unreadable_terms_file_still_renders(http, provider, terms_file):
    terms_file.unlink()
    r = http.get("/terms/current")
    assert r.status_code == 200 and "The text of the terms is not available." in r.text
