"""Page rendering: Jinja2 with autoescaping, the user's language, the theme, and the security
headers every page carries. Operator themes override any template or static file."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from .i18n import Catalogs

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
LANG_COOKIE_SUFFIX = "_lang"

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' https: data:; style-src 'self'; "
                               "script-src 'self'; frame-ancestors 'none'; form-action *; base-uri 'none'",
}


class Pages:
    def __init__(self, *, theme_dir: Path | None = None, default_locale: str = "en", cookie_name: str = "idbroker"):
        search = []
        if theme_dir is not None and (theme_dir / "templates").is_dir():
            search.append(str(theme_dir / "templates"))
        search.append(str(TEMPLATES))
        self.static_dirs = [d for d in ((theme_dir / "static") if theme_dir else None, STATIC) if d and d.is_dir()]
        self.env = Environment(loader=FileSystemLoader(search), autoescape=select_autoescape(["html", "txt"]),
                               trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.i18n"])
        self.catalogs = Catalogs(default_locale)
        self.lang_cookie = cookie_name + LANG_COOKIE_SUFFIX

    def language(self, request: Request | None, *, ui_locales: str | None = None,
                 user_locale: str | None = None) -> str:
        if request is None:
            return self.catalogs.negotiate(ui_locales, user_locale)
        return self.catalogs.negotiate(ui_locales, request.cookies.get(self.lang_cookie), user_locale,
                                       accept_language=request.headers.get("accept-language"))

    def context(self, lang: str) -> dict[str, Any]:
        t = self.catalogs.get(lang)
        return {"_": t.gettext, "gettext": t.gettext, "ngettext": t.ngettext, "lang": lang,
                "languages": self.catalogs.languages}

    def render_text(self, name: str, lang: str, **context: Any) -> str:
        """For mail bodies and other non-page text in the user's language."""
        return self.env.get_template(name).render(**self.context(lang), **context)

    def render(self, request: Request | None, name: str, status: int = 200, headers: dict[str, str] | None = None,
               *, ui_locales: str | None = None, user_locale: str | None = None, **context: Any) -> HTMLResponse:
        lang = self.language(request, ui_locales=ui_locales, user_locale=user_locale)
        here = ""
        if request is not None:
            here = request.url.path + (f"?{request.url.query}" if request.url.query and request.method == "GET" else "")
        client = context.get("client")
        theme_css = "/theme.css" + (f"?client={quote(client.client_id)}" if client is not None else "")
        html = self.env.get_template(name).render(**self.context(lang), here=here, theme_css=theme_css, **context)
        return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})
