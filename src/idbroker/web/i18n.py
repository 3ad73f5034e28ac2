"""Translations (Babel/gettext catalogs under web/locales) and the choice of language (the
message marker `N_` and the language list are in idbroker/text.py):
``ui_locales`` (OIDC Core §3.1.2.1), then the language picked with the selector, then the
signed-in user's locale, then Accept-Language, then the default."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from ..text import SUPPORTED, match

LOCALES_DIR = Path(__file__).with_name("locales")


def parse_accept_language(header: str | None) -> list[str]:
    """Tags by descending q (RFC 9110 §12.5.4)."""
    if not header:
        return []
    weighted = []
    for i, part in enumerate(header.split(",")[:20]):
        lang, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if lang and q > 0:
            weighted.append((-q, i, lang.strip()))
    return [lang for _, _, lang in sorted(weighted)]


@dataclass(frozen=True)
class Language:
    tag: str
    name: str        # the language's own name, for the selector
    dir: str = "ltr"  # "rtl" for Arabic, Hebrew: the HTML dir attribute


# Each supported language's own name (capitalised) and writing direction, as Babel's CLDR data gives
# them (`_own_name`, `direction`; tests/unit/test_import_weight.py checks they still do). Spelled
# out because reading them loads every language's whole CLDR data into every worker: ~14 MB, for
# eleven strings. A language missing here is read from Babel.
OWN_NAMES = {"en": ("English", "ltr"), "fr": ("Français", "ltr"), "de": ("Deutsch", "ltr"),
             "nl": ("Nederlands", "ltr"), "ja": ("日本語", "ltr"), "es": ("Español", "ltr"),
             "pt_BR": ("Português (Brasil)", "ltr"), "it": ("Italiano", "ltr"), "zh_Hans": ("简体中文", "ltr"),
             "ar": ("العربية", "rtl"), "he": ("עברית", "rtl")}


def direction(ident: str) -> str:
    """"rtl" or "ltr", from the locale's character order in Babel's CLDR data."""
    if ident in OWN_NAMES:
        return OWN_NAMES[ident][1]
    try:
        return "rtl" if Locale.parse(ident).character_order == "right-to-left" else "ltr"
    except (ValueError, LookupError):
        return "ltr"


class Catalogs:
    """The translations of every supported language, each read from its catalog the first time a
    page in that language is rendered (parsing a .po file and compiling it takes ~20 ms; all eleven
    at start-up were a quarter of a worker's cold start)."""

    def __init__(self, default: str = "en", directory: Path = LOCALES_DIR):
        self.default = match(default) or "en"
        self.directory = directory
        self._translations: dict[str, NullTranslations] = {}
        self._lock = threading.Lock()
        self.languages = [Language(tag, _own_name(ident), direction(ident)) for tag, ident in SUPPORTED.items()]
        self._dirs = {language.tag: language.dir for language in self.languages}

    def _load(self, tag: str) -> NullTranslations:
        with self._lock:
            loaded = self._translations.get(tag)
            if loaded is None:
                po = self.directory / SUPPORTED[tag] / "LC_MESSAGES" / "messages.po"
                loaded = NullTranslations()
                if po.is_file():
                    with po.open("rb") as f:
                        catalog = read_po(f, locale=SUPPORTED[tag])
                    buf = io.BytesIO()
                    write_mo(buf, catalog)
                    buf.seek(0)
                    loaded = Translations(buf)
                self._translations[tag] = loaded
            return loaded

    def negotiate(self, *candidates: str | None, accept_language: str | None = None) -> str:
        for candidate in candidates:
            for tag in (candidate or "").split():
                found = match(tag)
                if found:
                    return found
        for tag in parse_accept_language(accept_language):
            found = match(tag)
            if found:
                return found
        return self.default

    def direction(self, tag: str) -> str:
        """The writing direction of a supported tag ("rtl" or "ltr")."""
        return self._dirs.get(tag, "ltr")

    def get(self, tag: str) -> NullTranslations:
        if tag not in SUPPORTED:
            tag = self.default
        return self._translations.get(tag) or self._load(tag)


def _own_name(ident: str) -> str:
    if ident in OWN_NAMES:
        return OWN_NAMES[ident][0]
    name = Locale.parse(ident).get_display_name(ident) or ident
    return name[:1].upper() + name[1:]
