"""The account page: profile, change of address by mail, password, sessions, connected
applications and deleting the account - through HTTP, on both stores, with a real SMTP server."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient
from support import CSRF_RE, ISSUER, PASSWORD, MailSink, query_of

from idbroker.accounts.throttle import LIMITS
from idbroker.store.models import BrowserSession, Consent, Grant, OneTimeToken, User

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/126.0.0.0 Safari/537.36")
SAFARI_IOS = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
              "Version/17.5 Mobile/15E148 Safari/604.1")
NEW_PASSWORD = "a brand new passphrase"
POST_ENDPOINTS = ["/account/profile", "/account/email", "/account/password", "/account/sessions/end",
                  "/account/sessions/end-others", "/account/apps/revoke", "/account/delete",
                  "/account/phone/send", "/account/phone/verify"]


@pytest.fixture
def settings_overrides(smtp):
    return smtp.settings()


@pytest.fixture
def browser(app):
    """Another browser on the same broker, with its own cookies and User-Agent."""
    opened = []

    def _open(user_agent):
        client = TestClient(app, base_url=ISSUER, follow_redirects=False, headers={"User-Agent": user_agent})
        opened.append(client)
        return client

    yield _open
    for client in opened:
        client.close()


def sign_in(http, email="alice@example.com", password=PASSWORD):
    page = http.get("/login")
    r = http.post("/login", data={"csrf_token": CSRF_RE.search(page.text).group(1), "username": email,
                                  "password": password})
    assert r.status_code == 303, r.text
    return r


def account(http):
    page = http.get("/account")
    assert page.status_code == 200, page.text
    return page


def csrf(html):
    return CSRF_RE.search(html).group(1)


def post(http, path, **data):
    """Submits a form of the account page with the page's CSRF token."""
    return http.post(path, data={"csrf_token": csrf(account(http).text), **data})


def stored(provider, user_id):
    return provider.users.by_id(user_id)


def signed_out(client):
    r = client.get("/account")
    return r.status_code == 303 and r.headers["location"] == ISSUER + "/login?next=%2Faccount"


class FormAudit(HTMLParser):
    """Collects inputs, labels and forms to check the markup rules of the page."""

    def __init__(self):
        super().__init__()
        self.fields = []      # (tag, attrs) of every visible input and select
        self.labels = set()   # ids labels point at
        self.forms = []       # [attrs, hidden field names]

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append([a, set()])
        elif tag in ("input", "select", "textarea"):
            if a.get("type") == "hidden":
                if self.forms:
                    self.forms[-1][1].add(a.get("name"))
            else:
                self.fields.append((tag, a))
        elif tag == "label" and a.get("for"):
            self.labels.add(a["for"])


def audit(html):
    parser = FormAudit()
    parser.feed(html)
    return parser


# -- access --------------------------------------------------------------------------------------
def test_every_account_page_needs_a_session(http, user):
    for path in ("/account", "/account/delete"):
        r = http.get(path)
        assert r.status_code == 303 and r.headers["location"] == ISSUER + "/login?" + urlencode({"next": path})
    for path in POST_ENDPOINTS:
        r = http.post(path, data={"csrf_token": "x"})
        assert r.status_code == 303 and r.headers["location"] == ISSUER + "/login", path


