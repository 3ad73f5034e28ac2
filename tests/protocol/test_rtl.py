"""Arabic and Hebrew through HTTP, on both stores: Accept-Language (and its old Hebrew code "iw"),
ui_locales and the selector choose them, and their pages say dir="rtl" while every other
language's pages say dir="ltr"; address and code fields stay left to right in any language."""

from __future__ import annotations

import re

import pytest
from lifecycle_helpers import authorize_params

from idbroker.text import SUPPORTED
from idbroker.web.i18n import Catalogs, direction

HTML = re.compile(r'<html lang="([^"]+)" dir="([^"]+)">')
RTL = {"ar", "he"}


def html_attrs(page) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    found = HTML.search(page.text)
    assert found, page.text[:300]
    return found.group(1), found.group(2)


def test_direction_comes_from_the_locale_data():
    assert {tag for tag, ident in SUPPORTED.items() if direction(ident) == "rtl"} == RTL
    assert len(SUPPORTED) == 11
    names = {language.tag: language.name for language in Catalogs().languages}
    assert names["ar"] == "العربية" and names["he"] == "עברית"


@pytest.mark.parametrize(("header", "lang"), [
    ("ar", "ar"), ("ar-EG,ar;q=0.9,en;q=0.8", "ar"), ("he-IL", "he"), ("iw", "he"), ("iw-IL, en;q=0.5", "he"),
    ("sv, he;q=0.7, ar;q=0.6", "he"), ("en-US, ar;q=0.9", "en"),
])
def test_accept_language_chooses_arabic_and_hebrew(http, header, lang):
    page = http.get("/login", headers={"Accept-Language": header})
    assert page.status_code == 200
    assert html_attrs(page) == (lang, "rtl" if lang in RTL else "ltr")


@pytest.mark.parametrize("lang", list(SUPPORTED))
def test_every_language_has_its_direction(http, flow, register, lang):
    client = register()
    params, _ = authorize_params(client, ui_locales=lang)
    page = flow.authorize(**params)
    assert page.status_code == 200
    assert html_attrs(page) == (lang, "rtl" if lang in RTL else "ltr")
    # The address field is typed left to right whatever the page's direction.
    field = re.search(r'<input id="username"[^>]*>', page.text)
    assert field and 'dir="ltr"' in field.group(0), page.text
    # The selector names every language in its own direction.
    assert '<option value="ar" lang="ar" dir="rtl"' in page.text
    assert '<option value="en" lang="en" dir="ltr"' in page.text


def test_the_selector_switches_to_hebrew_and_back(http):
    assert http.get("/language", params={"lang": "he", "next": "/login"}).status_code in (302, 303)
    page = http.get("/login")
    assert html_attrs(page) == ("he", "rtl") and "כניסה" in page.text
    http.get("/language", params={"lang": "fr", "next": "/login"})
    assert html_attrs(http.get("/login")) == ("fr", "ltr")


def test_forgot_password_in_arabic_keeps_the_address_ltr(http):
    page = http.get("/forgot-password", headers={"Accept-Language": "ar"})
    assert html_attrs(page) == ("ar", "rtl") and "هل نسيت كلمة المرور؟" in page.text
    field = re.search(r'<input id="email"[^>]*>', page.text)
    assert field and 'dir="ltr"' in field.group(0)
