"""Small screens and keyboards: at 360×740 (a small phone) the hosted pages fit the width, even
with a long address on them, and on the login page Tab walks username → password → keep me signed in → submit with
a visible focus ring."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_helpers import PASSWORD, Broker, Client, RelyingParty, add_user, authorization
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}

FOCUS_RING = """el => {
  const style = getComputedStyle(el);
  return {visible: el.matches(":focus-visible"), style: style.outlineStyle,
          width: parseFloat(style.outlineWidth) || 0};
}"""
OVERFLOW = "() => ({scroll: document.scrollingElement.scrollWidth, client: document.scrollingElement.clientWidth})"


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(locale="en-US", viewport=PHONE, device_scale_factor=2, has_touch=True,
                              is_mobile=True)
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


def assert_fits(page: Any) -> None:
    widths = page.evaluate(OVERFLOW)
    assert widths["scroll"] <= PHONE["width"], f"{page.url} scrolls sideways at {PHONE['width']}px: {widths}"


def assert_focus_ring(locator: Any) -> None:
    expect(locator).to_be_focused()
    ring = locator.evaluate(FOCUS_RING)
    assert ring["visible"] and ring["style"] != "none" and ring["width"] >= 2, ring


def test_login_on_a_small_screen_with_the_keyboard(phone: Any, broker: Broker, client: Client) -> None:
    page = phone
    page.goto(authorization(broker, client).url)
    username = page.get_by_label("Email", exact=True)
    password = page.get_by_label("Password", exact=True)
    remember = page.get_by_label("Keep me signed in", exact=True)
    submit = page.get_by_role("button", name="Sign in", exact=True)
    expect(submit).to_be_visible()
    assert_fits(page)

    # The address field has the focus on arrival (autofocus); Tab goes on through the form.
    assert_focus_ring(username)
    page.keyboard.press("Tab")
    assert_focus_ring(password)
    page.keyboard.press("Tab")
    assert_focus_ring(remember)
    page.keyboard.press("Tab")
    assert_focus_ring(submit)

    # Backwards, past the address field, is the skip link, shown while it has the focus.
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert_focus_ring(username)
    page.keyboard.press("Shift+Tab")
    skip = page.get_by_role("link", name="Skip to content")
    assert_focus_ring(skip)
    box = skip.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box


@pytest.mark.parametrize("path", ["/signup", "/forgot-password"])
def test_other_forms_fit_a_small_screen(path: str, phone: Any, broker: Broker) -> None:
    phone.goto(broker.issuer + path)
    expect(phone.get_by_role("heading", level=1)).to_be_visible()
    assert_fits(phone)


def test_signed_in_pages_fit_a_small_screen_with_a_long_address(phone: Any, broker: Broker, client: Client,
                                                                 rp: RelyingParty) -> None:
    """The pages that show the user's address wrap it instead of scrolling sideways."""
    email = "firstname.middlename.lastname@research.department.university.example.org"
    add_user(broker, email)
    page = phone
    auth = authorization(broker, client)
    page.goto(auth.url)
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()
    assert_fits(page)
    page.get_by_role("button", name="Allow").click()
    page.wait_for_url(rp.redirect_uri + "?**")
    for path, heading in (("/account", "Your account"), ("/account/delete", "Delete your account?"),
                          ("/oauth2/logout", "Sign out?")):
        page.goto(broker.issuer + path)
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        assert_fits(page)
