"""Sign-up through the hosted pages, with real mail: fields and their checks, the OAuth flow it
continues, duplicate addresses, and sign-up switched off globally or per client."""

from __future__ import annotations

import re

import pytest
from lifecycle_helpers import (
    assert_labelled,
    authorize_params,
    code_in,
    last_mail,
    link_in,
    page_fields,
    signup,
    user_count,
    visible_text,
)
from sqlalchemy import select
from starlette.testclient import TestClient
from support import ISSUER, PASSWORD, query_of

from idbroker.store.models import OneTimeToken, User

FIELDS = ["given_name", "family_name", "locale", "newsletter", "company"]


@pytest.fixture
def settings_overrides(smtp):
    return {**smtp.settings(), "signup_fields": FIELDS, "custom_attributes": ["newsletter:bool", "company:text"]}


def _user(provider, email):
    with provider.db.session(write=False) as s:
        return s.scalar(select(User).where(User.email == email))


def test_signup_form_fields_autocomplete_and_labels(http):
    page = http.get("/signup")
    assert page.status_code == 200
    text = page.text
    assert 'name="email" type="email"' in text and 'autocomplete="username"' in text
    assert 'name="password" type="password"' in text and 'autocomplete="new-password"' in text
    assert 'name="phone_number" type="tel"' in text and 'autocomplete="tel"' in text
    assert 'autocomplete="given-name"' in text and 'autocomplete="family-name"' in text
    assert '<select id="f-locale" name="locale"' in text
    assert 'name="newsletter" type="checkbox"' in text and 'name="company" type="text"' in text
    assert "Use at least 8 characters." in text  # the policy, said up front
    assert 'name="csrf_token"' in text
    assert_labelled(text)


def test_login_page_links_to_signup_and_recovery(http, flow, register):
    client = register()
    params, _ = authorize_params(client)
    page = flow.authorize(**params)
    interaction = page_fields(page)["interaction"]
    assert f'href="/signup?interaction={interaction}"' in page.text
    assert f'href="/forgot-password?interaction={interaction}"' in page.text
    assert "Create an account" in page.text and "Forgot your password?" in page.text


def test_signup_then_code_continues_the_oauth_flow(http, flow, register, provider, smtp):
    client = register()
    params, verifier = authorize_params(client)
    login = flow.authorize(**params)
    interaction = page_fields(login)["interaction"]

    r = signup(http, interaction, email="Bob@Example.com", phone_number="+44 20 7946 0958",
               locale="fr", newsletter="on", company="ACME")
    assert r.status_code == 200, r.text
    assert "Check your email" in r.text and "bob@example.com" in r.text
    assert 'autocomplete="one-time-code"' in r.text and 'inputmode="numeric"' in r.text
    assert http.get("/account").status_code == 303   # not signed in before the address is proven

    user = _user(provider, "bob@example.com")
    assert user.email_verified is False
    assert (user.given_name, user.family_name, user.locale) == ("Bob", "Builder", "fr")
    assert user.phone_number == "+442079460958"
    assert user.custom_attributes == {"newsletter": True, "company": "ACME"}
    assert provider.users.authenticate("bob@example.com", "bob's long password") is not None

    mail = smtp.wait_for("bob@example.com")[0]
    text = smtp.text(mail)
    assert link_in(text, "/verify-email/confirm")
    code = code_in(text)

    r = http.post("/verify-email", data={**page_fields(r), "action": "verify", "code": code})
    assert r.status_code == 303
    assert r.headers["location"] == f"{ISSUER}/oauth2/authorize/resume?interaction={interaction}"
    page = flow.follow(r)
    page = flow.consent(page)
    assert page.status_code == 303 and page.headers["location"].startswith(client.redirect_uri)
    q = query_of(page.headers["location"])
    assert q["state"] == "st"
    tokens = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier}).json()
    info = http.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).json()
    assert info["email"] == "bob@example.com" and info["email_verified"] is True


def test_signup_without_an_application(http, provider, smtp):
    r = signup(http)
    assert r.status_code == 200
    code = code_in(last_mail(smtp, "bob@example.com"))
    r = http.post("/verify-email", data={**page_fields(r), "action": "verify", "code": code})
    assert r.status_code == 200 and "Your email address is verified" in r.text
    user = _user(provider, "bob@example.com")
    assert user.email_verified and user.locale == "en"      # the page's language
    assert user.custom_attributes == {"newsletter": False}   # unticked box, empty text left out