def test_every_form_is_protected_against_csrf(http, user, provider, smtp):
    sign_in(http)
    me = stored(provider, user.id)
    for path in POST_ENDPOINTS:
        for token in ({}, {"csrf_token": "forged"}):
            r = http.post(path, data={**token, "given_name": "Mallory", "new_email": "m@evil.example",
                                      "current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                      "confirm": PASSWORD, "client_id": "app"})
            assert r.status_code == 400, (path, r.status_code)
            assert "Your form expired" in r.text
    after = stored(provider, user.id)
    assert after is not None and after.given_name == me.given_name and after.email == me.email
    assert after.password_hash == me.password_hash
    assert smtp.messages == []
    r = http.post("/account/email/confirm", data={"token": "whatever"})
    assert r.status_code == 400


def test_account_page_markup(http, user, provider):
    sign_in(http)
    provider.sessions.create(user, ["pwd"], None, user_agent=CHROME, ip="192.0.2.7")  # another device
    html = account(http).text
    for token in ("given-name", "family-name", "email", "tel", "current-password", "new-password"):
        assert f'autocomplete="{token}"' in html, token
    parsed = audit(html)
    unlabelled = [a.get("id") or a.get("name") for tag, a in parsed.fields if a.get("id") not in parsed.labels]
    assert unlabelled == [], unlabelled
    posts = [(a, hidden) for a, hidden in parsed.forms if a.get("method") == "post"]
    assert {a["action"] for a, _ in posts} == {"/account/profile", "/account/email", "/account/password",
                                                "/account/sessions/end", "/account/sessions/end-others",
                                                "/account/phone/send", "/account/phone/verify"}  # phone unconfirmed
    assert all("csrf_token" in hidden for _, hidden in posts), posts
    assert 'id="current-email"' not in html and "You sign in with alice@example.com." in html
    assert 'value="Alice"' in html and 'value="Liddell"' in html and 'value="+15555550100"' in html


# -- profile ------------------------------------------------------------------------------------
def test_profile_is_saved(http, user, provider):
    sign_in(http)
    r = post(http, "/account/profile", given_name="  Ada ", family_name="Lovelace", locale="fr",
             phone_number="+44 (20) 7946-0958")
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/account?done=profile"
    me = stored(provider, user.id)
    assert (me.given_name, me.family_name, me.locale, me.phone_number) == ("Ada", "Lovelace", "fr", "+442079460958")
    assert me.phone_number_verified is False
    page = account(http)
    assert 'role="status"' not in page.text  # the notice only right after saving
    page = http.get("/account?done=profile")
    assert "Votre profil a été enregistré." in page.text  # "Your profile was saved.", in the new language
    assert '<html lang="fr" dir="ltr">' in page.text  # the chosen language applies to the pages
    assert '<option value="fr" lang="fr" dir="ltr" selected>' in page.text
    # clearing optional fields
    r = post(http, "/account/profile", given_name="", family_name="", locale="", phone_number="")
    me = stored(provider, user.id)
    assert r.status_code == 303 and (me.given_name, me.family_name, me.locale, me.phone_number) == (None,) * 4


@pytest.mark.parametrize("change,error", [
    ({"phone_number": "call me maybe"}, "international format"),
    ({"phone_number": "12345"}, "international format"),
    ({"phone_number": "+1" + "2" * 40}, "international format"),
    ({"locale": "xx-YY"}, "Choose a language from the list."),
    ({"given_name": "A" * 256}, "Use at most 255 characters."),
    ({"family_name": "x" * 10_000}, "Use at most 255 characters."),
    ({"family_name": "Bad\x07Name"}, "control characters"),
])
def test_profile_errors_say_why_and_save_nothing(http, user, provider, change, error):
    sign_in(http)
    form = {"given_name": "Changed", "family_name": "Also changed", "locale": "de", "phone_number": "+4930123456"}
    r = post(http, "/account/profile", **{**form, **change})
    assert r.status_code == 400 and error in r.text
    assert 'aria-invalid="true"' in r.text
    me = stored(provider, user.id)
    assert (me.given_name, me.family_name, me.locale, me.phone_number) == ("Alice", "Liddell", None, "+15555550100")


# -- change of address ---------------------------------------------------------------------------
def confirm_link(smtp, to):
    [msg] = smtp.wait_for(to)
    assert msg["Subject"] == "Confirm your new email address"
    text = MailSink.text(msg)
    link = re.search(r"(http://\S+/account/email/confirm\?token=[\w-]+)", text).group(1)
    assert link in msg.get_body(preferencelist=("html",)).get_content()
    return link


def test_change_email_confirmed_by_the_new_mailbox(http, user, provider, smtp):
    sign_in(http)
    r = post(http, "/account/email", new_email="Alice.New@Example.org", current_password=PASSWORD)
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/account?done=email"
    assert "Check the new mailbox" in http.get(r.headers["location"]).text
    link = confirm_link(smtp, "alice.new@example.org")
    assert [m for m in smtp.messages if "alice@example.com" in str(m["To"])] == []
    assert stored(provider, user.id).email == "alice@example.com"  # until confirmed

    page = http.get(link.removeprefix(ISSUER))
    assert page.status_code == 200 and "alice.new@example.org" in page.text
    assert stored(provider, user.id).email == "alice@example.com"  # opening the link alone changes nothing
    token = query_of(link)["token"]
    done = http.post("/account/email/confirm", data={"csrf_token": csrf(page.text), "token": token})
    assert done.status_code == 200 and "You now sign in with alice.new@example.org." in done.text
    me = stored(provider, user.id)
    assert me.email == "alice.new@example.org" and me.email_verified is True
    assert provider.users.authenticate("alice@example.com", PASSWORD) is None
    assert provider.users.authenticate("alice.new@example.org", PASSWORD) is not None
    # the link works once
    assert http.get(link.removeprefix(ISSUER)).status_code == 400
    again = http.post("/account/email/confirm", data={"csrf_token": csrf(page.text), "token": token})
    assert again.status_code == 400 and "invalid" in again.text


def test_confirming_in_another_browser_without_a_session(http, user, provider, smtp, browser):
    sign_in(http)
    post(http, "/account/email", new_email="elsewhere@example.org", current_password=PASSWORD)
    link = confirm_link(smtp, "elsewhere@example.org")
    phone = browser(SAFARI_IOS)
    page = phone.get(link.removeprefix(ISSUER))
    r = phone.post("/account/email/confirm", data={"csrf_token": csrf(page.text), "token": query_of(link)["token"]})
    assert r.status_code == 200 and 'href="/login"' in r.text
    assert stored(provider, user.id).email == "elsewhere@example.org"


def test_an_address_of_another_account_gets_the_same_answer_and_no_mail(http, user, provider, smtp):
    provider.users.create("bob@example.com", "bob's long password")
    sign_in(http)
    r = post(http, "/account/email", new_email="BOB@example.com", current_password=PASSWORD)
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/account?done=email"
    assert smtp.messages == []
    assert stored(provider, user.id).email == "alice@example.com"
    with provider.db.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(OneTimeToken)) == 0


def test_confirmation_rechecks_that_the_address_is_still_free(http, user, provider, smtp):
    sign_in(http)
    post(http, "/account/email", new_email="carol@example.com", current_password=PASSWORD)
    link = confirm_link(smtp, "carol@example.com")
    provider.users.create("carol@example.com", "carol's long password")  # someone was faster
    page = http.get(link.removeprefix(ISSUER))
    r = http.post("/account/email/confirm", data={"csrf_token": csrf(page.text), "token": query_of(link)["token"]})
    assert r.status_code == 400 and "used by another account" in r.text
    assert stored(provider, user.id).email == "alice@example.com"
    assert http.get(link.removeprefix(ISSUER)).status_code == 400  # and the link is spent


@pytest.mark.parametrize("new_email,password,error", [
    ("alice.new@example.org", "wrong password", "Your current password is not correct."),
    ("not an address", PASSWORD, "Enter an email address like name@example.com."),
    ("", PASSWORD, "Enter an email address like name@example.com."),
    ("x" * 400 + "@example.com", PASSWORD, "Enter an email address like name@example.com."),
    ("ALICE@example.com", PASSWORD, "This is already your email address."),
])
def test_change_email_errors(http, user, provider, smtp, new_email, password, error):
    sign_in(http)
    r = post(http, "/account/email", new_email=new_email, current_password=password)
    assert r.status_code == 400 and error in r.text
    assert smtp.messages == [] and stored(provider, user.id).email == "alice@example.com"


def test_bad_confirmation_links(http, user):
    for token in ("", "nope", "x" * 500):
        assert http.get("/account/email/confirm", params={"token": token}).status_code == 400
    assert http.get("/account/email/confirm").status_code == 400


# -- password --------------------------------------------------------------------------------------
def test_change_password_ends_the_other_sessions(http, user, provider, browser):
    sign_in(http)
    laptop = browser(CHROME)
    sign_in(laptop)
    r = post(http, "/account/password", current_password=PASSWORD, new_password=NEW_PASSWORD)
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/account?done=password"
    assert "Your password was changed." in http.get(r.headers["location"]).text
    assert provider.users.authenticate("alice@example.com", PASSWORD) is None
    assert provider.users.authenticate("alice@example.com", NEW_PASSWORD) is not None
    assert account(http).status_code == 200  # this browser stays signed in
    assert signed_out(laptop)


@pytest.mark.parametrize("current,new,error", [
    ("wrong password", NEW_PASSWORD, "Your current password is not correct."),
    ("", NEW_PASSWORD, "Your current password is not correct."),
    (PASSWORD, "short", "Use at least 8 characters."),
    (PASSWORD, "", "Use at least 8 characters."),
    (PASSWORD, "y" * 200, "Use at most 128 characters."),
    (PASSWORD, "Alice@Example.com", "Do not use your email address as your password."),
])
def test_change_password_errors_say_why(http, user, provider, browser, current, new, error):
    sign_in(http)
    laptop = browser(CHROME)
    sign_in(laptop)
    before = stored(provider, user.id).password_hash
    r = post(http, "/account/password", current_password=current, new_password=new)
    assert r.status_code == 400 and error in r.text
    assert stored(provider, user.id).password_hash == before
    assert not signed_out(laptop)


# -- sessions --------------------------------------------------------------------------------------
def sessions_of(html):
    return {m.group(1): m.group(0) for m in re.finditer(r'<li class="item" data-sid="([^"]+)".*?</li>', html, re.S)}


def test_sessions_are_listed_and_can_be_signed_out(user, provider, browser):
    desk = browser(FIREFOX)
    laptop = browser(CHROME)
    phone = browser(SAFARI_IOS)
    for b in (desk, laptop, phone):
        sign_in(b)
    html = account(desk).text
    listed = sessions_of(html)
    assert len(listed) == 3
    mine = [item for item in listed.values() if 'data-current="true"' in item]
    assert len(mine) == 1 and "Firefox on Linux" in mine[0] and "This device" in mine[0]
    assert "testclient" in mine[0] and "<time datetime=" in mine[0]
    chrome_sid = next(sid for sid, item in listed.items() if "Chrome on Windows" in item)
    assert any("Safari on iOS" in item for item in listed.values())
    assert "This device" not in listed[chrome_sid]

    r = post(desk, "/account/sessions/end", sid=chrome_sid)
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/account?done=session"
    assert signed_out(laptop) and not signed_out(phone) and not signed_out(desk)
    assert len(sessions_of(account(desk).text)) == 2

    r = post(desk, "/account/sessions/end-others")
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/account?done=sessions"
    assert signed_out(phone) and not signed_out(desk)
    html = account(desk).text
    assert len(sessions_of(html)) == 1 and "Sign out all other sessions" not in html


def test_ending_other_sessions_tells_their_applications(http, user, provider, browser, register, receiver):
    from joserfc import jwt
    from support import Flow

    base, received, arrived = receiver
    client = register("app", first_party=True, backchannel_logout_uri=base + "/bcl")
    laptop = browser(CHROME)
    Flow(laptop).code_flow(client)
    sign_in(http)
    [laptop_sid] = [sid for sid, item in sessions_of(account(http).text).items() if "This device" not in item]
    post(http, "/account/sessions/end-others")
    assert arrived.wait(10)
    [delivery] = received
    claims = jwt.decode(delivery["form"]["logout_token"][0], provider.keys.public_keyset()).claims
    assert claims["sid"] == laptop_sid and claims["sub"] == user.sub and claims["aud"] == "app"


def test_signing_out_this_device_goes_through_logout(http, user):
    sign_in(http)
    [sid] = sessions_of(account(http).text)
    r = post(http, "/account/sessions/end", sid=sid)
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/oauth2/logout"


def test_sessions_of_other_users_cannot_be_ended(http, user, provider, browser):
    provider.users.create("bob@example.com", "bob's long password")
    bob = browser(CHROME)
    sign_in(bob, "bob@example.com", "bob's long password")
    with provider.db.session(write=False) as s:
        bob_sid = s.scalar(select(BrowserSession.sid).join(User, User.id == BrowserSession.user_id)
                           .where(User.email == "bob@example.com"))
    sign_in(http)
    for sid in (bob_sid, "nonexistent", "x" * 500, ""):
        r = post(http, "/account/sessions/end", sid=sid)
        assert r.status_code == 303
    post(http, "/account/sessions/end-others")
    assert not signed_out(bob)


# -- connected applications ------------------------------------------------------------------------
def redeem(http, client, q, verifier):
    r = http.post("/oauth2/token", auth=client.basic, data={
        "grant_type": "authorization_code", "code": q["code"], "redirect_uri": client.redirect_uri,
        "code_verifier": verifier})
    assert r.status_code == 200, r.text
    return r.json()


def refresh(http, client, token):
    return http.post("/oauth2/token", auth=client.basic, data={"grant_type": "refresh_token", "refresh_token": token})


def test_revoking_an_app_kills_its_tokens_and_asks_consent_again(http, flow, register, user, provider):
    shop = register("shop", name="Corner <Shop>")
    other = register("news", name="Daily News")
    q, verifier = flow.code_flow(shop, scope="openid email offline_access")
    tokens = redeem(http, shop, q, verifier)
    q2, verifier2 = flow.code_flow(other, scope="openid profile")
    news_tokens = redeem(http, other, q2, verifier2)
    html = account(http).text
    apps = re.findall(r'<li class="item" data-client="([^"]+)">', html)
    assert apps == ["shop", "news"]
    assert "Corner &lt;Shop&gt;" in html and "Your email address" in html

    r = post(http, "/account/apps/revoke", client_id="shop")
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/account?done=app"
    bad = refresh(http, shop, tokens["refresh_token"])
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"
    r = http.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert r.status_code == 401
    # the other application keeps working
    r = http.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + news_tokens["access_token"]})
    assert r.status_code == 200
    html = account(http).text
    assert re.findall(r'<li class="item" data-client="([^"]+)">', html) == ["news"]
    with provider.db.session(write=False) as s:
        assert s.get(Consent, (user.id, "shop")) is None
    # the next authorization asks again
    page = flow.authorize(client_id="shop", redirect_uri=shop.redirect_uri, response_type="code", scope="openid",
                          code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                          code_challenge_method="S256")
    assert page.status_code == 200 and 'action="/consent"' in page.text


