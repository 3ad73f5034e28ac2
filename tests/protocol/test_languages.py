"""The hosted pages and mails in the user's language, through HTTP on both stores: ui_locales on
the authorization request (OIDC Core §3.1.2.1), the selector on every page (a cookie; local
redirects only), the signed-in user's locale, Accept-Language, and mails in the user's language."""

from __future__ import annotations

import html
import re

import pytest
from lifecycle_helpers import authorize_params, last_mail, page_fields, signup
from support import CSRF_RE, ISSUER, PASSWORD

from idbroker.text import SUPPORTED
from idbroker.web.i18n import Catalogs

CATALOGS = Catalogs()
LANG_COOKIE = "idbroker_lang"
LANG_ATTR = re.compile(r'<html lang="([^"]+)" dir="(?:ltr|rtl)">')


@pytest.fixture
def settings_overrides(smtp):
    return smtp.settings()


def t(lang: str, msgid: str) -> str:
    return CATALOGS.get(lang).gettext(msgid)


def lang_of(page) -> str:  # type: ignore[no-untyped-def]
    found = LANG_ATTR.search(page.text)
    assert found, page.text[:300]
    return found.group(1)


def text_of(page) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(page.text)


def sign_in(http, email="alice@example.com", password=PASSWORD, **headers):  # type: ignore[no-untyped-def]
    page = http.get("/login", headers=headers)
    r = http.post("/login", data={"csrf_token": CSRF_RE.search(page.text).group(1), "username": email,
                                  "password": password}, headers=headers)
    assert r.status_code == 303, r.text
    return r


# -- ui_locales -------------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", list(SUPPORTED))
def test_login_page_in_each_language_from_ui_locales(http, flow, register, lang):
    client = register()
    params, _ = authorize_params(client, ui_locales=lang)
    page = flow.authorize(**params)
    assert page.status_code == 200 and 'autocomplete="current-password"' in page.text
    assert lang_of(page) == lang
    assert f'<option value="{lang}" lang="{lang}" dir="{CATALOGS.direction(lang)}" selected>' in page.text
    button = t(lang, "Sign in")
    assert f'<button type="submit">{html.escape(button)}</button>' in page.text
    assert f"<h1>{html.escape(button)}</h1>" in page.text
    assert f'<label for="password">{html.escape(t(lang, "Password"))}</label>' in page.text
    if lang == "en":
        assert button == "Sign in"
    else:
        assert button != "Sign in"
        assert ">Sign in<" not in page.text and "Forgot your password?" not in page.text


def test_ui_locales_beats_the_selector_the_user_and_accept_language(http, flow, register, provider):
    provider.users.create("alice@example.com", PASSWORD, email_verified=True, locale="nl")
    client = register()
    http.get("/language", params={"lang": "fr", "next": "/"})
    params, _ = authorize_params(client, ui_locales="sv de-CH fr")   # first supported tag: de
    page = flow.authorize(**params)
    assert lang_of(page) == "de" and "Anmelden" in page.text
    # Unsupported only: the selector's choice.
    params, _ = authorize_params(client, ui_locales="sv tlh")
    page = flow.authorize(**params)
    assert lang_of(page) == "fr" and "Se connecter" in page.text


# -- Accept-Language ----------------------------------------------------------------------------------
@pytest.mark.parametrize("header, lang", [
    ("nl-NL,nl;q=0.9,en;q=0.5", "nl"),
    ("sv-SE, ja;q=0.8, en;q=0.7", "ja"),
    ("pt-PT,pt;q=0.9", "pt-BR"),
    ("zh-CN,zh;q=0.9", "zh-Hans"),
    ("en;q=0.1, es", "es"),
    ("sv", "en"),
])
def test_accept_language_chooses_the_page_language(http, header, lang):
    page = http.get("/login", headers={"Accept-Language": header})
    assert page.status_code == 200
    assert lang_of(page) == lang
    assert t(lang, "Forgot your password?") in text_of(page)


