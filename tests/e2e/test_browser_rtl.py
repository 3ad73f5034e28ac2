"""Right-to-left pages in Chromium: in Arabic and Hebrew (chosen by the browser's Accept-Language)
every hosted page the tour reaches says dir="rtl", nothing scrolls sideways at 320 px, labels and
fields start at the right edge of the card, addresses and codes are still typed left to right, the
language menu sits in the top-left corner, and axe-core finds no WCAG A/AA violation in Arabic in
the light and the dark colour scheme."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_helpers import WAIT_SECONDS, Broker, Client, MailSink, authorization
from page_tour import anonymous_pages, signed_in_pages
from playwright.sync_api import expect
from test_browser_accessibility import AXE, Axe

pytestmark = pytest.mark.browser

STATE = """() => ({dir: document.documentElement.getAttribute("dir"), lang: document.documentElement.lang,
                   computed: getComputedStyle(document.body).direction,
                   scroll: document.scrollingElement.scrollWidth, inner: window.innerWidth})"""


@pytest.fixture
def rtl_context(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    locale, width, scheme = request.param
    ctx = browser.new_context(locale=locale, viewport={"width": width, "height": 800}, color_scheme=scheme,
                              bypass_csp=True)
    ctx.set_default_timeout(WAIT_SECONDS * 1000)
    try:
        yield ctx
    finally:
        ctx.close()


class RightToLeft:
    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.seen: list[str] = []
        self.wrong: dict[str, Any] = {}

    def __call__(self, page: Any, name: str) -> None:
        state = page.evaluate(STATE)
        self.seen.append(name)
        if (state["dir"], state["lang"], state["computed"]) != ("rtl", self.lang, "rtl") \
                or state["scroll"] > state["inner"]:
            self.wrong[name] = state


NARROW = [("ar", 320, "light"), ("he", 320, "light")]


@pytest.mark.parametrize("rtl_context", NARROW, ids=["ar-320px", "he-320px"], indirect=True)
def test_every_page_is_right_to_left_and_fits_320px(rtl_context: Any, broker: Broker, client: Client,
                                                    mail: MailSink, request: pytest.FixtureRequest) -> None:
    lang = request.node.callspec.params["rtl_context"][0]
    check = RightToLeft(lang)
    anonymous_pages(rtl_context.new_page(), broker, client, mail, check)
    signed_in_pages(rtl_context, broker, client, check)
    assert len(check.seen) >= 22, check.seen
    assert not check.wrong, check.wrong


BOX = "e => { const r = e.getBoundingClientRect(); return {left: r.left, right: r.right}; }"
# Where the text itself is (a label's box is as wide as the form's column; its words are not).
TEXT_BOX = """e => { const range = document.createRange(); range.selectNodeContents(e);
                      const r = range.getBoundingClientRect(); return {left: r.left, right: r.right}; }"""


@pytest.mark.parametrize("rtl_context", [("ar", 800, "light"), ("he", 800, "light")], ids=["ar", "he"],
                         indirect=True)
def test_sign_in_form_starts_at_the_right(rtl_context: Any, broker: Broker, client: Client) -> None:
    page = rtl_context.new_page()
    page.goto(authorization(broker, client).url)
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    card = page.locator("main.card").evaluate(BOX)
    label = page.locator("label[for=username]")
    field = page.locator("#username")
    label_box, field_box = label.evaluate(TEXT_BOX), field.evaluate(BOX)
    middle = (card["left"] + card["right"]) / 2
    # The label's words start at the right edge of the field (the card's inline start).
    assert label_box["left"] > middle, (label_box, card)
    assert abs(label_box["right"] - field_box["right"]) <= 1, (label_box, field_box)
    assert label.evaluate("e => getComputedStyle(e).direction") == "rtl"
    # The address is typed left to right, aligned to the right like the rest of the form.
    assert field.evaluate("e => getComputedStyle(e).direction") == "ltr"
    assert field.evaluate("e => getComputedStyle(e).textAlign") in ("end", "right")
    # The password field is not an address: it follows the page.
    assert page.locator("#password").evaluate("e => getComputedStyle(e).direction") == "rtl"
    # The language menu sits in the top-left corner (the inline end of the top bar).
    menu = page.locator(".language-menu > summary").evaluate(BOX)
    assert menu["right"] < page.viewport_size["width"] / 2, menu
    # Its options name each language in its own direction.
    expect(page.locator("#language-select option[value=ar]")).to_have_attribute("dir", "rtl")
    expect(page.locator("#language-select option[value=en]")).to_have_attribute("dir", "ltr")


def test_english_pages_stay_left_to_right(page: Any, broker: Broker, client: Client) -> None:
    page.goto(authorization(broker, client, ui_locales="en").url)
    expect(page.locator("html")).to_have_attribute("dir", "ltr")
    card = page.locator("main.card").evaluate(BOX)
    label = page.locator("label[for=username]").evaluate(TEXT_BOX)
    assert label["right"] < (card["left"] + card["right"]) / 2, (label, card)


AXE_CASES = [("ar", 800, "light"), ("ar", 800, "dark")]


@pytest.mark.parametrize("rtl_context", AXE_CASES, ids=["ar-light", "ar-dark"], indirect=True)
def test_arabic_pages_have_no_wcag_aa_violations(rtl_context: Any, broker: Broker, client: Client,
                                                 mail: MailSink) -> None:
    if not AXE.is_file():
        pytest.skip(f"axe-core is not installed ({AXE}; run npm install in tests/peers/node)")
    axe = Axe()
    anonymous_pages(rtl_context.new_page(), broker, client, mail, axe)
    signed_in_pages(rtl_context, broker, client, axe)
    assert len(axe.seen) >= 22, axe.seen
    assert not axe.violations, "\n".join(f"{page}: {v}" for page, v in axe.violations.items())
