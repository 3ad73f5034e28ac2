"""Reflow (WCAG 2.2 §1.4.10): at 320 CSS pixels wide (a 1280-pixel window at 400 % zoom, or a small
phone) and at 640 (1280 at 200 %), no hosted page the tour reaches scrolls sideways — in English
and in French, whose words are longer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_helpers import WAIT_SECONDS, Broker, Client, MailSink
from page_tour import anonymous_pages, signed_in_pages

pytestmark = pytest.mark.browser

WIDTHS = "() => ({scroll: document.scrollingElement.scrollWidth, inner: window.innerWidth})"


class Fits:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.too_wide: dict[str, Any] = {}

    def __call__(self, page: Any, name: str) -> None:
        widths = page.evaluate(WIDTHS)
        self.seen.append(name)
        if widths["scroll"] > widths["inner"]:
            self.too_wide[name] = widths


@pytest.fixture
def narrow(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    width, locale = request.param
    ctx = browser.new_context(locale=locale, viewport={"width": width, "height": 640})
    ctx.set_default_timeout(WAIT_SECONDS * 1000)
    try:
        yield ctx
    finally:
        ctx.close()


CASES = [(320, "en-US"), (320, "fr-FR"), (640, "en-US")]


@pytest.mark.parametrize("narrow", CASES, ids=[f"{w}px-{loc}" for w, loc in CASES], indirect=True)
def test_no_page_scrolls_sideways(narrow: Any, broker: Broker, client: Client, mail: MailSink) -> None:
    fits = Fits()
    anonymous_pages(narrow.new_page(), broker, client, mail, fits)
    signed_in_pages(narrow, broker, client, fits)
    assert len(fits.seen) >= 22, fits.seen
    assert not fits.too_wide, fits.too_wide


def test_the_language_menu_opens_and_works_without_javascript(browser: Any, broker: Broker, client: Client) -> None:
    """The menu is a <details>: keyboard opens it (Enter on the summary), the select and the button
    follow in tab order with a visible focus ring, and the GET form changes the language."""
    from browser_helpers import authorization
    from playwright.sync_api import expect

    ctx = browser.new_context(locale="en-US", java_script_enabled=False, viewport={"width": 320, "height": 640})
    try:
        page = ctx.new_page()
        page.goto(authorization(broker, client).url)
        summary = page.locator(".language-menu > summary")
        expect(page.locator("#language-select")).to_be_hidden()
        summary.focus()
        page.keyboard.press("Enter")
        select = page.locator("#language-select")
        expect(select).to_be_visible()
        page.keyboard.press("Tab")
        expect(select).to_be_focused()
        ring = select.evaluate("el => getComputedStyle(el).outlineStyle")
        assert ring != "none", ring
        select.select_option("fr")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        expect(page.locator("html")).to_have_attribute("lang", "fr")
        expect(page.locator("#password")).to_be_visible()
        assert page.evaluate(WIDTHS)["scroll"] <= 320
    finally:
        ctx.close()


@pytest.mark.parametrize("motion, expected", [("no-preference", "smooth"), ("reduce", "auto")])
def test_reduced_motion_turns_movement_off(motion: str, expected: str, browser: Any, broker: Broker) -> None:
    """prefers-reduced-motion: reduce turns smooth scrolling (the account page's section links) off."""
    ctx = browser.new_context(locale="en-US", reduced_motion=motion)
    try:
        page = ctx.new_page()
        page.goto(broker.issuer + "/signup")
        page.locator("h1").wait_for()
        assert page.evaluate("getComputedStyle(document.documentElement).scrollBehavior") == expected
    finally:
        ctx.close()
