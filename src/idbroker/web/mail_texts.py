"""The words of the mails domain services send (audit.MailTexts), from the hosted pages' templates
and catalogs, so that the operator's theme overrides mails as it does pages."""

from __future__ import annotations

from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .templating import Pages

if TYPE_CHECKING:
    from ..settings import LookSettings


class MailTexts:
    """Loads the templates at the first mail: most workers never send one."""

    def __init__(self, look: LookSettings):
        self.look = look

    @cached_property
    def pages(self) -> Pages:
        return _pages(self.look.themes_dir, self.look.theme, self.look.default_locale)

    def language(self, user_locale: str | None) -> str:
        return self.pages.catalogs.negotiate(user_locale)

    def gettext(self, lang: str, message: str) -> str:
        return self.pages.catalogs.get(lang).gettext(message)

    def render(self, template: str, lang: str, **context: Any) -> str:
        return self.pages.render_text(template, lang, **context)


@lru_cache(maxsize=8)
def _pages(themes_dir: str, theme: str, default_locale: str) -> Pages:
    """Shared by the brokers of one process that have the same look (the tests build many)."""
    return Pages(themes_dir=Path(themes_dir) if themes_dir else None, theme=theme, default_locale=default_locale)