def test_first_party_apps_with_grants_are_listed_and_revocable(http, flow, register, user, provider):
    portal = register("portal", name="Portal", first_party=True)
    q, verifier = flow.code_flow(portal, scope="openid offline_access")
    tokens = redeem(http, portal, q, verifier)
    assert 'data-client="portal"' in account(http).text
    post(http, "/account/apps/revoke", client_id="portal")
    assert refresh(http, portal, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert 'data-client="portal"' not in account(http).text


def test_revoking_unknown_apps_changes_nothing(http, flow, register, user, provider):
    shop = register("shop")
    q, verifier = flow.code_flow(shop, scope="openid offline_access")
    tokens = redeem(http, shop, q, verifier)
    for client_id in ("nope", "", "x" * 300):
        assert post(http, "/account/apps/revoke", client_id=client_id).status_code == 303
    assert refresh(http, shop, tokens["refresh_token"]).status_code == 200


# -- deleting the account ------------------------------------------------------------------------
def test_delete_account(http, flow, register, user, provider, browser):
    shop = register("shop")
    q, verifier = flow.code_flow(shop, scope="openid offline_access")
    tokens = redeem(http, shop, q, verifier)
    laptop = browser(CHROME)
    sign_in(laptop)
    page = http.get("/account/delete")
    assert page.status_code == 200 and 'autocomplete="current-password"' in page.text
    assert 'for="confirm"' in page.text

    wrong = http.post("/account/delete", data={"csrf_token": csrf(page.text), "confirm": "not my password"})
    assert wrong.status_code == 400 and "does not match" in wrong.text
    assert stored(provider, user.id) is not None

    r = http.post("/account/delete", data={"csrf_token": csrf(page.text), "confirm": PASSWORD})
    assert r.status_code == 200 and 'id="goodbye"' in r.text
    assert "idbroker_session=" in r.headers["set-cookie"]  # the cookie is cleared
    assert provider.users.by_email("alice@example.com") is None
    with provider.db.session(write=False) as s:
        for model in (BrowserSession, Grant, Consent, OneTimeToken):
            assert s.scalar(select(func.count()).select_from(model).where(model.user_id == user.id)) == 0, model
    assert signed_out(http) and signed_out(laptop)
    assert refresh(http, shop, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    r = http.get("/oauth2/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert r.status_code == 401
    assert provider.users.authenticate("alice@example.com", PASSWORD) is None


def test_delete_account_without_password_asks_for_the_address(http, provider):
    who = provider.users.create("nopass@example.com", None, email_verified=True)
    cookie, _ = provider.sessions.create(who, ["otp"], None)
    http.cookies.set("idbroker_session", cookie)
    page = http.get("/account/delete")
    assert "Type your email address to confirm" in page.text and 'type="email"' in page.text
    r = http.post("/account/delete", data={"csrf_token": csrf(page.text), "confirm": "other@example.com"})
    assert r.status_code == 400 and provider.users.by_id(who.id) is not None
    r = http.post("/account/delete", data={"csrf_token": csrf(page.text), "confirm": " NoPass@Example.com "})
    assert r.status_code == 200 and provider.users.by_id(who.id) is None


# -- robustness ------------------------------------------------------------------------------------
def test_strange_requests_never_fail_with_500(http, user, provider):
    sign_in(http)
    token = csrf(account(http).text)
    for path in POST_ENDPOINTS + ["/account/email/confirm", "/terms"]:
        attempts = [
            http.post(path, content=b'{"csrf_token": "' + token.encode() + b'"}',
                      headers={"Content-Type": "application/json"}),
            http.post(path, data={"csrf_token": token}, files={"given_name": ("a.txt", b"file", "text/plain")}),
            http.post(path, content=b"\xff\xfe%%%=&&=", headers={"Content-Type": "application/x-www-form-urlencoded"}),
            http.post(path, data={"csrf_token": token, "given_name": ["a", "b"], "sid": ["1", "2"]}),
        ]
        for r in attempts:
            assert r.status_code < 500, (path, r.status_code)
    assert stored(provider, user.id) is not None  # "confirm" was never given


# -- phone re-verification ---------------------------------------------------------------------------
def _texts(provider):
    folder = Path(provider.settings.data_dir) / "sms"
    return sorted(folder.glob("*.txt")) if folder.exists() else []


def test_a_changed_phone_number_is_confirmed_by_a_texted_code(http, user, provider):
    sign_in(http)
    assert provider.users.by_id(user.id).phone_number_verified is False
    html = account(http).text
    assert 'id="phone-verification"' in html and 'autocomplete="one-time-code"' in html
    r = post(http, "/account/phone/verify", code="123456")  # nothing sent yet
    assert r.status_code == 400 and provider.users.by_id(user.id).phone_number_verified is False
    r = post(http, "/account/phone/send")
    assert r.headers["location"] == ISSUER + "/account?done=phone_sent"
    [sms] = _texts(provider)
    body = sms.read_text()
    assert body.startswith("To: +15555550100")
    code = re.search(r"\b(\d{6})\b", body).group(1)
    assert post(http, "/account/phone/verify", code="000000" if code != "000000" else "111111").status_code == 400
    r = post(http, "/account/phone/verify", code=code)
    assert r.status_code == 303, (code, body, re.findall(r'class="error[^>]*>([^<]*)', r.text))
    assert r.headers["location"] == ISSUER + "/account?done=phone"
    assert provider.users.by_id(user.id).phone_number_verified is True
    assert 'id="phone-verification"' not in account(http).text
    # Changing the number makes it unconfirmed again.
    post(http, "/account/profile", given_name="Alice", family_name="Liddell", locale="", phone_number="+442079460958")
    assert provider.users.by_id(user.id).phone_number_verified is False


def test_a_code_for_an_old_number_does_not_confirm_a_new_one(http, user, provider):
    sign_in(http)
    post(http, "/account/phone/send")
    code = re.search(r"\b(\d{6})\b", _texts(provider)[0].read_text()).group(1)
    post(http, "/account/profile", given_name="Alice", family_name="Liddell", locale="", phone_number="+442079460958")
    assert post(http, "/account/phone/verify", code=code).status_code == 400
    assert provider.users.by_id(user.id).phone_number_verified is False


def test_phone_codes_are_rate_limited(http, user, provider):
    """One text per resend interval, and at most LIMITS["phone-send"] an hour to a number."""
    sign_in(http)
    assert post(http, "/account/phone/send").status_code == 303
    r = post(http, "/account/phone/send")
    assert r.status_code == 429 and 0 < int(r.headers["retry-after"]) <= 60 and "Please wait" in r.text
    provider.settings.resend_interval = 0
    limit, window = LIMITS["phone-send"]
    for _ in range(limit - 1):
        assert post(http, "/account/phone/send").status_code == 303
    r = post(http, "/account/phone/send")
    assert r.status_code == 429 and 60 < int(r.headers["retry-after"]) <= window
    assert len(_texts(provider)) == limit
