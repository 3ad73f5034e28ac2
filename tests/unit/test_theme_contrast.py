"""Colour contrast of the default theme, computed from the tokens in idbroker.css (light :root and
the prefers-color-scheme: dark block) and from /theme.css for several brand colours: every text
colour reaches 4.5:1 on the surfaces it is used on (WCAG 2.2 §1.4.3), in both schemes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from idbroker.settings import Settings
from idbroker.web.theme import DARK, LIGHT, contrast, link_color, mix, on_brand, readable_on, theme_css

CSS = (Path(__file__).resolve().parents[2] / "src" / "idbroker" / "web" / "static" / "idbroker.css").read_text()
TOKEN = re.compile(r"(--ib-[a-z0-9-]+):\s*(#[0-9a-fA-F]{3,6})\b")


def tokens(block: str) -> dict[str, str]:
    return dict(TOKEN.findall(block))


def light_tokens() -> dict[str, str]:
    return tokens(CSS[CSS.index(":root {"):CSS.index("}")])


def dark_tokens() -> dict[str, str]:
    start = CSS.index("@media (prefers-color-scheme: dark)")
    return {**light_tokens(), **tokens(CSS[start:CSS.index("}", start)])}


# (text token, background token) pairs as the stylesheet uses them
PAIRS = [("--ib-text", "--ib-card"), ("--ib-muted", "--ib-card"), ("--ib-error", "--ib-card"),
         ("--ib-success", "--ib-card"), ("--ib-on-bg", "--ib-bg"), ("--ib-text", "--ib-bg"),
         ("--ib-primary-text", "--ib-primary"), ("--ib-card", "--ib-error")]  # last: danger buttons
BRANDS = ["#2557d6", "#aa3300", "#ffcc00", "#00ff00", "#777777", "#123456", "#ffffff", "#000000", "#e91e63"]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_default_tokens_are_readable(scheme: str) -> None:
    t = light_tokens() if scheme == "light" else dark_tokens()
    low = {f"{a} on {b}": round(contrast(t[a], t[b]), 2) for a, b in PAIRS if contrast(t[a], t[b]) < 4.5}
    assert not low, f"{scheme}: {low}"


def test_theme_module_knows_the_stylesheet_colours() -> None:
    light, dark = light_tokens(), dark_tokens()
    assert contrast(LIGHT["card"], light["--ib-card"]) == 1 and light["--ib-text"] == LIGHT["text"]
    assert (dark["--ib-card"], dark["--ib-bg"], dark["--ib-text"]) == (DARK["card"], DARK["bg"], DARK["text"])
    assert f"{int(LIGHT['tint'] * 100)}%" in CSS and f"{int(DARK['tint'] * 100)}%" in CSS


@pytest.mark.parametrize("brand", BRANDS)
def test_any_brand_colour_gives_readable_links_and_buttons(brand: str) -> None:
    assert contrast(on_brand(brand), brand) >= 4.5                        # button text
    for scheme in (LIGHT, DARK):
        link = link_color(brand, scheme)
        assert contrast(link, scheme["card"]) >= 4.5                      # links, secondary buttons
        assert contrast(link, mix(brand, scheme["card"], scheme["tint"])) >= 4.5   # links on tinted panels
        assert contrast(scheme["text"], mix(brand, scheme["card"], scheme["tint"])) >= 4.5  # notices


@pytest.mark.parametrize("brand", BRANDS)
def test_theme_css_sets_the_brand_tokens_for_both_schemes(brand: str) -> None:
    css = theme_css(Settings(theme_primary_color=brand))
    light_part, dark_part = css.split("@media (prefers-color-scheme: dark)")
    light, dark = tokens(light_part), tokens(dark_part)
    assert light["--ib-primary"] == brand
    assert contrast(light["--ib-primary-text"], brand) >= 4.5
    assert contrast(light["--ib-link"], LIGHT["card"]) >= 4.5
    assert contrast(dark["--ib-link"], DARK["card"]) >= 4.5
    assert contrast(light["--ib-on-bg"], light["--ib-bg"]) >= 4.5
    assert contrast(dark["--ib-on-bg"], dark["--ib-bg"]) >= 4.5


def test_a_readable_brand_is_kept_as_is() -> None:
    assert readable_on("#2557d6", "#ffffff") == "#2557d6"
    assert contrast(readable_on("#ffcc00", "#ffffff"), "#ffffff") >= 4.5


@pytest.mark.parametrize("background", ["#f4f5f7", "#202020", "#808080", "#ffcc00"])
def test_text_on_any_page_background(background: str) -> None:
    light = tokens(theme_css(Settings(theme_background=background)).split("@media")[0])
    assert contrast(light["--ib-on-bg"], background) >= 4.5
