"""The look: CSS custom properties from configuration and per-client branding, and static files
looked up in the operator's theme before the built-in ones.

The brand colour is used as a background (buttons, tags) and as text (links, secondary buttons,
focus rings). An operator or a client picks any colour, so the text uses are derived here: the
brand is darkened (light scheme) or lightened (dark scheme) just enough to reach the WCAG 2.x
contrast of 4.5:1 against the card, and the text on the brand is black or white, whichever
contrasts more (at least 4.58:1 for any colour). WCAG 2.2 §1.4.3 (text), §1.4.11 (focus ring).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.staticfiles import StaticFiles

from ..settings import Settings

TEXT_CONTRAST = 4.5
# The card and page colours of the default theme (idbroker.css); tests/unit/test_theme_contrast.py
# checks that they match the stylesheet.
LIGHT = {"card": "#ffffff", "text": "#1b1f24", "tint": 0.09}
DARK = {"bg": "#111318", "card": "#1c1f26", "text": "#e6e8eb", "tint": 0.18}
_ON_BRAND = ("#ffffff", "#000000")


class LayeredStaticFiles(StaticFiles):
    """Static files from the theme first, then the built-in folder."""

    def __init__(self, directories: list[Path]):
        self._layers = [str(d) for d in directories]
        super().__init__(directory=self._layers[-1])

    def get_directories(self, directory: Any = None, packages: Any = None) -> list[Any]:  # type: ignore[override]
        return list(self._layers)


def rgb(color: str) -> tuple[int, int, int]:
    """#rgb or #rrggbb (the only forms settings and client metadata accept)."""
    h = color.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def hex_of(value: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in value)


def luminance(color: str) -> float:
    """WCAG 2.x relative luminance."""
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(c) for c in rgb(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def mix(a: str, b: str, weight: float) -> str:
    """``weight`` of a, the rest of b (CSS color-mix in srgb)."""
    return hex_of(tuple(x * weight + y * (1 - weight) for x, y in zip(rgb(a), rgb(b), strict=True)))  # type: ignore[arg-type]


def readable_on(color: str, *backgrounds: str, minimum: float = TEXT_CONTRAST) -> str:
    """``color`` itself when it reads on every background, else the least mix towards black or white
    (whichever the first background calls for) that does."""
    def reads(c: str) -> bool:
        return all(contrast(c, bg) >= minimum for bg in backgrounds)
    if reads(color):
        return hex_of(rgb(color))
    towards = "#000000" if luminance(backgrounds[0]) > 0.18 else "#ffffff"
    for step in range(1, 101):
        candidate = mix(towards, color, step / 100)
        if reads(candidate):
            return candidate
    return towards


def on_brand(brand: str) -> str:
    return max(_ON_BRAND, key=lambda c: contrast(c, brand))


def text_on(background: str) -> str:
    """The theme's own text colours when one reads on ``background``, else black or white."""
    for text in (LIGHT["text"], DARK["text"]):
        if contrast(text, background) >= TEXT_CONTRAST:
            return text
    return max(("#000000", "#ffffff"), key=lambda c: contrast(c, background))


def link_color(brand: str, scheme: dict[str, Any]) -> str:
    """The brand as text: readable on the card and on the brand-tinted panels (``--ib-tint``)."""
    return readable_on(brand, scheme["card"], mix(brand, scheme["card"], scheme["tint"]))


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
    brand, page = values["--ib-primary"], values["--ib-bg"]
    values["--ib-primary-text"] = on_brand(brand)
    values["--ib-link"] = link_color(brand, LIGHT)
    values["--ib-on-bg"] = text_on(page)
    body = "".join(f"  {k}: {v};\n" for k, v in values.items())
    css = ":root {\n" + body + "}\n"
    # Dark scheme: the dark page (a light branding background would glare) and a lighter brand text.
    css += ("@media (prefers-color-scheme: dark) {\n  :root {\n"
            f"    --ib-bg: {DARK['bg']};\n    --ib-on-bg: {DARK['text']};\n"
            f"    --ib-link: {link_color(brand, DARK)};\n  }}\n}}\n")
    for path in extra_css:  # the themes' own stylesheets (operator-supplied files)
        if path is not None and path.is_file():
            css += path.read_text()
    return css
