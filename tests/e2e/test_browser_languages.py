"""Every supported language renders the login page (asked with ui_locales, OIDC Core §3.1.2.1):
the document says which language it is in, the selector shows it, and the page's texts come from
the language's catalog instead of falling back to the English message ids."""

from __future__ import annotations

import re
from typing import Any

import pytest
from browser_helpers import Broker, Client, authorization
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

LANGUAGES = ["en", "fr", "de", "nl", "ja", "es", "pt-BR", "it", "zh-Hans", "ar", "he"]
ENGLISH = {"button": "Sign in", "email": "Email", "password": "Password", "forgot": "Forgot your password?"}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_login_page_in(lang: str, page: Any, broker: Broker, client: Client) -> None:
    page.goto(authorization(broker, client, ui_locales=lang).url)
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator("#language-select")).to_have_value(lang)  # the selector, whatever its label says

    form = page.locator("form:has(#password)")
    texts = {
        "button": form.locator("button[type=submit]").inner_text().strip(),
        "email": page.locator("label[for=username]").inner_text().strip(),
        "password": page.locator("label[for=password]").inner_text().strip(),
        "forgot": page.locator("a[href^='/forgot-password']").inner_text().strip(),
    }
    assert all(texts.values()), texts
    if lang == "en":
        assert texts == ENGLISH
    else:
        untranslated = [key for key, text in texts.items() if text == ENGLISH[key]]
        # The submit button must be translated; the other texts are reported alongside it.
        assert texts["button"] != ENGLISH["button"], f"{lang}: untranslated {untranslated} in {texts}"
    # The translated labels still name the fields (accessible names come from the labels).
    expect(page.get_by_label(texts["email"], exact=True)).to_have_attribute("autocomplete", re.compile(r"^username\b"))
    expect(page.get_by_role("button", name=texts["button"], exact=True)).to_be_visible()
