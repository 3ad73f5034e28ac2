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
    """Templates come from the client's theme (branding "theme"), then the operator's global theme,
    then the built-in ones; each level may override any template."""

    def __init__(self, *, themes_dir: Path | None = None, theme: str = "", default_locale: str = "en",
                 cookie_name: str = "idbroker"):
        self.themes_dir = themes_dir
        self.theme = theme
        global_dir = themes_dir / theme if themes_dir and theme else None
        self.static_dirs = [d for d in ((global_dir / "static") if global_dir else None, STATIC) if d and d.is_dir()]
        self.env = self._environment(global_dir)
        self._client_envs: dict[str, Environment] = {}
        self.catalogs = Catalogs(default_locale)
        self.lang_cookie = cookie_name + LANG_COOKIE_SUFFIX

    @staticmethod
    def _environment(*theme_dirs: Path | None) -> Environment:
        search = [str(d / "templates") for d in theme_dirs if d is not None and (d / "templates").is_dir()]
        search.append(str(TEMPLATES))
        return Environment(loader=FileSystemLoader(search), autoescape=select_autoescape(["html", "txt"]),
                           trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.i18n"])

    def client_theme_dir(self, client: Any) -> Path | None:
        """The folder of a client's own theme, when it names one that exists."""
        name = (getattr(client, "branding", None) or {}).get("theme") if client is not None else None
        if not name or self.themes_dir is None or not (self.themes_dir / name).is_dir():
            return None
        return self.themes_dir / name

    def env_for(self, client: Any) -> Environment:
        folder = self.client_theme_dir(client)
        if folder is None:
            return self.env
        env = self._client_envs.get(folder.name)
        if env is None:
            global_dir = self.themes_dir / self.theme if self.themes_dir and self.theme else None
            env = self._environment(folder, global_dir)
            env.globals.update(self.env.globals)
            self._client_envs[folder.name] = env
        return env

    def language(self, request: Request | None, *, ui_locales: str | None = None,
                 user_locale: str | None = None) -> str:
        if request is None:
            return self.catalogs.negotiate(ui_locales, user_locale)
        return self.catalogs.negotiate(ui_locales, request.cookies.get(self.lang_cookie), user_locale,
                                       accept_language=request.headers.get("accept-language"))

    def context(self, lang: str) -> dict[str, Any]:
        t = self.catalogs.get(lang)
        return {"_": t.gettext, "gettext": t.gettext, "ngettext": t.ngettext, "lang": lang,
                "dir": self.catalogs.direction(lang), "languages": self.catalogs.languages}

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
        html = self.env_for(client).get_template(name).render(**self.context(lang), here=here, theme_css=theme_css,
                                                              **context)
        return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})