def test_error_pages_are_translated_with_their_placeholders(http, register):
    client = register()
    r = http.get("/oauth2/authorize", params={"client_id": "nobody", "redirect_uri": client.redirect_uri},
                 headers={"Accept-Language": "de"})
    assert r.status_code == 400 and lang_of(r) == "de"
    assert t("de", "The application that sent you here is not registered.") in text_of(r)
    assert t("de", "We could not complete this request") in text_of(r)
    params, _ = authorize_params(client, state="s" * 5000)
    r = http.get("/oauth2/authorize", params=params, headers={"Accept-Language": "fr"})
    assert r.status_code == 400
    assert "Le paramètre state est trop long." in text_of(r)
    r = http.get("/oauth2/authorize", params=params)
    assert "The parameter state is too long." in text_of(r)
    r = http.get("/oauth2/logout", params={"client_id": "nobody"}, headers={"Accept-Language": "it"})
    assert r.status_code == 400 and "L'applicazione non è registrata." in text_of(r)


# -- the selector ------------------------------------------------------------------------------------
def test_selector_sets_the_cookie_and_returns_to_the_page(http, flow, register):
    client = register()
    params, _ = authorize_params(client)
    page = flow.authorize(**params)
    assert lang_of(page) == "en"
    assert '<form method="get" action="/language"' in page.text
    here = html.unescape(re.search(r'name="next" value="([^"]*)"', page.text).group(1))
    assert here.startswith("/login?interaction=")
    r = http.get("/language", params={"lang": "ja", "next": here})
    assert r.status_code == 303 and r.headers["location"] == ISSUER + here
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{LANG_COOKIE}=ja;") and "HttpOnly" in cookie and "Path=/" in cookie
    assert "samesite=lax" in cookie.lower()
    back = http.get(r.headers["location"])
    assert back.status_code == 200 and lang_of(back) == "ja" and "ログイン" in back.text
    # The interaction survived the round trip: the form still carries it.
    assert page_fields(back)["interaction"] == page_fields(page)["interaction"]
    # Every other page follows the cookie too, and the selector marks the choice.
    for path in ("/forgot-password", "/signup", "/terms/current"):
        other = http.get(path)
        assert lang_of(other) == "ja", path
        if other.status_code == 200:
            assert '<option value="ja" lang="ja" dir="ltr" selected>' in other.text


def test_selector_ignores_unknown_languages(http):
    r = http.get("/language", params={"lang": "tlh", "next": "/login"})
    assert r.status_code == 303 and r.headers["location"] == ISSUER + "/login"
    assert "set-cookie" not in r.headers
    r = http.get("/language", params={"lang": "pt", "next": "/login"})
    assert r.headers["set-cookie"].startswith(f"{LANG_COOKIE}=pt-BR;")


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example", "//evil.example/login", "/\\evil.example", "\\\\evil.example",
    "evil.example", "javascript:alert(1)", "http:/evil.example", "", None,
])
def test_selector_redirects_only_to_local_paths(http, target):
    params = {"lang": "de"}
    if target is not None:
        params["next"] = target
    r = http.get("/language", params=params)
    assert r.status_code == 303
    assert r.headers["location"] == ISSUER + "/"


# -- the signed-in user's locale --------------------------------------------------------------------
def test_signed_in_users_locale_is_used_unless_the_selector_says_otherwise(http, provider):
    provider.users.create("alice@example.com", PASSWORD, email_verified=True, locale="it")
    sign_in(http, **{"Accept-Language": "ja"})
    for path in ("/account", "/apps"):
        page = http.get(path, headers={"Accept-Language": "ja"})
        assert page.status_code == 200 and lang_of(page) == "it", path
    assert t("it", "Your account") in text_of(http.get("/account"))
    # The selector beats the user's locale...
    http.get("/language", params={"lang": "es", "next": "/account"})
    page = http.get("/account")
    assert lang_of(page) == "es" and t("es", "Your account") in text_of(page)


def test_signed_out_pages_do_not_use_a_previous_users_locale(http, provider):
    provider.users.create("alice@example.com", PASSWORD, email_verified=True, locale="it")
    sign_in(http)
    assert lang_of(http.get("/login")) == "it"
    http.cookies.delete("idbroker_session")
    assert lang_of(http.get("/login")) == "en"


