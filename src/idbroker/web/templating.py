"""Jinja2 rendering with autoescaping and the security headers every page carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

TEMPLATES = Path(__file__).with_name("templates")

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' https: data:; style-src 'self'; "
                               "script-src 'self'; frame-ancestors 'none'; form-action *; base-uri 'none'",
}


class Pages:
    def __init__(self, extra_dirs: list[str] | None = None):
        search = [*(extra_dirs or []), str(TEMPLATES)]
        self.env = Environment(loader=FileSystemLoader(search), autoescape=select_autoescape(["html"]),
                               trim_blocks=True, lstrip_blocks=True)

    def render(self, name: str, status: int = 200, headers: dict[str, str] | None = None,
               **context: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})