def test_locale_defaults_to_the_page_language(http, provider, smtp):
    page = http.get("/signup", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert '<option value="de" lang="de" dir="ltr" selected>' in page.text
    data = {**page_fields(page), "email": "dora@example.com", "password": "dora's long password",
            "given_name": "Dora", "family_name": "D"}
    r = http.post("/signup", data=data, headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert r.status_code == 200
    assert _user(provider, "dora@example.com").locale == "de"


def test_existing_address_gets_the_same_answer_and_a_mail(http, provider, smtp, user):
    new = signup(http, email="bob@example.com")
    assert new.status_code == 200
    count = user_count(provider)
    duplicate = signup(http, email="ALICE@example.com", password="something else entirely")
    assert duplicate.status_code == new.status_code
    assert visible_text(duplicate.text).replace("alice@example.com", "X") == \
        visible_text(new.text).replace("bob@example.com", "X")
    assert user_count(provider) == count
    assert provider.users.authenticate("alice@example.com", PASSWORD) is not None   # untouched
    text = last_mail(smtp, "alice@example.com")
    assert "already have an account" in text
    assert f"{ISSUER}/forgot-password" in text and f"{ISSUER}/login" in text
    assert len(smtp.wait_for("alice@example.com")) == 1
    with provider.db.session(write=False) as s:  # no verification token for the existing account
        assert s.scalar(select(OneTimeToken).where(OneTimeToken.user_id == user.id)) is None


def _cookies(response):
    """What the answer does to the browser's cookies: (name, attributes but the date, value length)."""
    out = []
    for header in response.headers.get_list("set-cookie"):
        first, _, attributes = header.partition(";")
        name, _, value = first.partition("=")
        attributes = re.sub(r"expires=[^;]*;?", "", attributes.replace(" ", "").lower())
        out.append((name, attributes, len(value.strip('"'))))
    return sorted(out)


def _seen_by_the_browser(app, email, *, signed_in_before):
    """Everything a browser can observe when signing up with `email` and going on from there."""
    with TestClient(app, base_url=ISSUER, follow_redirects=False) as browser:
        if signed_in_before:
            page = browser.get("/login")
            assert browser.post("/login", data={**page_fields(page), "username": "carol@example.com",
                                                "password": PASSWORD}).status_code == 303
        answer = signup(browser, email=email)
        after = [browser.get(path) for path in ("/account", "/verify-email", "/signup")]
        fields = page_fields(answer)
        after.append(browser.post("/verify-email", data={**fields, "action": "resend"}))
        after += [browser.post("/verify-email", data={**fields, "action": "verify", "code": "000000"})
                  for _ in range(6)]
        # (Waits are counted from each browser's own sign-up: compared as present or not.)
        seen = [(r.status_code, r.headers.get("location"), "retry-after" in r.headers,
                 re.sub(r"\d+ seconds", "N seconds", visible_text(r.text).replace(email, "X")))
                for r in [answer, *after]]
        return seen, _cookies(answer), browser.get("/account").status_code


@pytest.mark.parametrize("signed_in_before", [False, True], ids=["signed out", "someone signed in"])
def test_signup_answers_the_same_whether_or_not_the_address_has_an_account(app, provider, smtp, user,
                                                                          signed_in_before):
    """Status, page, cookies set and cleared, the pages after it (account, verification, a new
    code, wrong codes until they are used up): all the same for a new and a registered address.
    Nobody is signed in before the address is proven."""
    provider.users.create("carol@example.com", PASSWORD, email_verified=True)
    new = _seen_by_the_browser(app, "alice@example.org", signed_in_before=signed_in_before)
    registered = _seen_by_the_browser(app, "alice@example.com", signed_in_before=signed_in_before)  # as long
    assert new == registered
    seen, cookies, account = new
    assert account == 303 and seen[1][0] == 303            # /account: not signed in
    assert [c[0] for c in cookies if c[2] == 0] == ["idbroker_session"]   # the session cookie cleared
    assert "That code is not right" in seen[6][3] and "can no longer be used" in seen[-1][3]
    assert _user(provider, "alice@example.org").email_verified is False


@pytest.mark.parametrize("settings_overrides", [{"signup_enabled": False}])
def test_signup_disabled_globally(http, flow, register, provider):
    page = http.get("/signup")
    assert page.status_code == 403 and "Sign-up is not available" in page.text
    r = http.post("/signup", data={"csrf_token": "x", "email": "bob@example.com", "password": "long enough pw"})
    assert r.status_code == 403
    assert user_count(provider) == 0
    params, _ = authorize_params(register())
    login = flow.authorize(**params)
    assert "/signup" not in login.text and "/forgot-password" in login.text


@pytest.mark.parametrize("settings_overrides", [{"signup_enabled": False}])
def test_client_can_allow_signup_when_globally_off(http, flow, register):
    params, _ = authorize_params(register(signup_enabled=True))
    login = flow.authorize(**params)
    interaction = page_fields(login)["interaction"]
    assert f"/signup?interaction={interaction}" in login.text
    assert http.get("/signup", params={"interaction": interaction}).status_code == 200
    assert http.get("/signup").status_code == 403   # without that client, the global setting


def test_signup_disabled_per_client(http, flow, register, provider):
    params, _ = authorize_params(register("closed", signup_enabled=False))
    login = flow.authorize(**params)
    interaction = page_fields(login)["interaction"]
    assert "/signup" not in login.text
    assert http.get("/signup", params={"interaction": interaction}).status_code == 403
    r = http.post("/signup", data={**page_fields(login), "email": "bob@example.com",
                                   "password": "bob's long password", "given_name": "B", "family_name": "B"})
    assert r.status_code == 403 and "Sign-up is not available" in r.text
    assert user_count(provider) == 0
    assert http.get("/signup").status_code == 200   # other ways in stay open


@pytest.mark.parametrize("change,field,message", [
    ({"email": "not-an-address"}, "email", "Enter an email address like name@example.com."),
    ({"email": ""}, "email", "Enter an email address like name@example.com."),
    ({"email": "bob\x07@example.com"}, "email", "Enter an email address like name@example.com."),
    ({"email": "a@" + "b" * 300 + ".com"}, "email", "Enter an email address like name@example.com."),
    ({"password": "short"}, "password", "Use at least 8 characters."),
    ({"password": "x" * 129}, "password", "Use at most 128 characters."),
    ({"password": "bob@example.com"}, "password", "Do not use your email address as your password."),
    ({"password": None}, "password", "Choose a password."),
    ({"given_name": ""}, "given_name", "Enter your given name."),
    ({"family_name": "x" * 256}, "family_name", "Use at most 255 characters."),
    ({"given_name": "Bob\x07"}, "given_name", "Remove the control characters from this field."),
    ({"phone_number": "call me maybe"}, "phone_number", "Enter the number in international format"),
    ({"locale": "xx-Klingon"}, "locale", "Choose a language from the list."),
    ({"newsletter": "maybe"}, "newsletter", "This value is not valid."),
    ({"company": "c" * 300}, "company", "Use at most 255 characters."),
])
def test_invalid_fields_are_explained_and_change_nothing(http, provider, smtp, change, field, message):
    r = signup(http, **change)
    assert r.status_code == 400, r.text
    assert f'id="f-{field}-error"' in r.text and message in r.text.replace("&#39;", "'")
    assert "f-" + field + "-error" in r.text.split(f'id="f-{field}"', 1)[1].split(">", 1)[0]  # aria-describedby
    assert 'value="Builder"' in r.text or field == "family_name"     # entered values come back
    assert "bob&#39;s long password" not in r.text                      # never the password
    assert user_count(provider) == 0
    assert smtp.messages == []
    with provider.db.session(write=False) as s:
        assert s.scalar(select(OneTimeToken)) is None


def test_csrf_token_is_required(http, provider, smtp):
    page = http.get("/signup")
    data = {**page_fields(page), "email": "bob@example.com", "password": "bob's long password",
            "given_name": "Bob", "family_name": "B"}
    for bad in ("", "forged"):
        r = http.post("/signup", data={**data, "csrf_token": bad})
        assert r.status_code == 400 and "Your form expired" in r.text
    assert user_count(provider) == 0 and smtp.messages == []


def test_unreadable_or_oversized_forms_are_refused_cleanly(http, provider):
    assert http.post("/signup", data={f"f{i}": "x" for i in range(200)}).status_code == 400
    assert http.post("/signup", data={"email": "a" * (70 * 1024)}).status_code == 400
    assert http.post("/signup", files={"email": ("a.txt", b"x")}).status_code == 400
    assert http.post("/signup", content=b"\xff\xfe", headers={"content-type": "text/plain"}).status_code == 400
    assert http.get("/signup", params={"interaction": "nope"}).status_code == 400
    assert http.get("/signup", params={"interaction": "x" * 5000}).status_code == 400
    assert http.get("/signup", params={"interaction": "a\x00b"}).status_code == 400
    assert http.post("/signup", data={"interaction": "a\x00b", "email": "b\x00@example.com"}).status_code == 400
    assert user_count(provider) == 0


def test_signup_mail_is_in_the_chosen_language_template(http, smtp):
    signup(http)
    text = last_mail(smtp, "bob@example.com")
    assert "&amp;" not in text and "&#39;" not in text     # plain text, not HTML-escaped
    assert "The link and the code expire in 15 minutes." in text


def test_signup_does_the_same_work_for_a_new_and_a_registered_address(http, provider, smtp, user, monkeypatch):
    """What takes time before the answer - the policy check (it may ask the range API) and the
    password hash - happens as often either way; the mail goes out after the answer."""
    calls: list[str] = []
    for owner, name in ((provider.password_policy, "check"), (provider.passwords, "hash"),
                        (provider.passwords, "verify")):
        original = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a, _f=original, _n=name, **kw: calls.append(_n) or _f(*a, **kw))
    work = []
    for email in ("alice@example.org", "alice@example.com"):
        calls.clear()
        assert signup(http, email=email).status_code == 200
        work.append(sorted(calls))
    assert work[0] == work[1] == ["check", "hash"]