# -- mail ------------------------------------------------------------------------------------------------
def _forgot(http, email, **headers):  # type: ignore[no-untyped-def]
    page = http.get("/forgot-password", headers=headers)
    return http.post("/forgot-password", data={**page_fields(page), "email": email}, headers=headers)


def test_reset_mail_is_in_the_users_language(http, provider, smtp):
    provider.users.create("alice@example.com", PASSWORD, email_verified=True, locale="de")
    r = _forgot(http, "alice@example.com", **{"Accept-Language": "fr"})
    assert r.status_code == 200 and lang_of(r) == "fr"      # the page: the browser's language
    message = smtp.wait_for("alice@example.com")[-1]
    assert str(message["Subject"]) == "Passwort zurücksetzen"
    text = last_mail(smtp, "alice@example.com")
    assert "Öffnen Sie diesen Link, um ein neues Passwort festzulegen:" in text
    assert f"Der Link ist einmal und {provider.settings.reset_ttl // 60} Minuten lang gültig." in text
    assert "To choose a new password" not in text


def test_reset_mail_falls_back_to_the_page_language(http, provider, smtp):
    provider.users.create("carol@example.com", PASSWORD, email_verified=True)
    _forgot(http, "carol@example.com", **{"Accept-Language": "zh-CN,zh;q=0.9"})
    message = smtp.wait_for("carol@example.com")[-1]
    assert str(message["Subject"]) == t("zh-Hans", "Reset your password") == "重置密码"
    assert t("zh-Hans", "To choose a new password, open this link:") in last_mail(smtp, "carol@example.com")


def test_signup_mails_are_in_the_chosen_language(http, provider, smtp):
    http.get("/language", params={"lang": "ja", "next": "/signup"})
    assert lang_of(http.get("/signup")) == "ja"
    signup(http, email="bob@example.com")
    assert provider.users.by_email("bob@example.com").locale == "ja"     # the page's language
    message = smtp.wait_for("bob@example.com")[-1]
    assert str(message["Subject"]) == t("ja", "Confirm your email address")
    assert t("ja", "Or enter this code on the page that asked for it:") in last_mail(smtp, "bob@example.com")
    # An address that already has an account: told so in its owner's language.
    provider.users.create("dora@example.com", PASSWORD, email_verified=True, locale="nl")
    http.cookies.clear()
    signup(http, email="dora@example.com")
    message = smtp.wait_for("dora@example.com")[-1]
    assert str(message["Subject"]) == "Je hebt al een account"
    assert "Iemand, waarschijnlijk jij," in last_mail(smtp, "dora@example.com")


def test_change_of_address_mail_is_in_the_users_language_and_plain_text(http, provider, smtp):
    provider.users.create("alice@example.com", PASSWORD, email_verified=True, locale="fr")
    sign_in(http, **{"Accept-Language": "de"})
    http.get("/language", params={"lang": "ja", "next": "/account"})   # the pages in Japanese...
    page = http.get("/account")
    assert lang_of(page) == "ja"
    r = http.post("/account/email", data={"csrf_token": CSRF_RE.search(page.text).group(1),
                                          "new_email": "alice@new.example", "current_password": PASSWORD})
    assert r.status_code == 303, r.text
    message = smtp.wait_for("alice@new.example")[-1]                   # ...the mail in hers
    assert str(message["Subject"]) == "Confirmez votre nouvelle adresse e-mail"
    text = last_mail(smtp, "alice@new.example")
    assert "Quelqu'un a demandé à utiliser cette adresse, alice@new.example," in text
    assert "&#39;" not in text and "&amp;" not in text                  # plain text is not HTML-escaped
    html_part = message.get_body(preferencelist=("html",)).get_content()
    assert '<html lang="fr" dir="ltr">' in html_part and "Quelqu&#39;un" in html_part


# -- discovery -------------------------------------------------------------------------------------------
def test_discovery_lists_the_supported_languages(http):
    meta = http.get("/.well-known/openid-configuration").json()
    assert meta["ui_locales_supported"] == ["en", "fr", "de", "nl", "ja", "es", "pt-BR", "it", "zh-Hans", "ar", "he"]
