"""Per-client branding, as Chromium renders it: the login page of a branded client shows its name
and logo and paints its buttons in its colour, while another client's page keeps the default."""

from __future__ import annotations

from typing import Any

import pytest
from browser_helpers import (
    Broker,
    Client,
    RelyingParty,
    add_client,
    authorization,
    logo_svg,
    logo_url,
    serve_logos,
)
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

BRAND = "#c2185b"
BRAND_RGB = "rgb(194, 24, 91)"
BACKGROUND = "#fff3e0"
BACKGROUND_RGB = "rgb(255, 243, 224)"
DEFAULT_PRIMARY_RGB = "rgb(37, 87, 214)"  # the built-in #2557d6

LOGO_LOADED = """() => {
  const img = document.querySelector("header.client img");
  return img !== null && img.complete && img.naturalWidth > 0;
}"""


def computed(locator: Any, prop: str) -> str:
    return locator.evaluate("(el, prop) => getComputedStyle(el).getPropertyValue(prop)", prop)


def test_branded_login_page(context: Any, page: Any, broker: Broker, client: Client, rp: RelyingParty) -> None:
    branded = add_client(broker, rp, "acme", "--name", "Acme Travel", "--logo-uri", logo_url("acme"),
                         "--primary-color", BRAND, "--background-color", BACKGROUND)
    serve_logos(context, {"acme": logo_svg("A", BRAND)})

    page.goto(authorization(broker, branded).url)
    header = page.locator("header.client")
    expect(header).to_contain_text("Acme Travel")
    logo = header.locator("img.logo")
    expect(logo).to_have_attribute("src", logo_url("acme"))
    expect(logo).to_be_visible()
    page.wait_for_function(LOGO_LOADED)  # fetched and decoded: the CSP lets it through

    sign_in = page.get_by_role("button", name="Sign in", exact=True)
    expect(sign_in).to_have_css("background-color", BRAND_RGB)
    expect(page.locator("body")).to_have_css("background-color", BACKGROUND_RGB)
    assert computed(page.locator("html"), "--ib-primary").strip() == BRAND

    # The same page for another client: its own name, no logo, the default colour.
    page.goto(authorization(broker, client).url)
    expect(page.locator("header.client")).to_contain_text("Travel Planner")
    expect(page.locator("header.client img")).to_have_count(0)
    expect(page.get_by_role("button", name="Sign in", exact=True)).to_have_css("background-color",
                                                                               DEFAULT_PRIMARY_RGB)
