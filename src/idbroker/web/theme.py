"""The look: CSS custom properties from configuration and per-client branding, and static files
looked up in the operator's theme before the built-in ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.staticfiles import StaticFiles

from ..settings import Settings


class LayeredStaticFiles(StaticFiles):
    """Static files from the theme first, then the built-in folder."""

    def __init__(self, directories: list[Path]):
        self._layers = [str(d) for d in directories]
        super().__init__(directory=self._layers[-1])

    def get_directories(self, directory: Any = None, packages: Any = None) -> list[Any]:  # type: ignore[override]
        return list(self._layers)


def theme_css(settings: Settings, branding: dict[str, Any] | None = None, *extra_css: Path | None) -> str:
    """Values are validated (settings and client metadata) before they get here."""
    values = {
        "--ib-primary": settings.theme_primary_color,
        "--ib-bg": settings.theme_background,
        "--ib-font": settings.theme_font,
        "--ib-radius": settings.theme_radius,
    }
    if branding:
        if branding.get("primary_color"):
            values["--ib-primary"] = branding["primary_color"]
        if branding.get("background"):
            values["--ib-bg"] = branding["background"]
    body = "".join(f"  {k}: {v};\n" for k, v in values.items())
    css = ":root {\n" + body + "}\n"
    for path in extra_css:  # the themes' own stylesheets (operator-supplied files)
        if path is not None and path.is_file():
            css += path.read_text()
    return css
