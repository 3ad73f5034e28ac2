"""A new version of the terms of service, in Chromium: a user who accepted version 1 is shown
version 2 inside the next authorization request, after the broker restarts with it, and the
application gets its code only once they accept (declining answers access_denied)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import (
    PASSWORD,
    Broker,
    Client,
    MailSink,
    RelyingParty,
    add_client,
    add_user,
    authorization,
    make_broker,
    redeem,
    restart,
    running,
    stored_user,
)
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

EMAIL = "terms.reader@example.com"
TERMS_V1 = "Version one of the rules.\n\nBe kind to the servers."
TERMS_V2 = "Version two of the rules.\n\nWe now also ask you to be kind to the people who run them."


@pytest.fixture
def terms_broker(browser: Any, mail: MailSink, tmp_path: Path) -> Iterator[Broker]:
    """A broker of its own: the test restarts it with other settings."""
    terms = tmp_path / "terms.txt"
    terms.write_text(TERMS_V1)
    b = make_broker(tmp_path / "data", mail, terms_version="1", terms_file=str(terms))
    add_user(b, EMAIL)
    with running(b):
        yield b


def terms_page(page: Any, version: str, text: str) -> None:
    expect(page).to_have_url(re.compile(r"/terms\?interaction="))
    expect(page.get_by_role("heading", name="Terms of service")).to_be_visible()
    expect(page.get_by_text(f"Version {version}", exact=True)).to_be_visible()
    expect(page.get_by_text("Please read and accept the terms of service to continue.")).to_be_visible()
    expect(page.locator("#terms-text")).to_contain_text(text.split("\n")[0])


def test_new_terms_come_before_the_code(page: Any, terms_broker: Broker, rp: RelyingParty) -> None:
    broker = terms_broker
    client: Client = add_client(broker, rp, "notes", "--name", "Notes", "--first-party")

    # Version 1, accepted on the way to the first code.
    first = authorization(broker, client)
    page.goto(first.url)
    page.get_by_label("Email", exact=True).fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    terms_page(page, "1", TERMS_V1)
    page.get_by_role("button", name="I accept").click()
    page.wait_for_url(rp.redirect_uri + "?**")
    redeem(broker, client, first, rp.received(first.state))
    assert stored_user(broker, EMAIL)["terms_version"] == "1"

    # Accepted once is enough: the next request goes straight back with a code.
    again = authorization(broker, client)
    page.goto(again.url)
    page.wait_for_url(rp.redirect_uri + "?**")
    assert rp.received(again.state)["code"]

    # The operator publishes version 2; the browser keeps its session across the restart.
    Path(broker.env["IDBROKER_TERMS_FILE"]).write_text(TERMS_V2)
    restart(broker, terms_version="2")

    declined = authorization(broker, client)
    page.goto(declined.url)
    terms_page(page, "2", TERMS_V2)
    assert not [q for q in rp.calls if q.get("state") == declined.state]  # no code before acceptance
    page.get_by_role("button", name="Decline").click()
    page.wait_for_url(rp.redirect_uri + "?**")
    answer = rp.received(declined.state)
    assert answer["error"] == "access_denied" and "code" not in answer, answer
    assert stored_user(broker, EMAIL)["terms_version"] == "1"

    accepted = authorization(broker, client)
    page.goto(accepted.url)
    terms_page(page, "2", TERMS_V2)
    expect(page.locator("#terms-text")).to_contain_text("kind to the people")
    assert not [q for q in rp.calls if q.get("state") == accepted.state]
    page.get_by_role("button", name="I accept").click()
    page.wait_for_url(rp.redirect_uri + "?**")
    redeem(broker, client, accepted, rp.received(accepted.state))
    assert stored_user(broker, EMAIL)["terms_version"] == "2"
