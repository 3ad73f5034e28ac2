"""Translations: every message id in the sources (templates and N_() marks in Python, extracted
the way scripts/i18n does) is translated in every catalog, placeholders survive translation,
every catalog compiles, and the language is chosen in the documented order."""

from __future__ import annotations

import io
import re
from functools import cache
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from starlette.requests import Request

from idbroker.text import SUPPORTED, match
from idbroker.web.i18n import LOCALES_DIR, Catalogs, parse_accept_language
from idbroker.web.templating import Pages

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "src" / "idbroker"
LOCALES = list(SUPPORTED.values())
PLACEHOLDER = re.compile(r"%\(\w+\)[#0 +-]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")


@cache
def extracted() -> dict[str, list[str]]:
    """Message id -> where it is used, from the current sources, with babel.cfg's mapping."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f, "babel.cfg")
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(str(SOURCES), method_map, options_map):
        msgid = message if isinstance(message, str) else message[0]
        found.setdefault(msgid, []).append(f"{filename}:{lineno}")
    return found


@cache
def catalog(ident: str) -> Catalog:
    with open(LOCALES_DIR / ident / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f, locale=ident)


def placeholders(text: str) -> list[str]:
    found = PLACEHOLDER.findall(text)
    stray = "%" in PLACEHOLDER.sub("", text).replace("%%", "")
    return sorted(found) + (["stray %"] if found and stray else [])


def strings(message) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    return tuple(message.string) if isinstance(message.string, (list, tuple)) else (message.string,)


# -- extraction ---------------------------------------------------------------------------------
def test_extraction_finds_template_and_python_message_ids():
    ids = extracted()
    assert len(ids) > 150
    assert "Sign in" in ids                                   # a template: {{ _("Sign in") }}
    assert "Incorrect email or password." in ids              # Python: N_() in login/views.py
    assert "Use at least %(min)d characters." in ids          # N_() in accounts/policy.py
    assert "The parameter %(name)s is too long." in ids       # N_() in oauth2/authorize_checks.py
    assert "Reset your password" in ids                       # a mail subject
    assert "To choose a new password, open this link:" in ids  # a mail body (.txt)
    assert not [i for i in ids if "<" in i and ">" in i], "no HTML inside message ids"


@pytest.mark.parametrize("ident", LOCALES)
def test_every_message_id_is_translated(ident):
    """Adding a string to a template or an N_() without translating it everywhere fails here
    (scripts/i18n update, then translate what scripts/i18n check lists)."""
    cat = catalog(ident)
    problems = []
    for msgid, where in sorted(extracted().items()):
        message = cat.get(msgid)
        if message is None:
            problems.append(f"missing: {msgid!r} ({where[0]})")
        elif message.fuzzy:
            problems.append(f"fuzzy: {msgid!r}")
        elif not all(s.strip() for s in strings(message)):
            problems.append(f"untranslated: {msgid!r}")
    assert not problems, f"{ident}: {len(problems)} problem(s)\n" + "\n".join(problems)


def test_template_is_up_to_date():
    with open(LOCALES_DIR / "messages.pot", "rb") as f:
        stored = {m.id for m in read_po(f) if m.id}
    assert stored == set(extracted()), "run scripts/i18n update"


def test_english_is_its_own_message_ids():
    for message in catalog("en"):
        if message.id:
            assert message.string == message.id


# -- placeholders -------------------------------------------------------------------------------
@pytest.mark.parametrize("ident", LOCALES)
def test_placeholders_are_kept(ident):
    wrong = []
    for message in catalog(ident):
        if not message.id or not all(strings(message)):
            continue
        msgid = message.id if isinstance(message.id, str) else message.id[-1]
        want = placeholders(msgid)
        for text in strings(message):
            if placeholders(text) != want:
                wrong.append(f"{msgid!r} -> {text!r}")
            elif want:  # formats like the templates do, with the message id's own values
                values = {name: 7 if spec.endswith("d") else "x"
                          for spec in want for name in re.findall(r"%\((\w+)\)", spec)}
                text % values
    assert not wrong, f"{ident}:\n" + "\n".join(wrong)


# -- compiling ----------------------------------------------------------------------------------
@pytest.mark.parametrize("ident", LOCALES)
def test_catalog_compiles(ident):
    buf = io.BytesIO()
    write_mo(buf, catalog(ident))
    buf.seek(0)
    translations = Translations(buf)
    expected = catalog(ident).get("Sign in").string
    assert translations.gettext("Sign in") == expected
    if ident != "en":
        assert expected != "Sign in"


def test_catalogs_load_every_language():
    catalogs = Catalogs()
    for tag in SUPPORTED:
        assert isinstance(catalogs.get(tag), Translations), tag
    assert catalogs.get("de").gettext("Password") == "Passwort"
    assert catalogs.get("ja").gettext("Sign in") == "ログイン"
    assert catalogs.get("xx").gettext("Sign in") == "Sign in"  # unknown: the default
    assert [lang.tag for lang in catalogs.languages] == list(SUPPORTED)
    names = {lang.tag: lang.name for lang in catalogs.languages}
    assert names["de"] == "Deutsch" and names["zh-Hans"] == "简体中文" and names["ja"] == "日本語"


def test_mail_templates_render_in_each_language():
    pages = Pages()
    for tag in SUPPORTED:
        text = pages.render_text("mail/reset_password.txt", tag, link="https://x.example/r", minutes=30)
        assert "https://x.example/r" in text and "30" in text
        assert pages.catalogs.get(tag).gettext("To choose a new password, open this link:") in text


def test_form_post_page_is_in_the_page_language():
    page = Pages().render(None, "oauth/form_post.html", ui_locales="fr", redirect_uri="https://app.example/cb",
                          params={"code": "c"})
    body = page.body.decode()
    assert '<html lang="fr" dir="ltr">' in body and "<title>Continuer</title>" in body
    assert '<button type="submit">Continuer</button>' in body


# -- choosing the language ----------------------------------------------------------------------
def request(cookie: str | None = None, accept: str | None = None) -> Request:
    headers = []
    if cookie:
        headers.append((b"cookie", f"idbroker_lang={cookie}".encode()))
    if accept:
        headers.append((b"accept-language", accept.encode()))
    return Request({"type": "http", "method": "GET", "path": "/login", "query_string": b"", "headers": headers})


def test_language_order_ui_locales_then_selector_then_user_then_accept_language():
    pages = Pages()
    assert pages.language(request("fr", "ja"), ui_locales="de", user_locale="nl") == "de"
    assert pages.language(request("fr", "ja"), user_locale="nl") == "fr"
    assert pages.language(request(None, "ja"), user_locale="nl") == "nl"
    assert pages.language(request(None, "ja")) == "ja"
    assert pages.language(request()) == "en"
    assert pages.language(None, ui_locales="it", user_locale="es") == "it"


def test_unsupported_choices_fall_through():
    pages = Pages()
    # ui_locales is a space-separated list: the first supported tag wins.
    assert pages.language(request("fr"), ui_locales="tlh sv es") == "es"
    assert pages.language(request("fr"), ui_locales="tlh sv") == "fr"
    assert pages.language(request("xx", "it"), user_locale="yy") == "it"
    assert pages.language(request(None, "sv, tlh;q=0.9")) == "en"
    assert Pages(default_locale="de").language(request()) == "de"


@pytest.mark.parametrize("tag, expected", [
    ("pt", "pt-BR"), ("pt-BR", "pt-BR"), ("pt-PT", "pt-BR"), ("pt_br", "pt-BR"),
    ("zh", "zh-Hans"), ("zh-CN", "zh-Hans"), ("zh-SG", "zh-Hans"), ("zh-Hans", "zh-Hans"), ("zh-hans-cn", "zh-Hans"),
    ("en-GB", "en"), ("fr-CA", "fr"), ("de-AT", "de"), ("nl-BE", "nl"), ("ja-JP", "ja"), ("es-419", "es"),
    ("it-CH", "it"), ("EN", "en"), ("sv", None), ("", None), (None, None),
])
def test_tags_map_to_supported_languages(tag, expected):
    assert match(tag) == expected


def test_accept_language_by_quality():
    assert parse_accept_language("fr;q=0.5, de, ja;q=0.8, nl;q=0") == ["de", "ja", "fr"]
    assert Pages().language(request(None, "sv, zh-CN;q=0.8, pt;q=0.9")) == "pt-BR"
    assert Pages().language(request(None, "sv, zh-CN;q=0.8")) == "zh-Hans"
    assert Pages().language(request(None, "de;q=0, fr;q=0.1")) == "fr"


def test_a_catalog_is_read_when_its_language_is_first_used():
    catalogs = Catalogs()
    assert catalogs._translations == {}  # none read at start-up
    french = catalogs.get("fr")
    assert french.gettext("Sign in") != "Sign in" and set(catalogs._translations) == {"fr"}
    assert catalogs.get("fr") is french  # read once
    assert catalogs.get("xx") is catalogs.get("en")  # an unknown tag is the default language
